"""An object's pose among the proprio: its frame, its map, its MLP and the model contract around them."""

import math

import pytest
import torch

from world_model.errors import WorldModelError
from world_model.model import UVA
from world_model.object_pose import (
    ObjectPoseDynamics,
    StepwiseObjectDynamics,
    from_frame,
    pose_maps,
    proprio_loss,
    to_frame,
    unwrap_to,
    wrap,
)

from .conftest import tiny_config

# agent x, y, vx, vy, then the object's x, y, angle (PushT's layout, on a 64-unit board)
OBJECT = dict(dynamics_prior_width=16, proprio_dim=7, proprio_low=[0, 0, -10, -10, 0, 0, -math.pi],
              proprio_high=[64, 64, 10, 10, 64, 64, 3 * math.pi], proprio_image_xy=[0, 1],
              proprio_state_indices=[0, 1, 5, 6, 2, 3, 4], proprio_object_pose=[4, 5, 6], actions_image_xy=True)


def _model(**kw):
    torch.manual_seed(0)
    return UVA(tiny_config(**{**OBJECT, **kw}))


def _batch(b=3):
    g = torch.Generator().manual_seed(0)
    proprio = lambda t: torch.rand(b, t, 7, generator=g) * torch.tensor([64, 64, 10, 10, 64, 64, 6.28])  # noqa: E731
    return dict(history_latents=torch.randn(b, 4, 8, 8, 4, generator=g),
                future_latents=torch.randn(b, 4, 8, 8, 4, generator=g),
                actions=torch.rand(b, 16, 2, generator=g) * 2 - 1,
                history_proprio=proprio(4), future_proprio=proprio(4))


def test_the_frame_turns_board_vectors_and_back_and_angles_unwrap_across_the_seam():
    v = torch.tensor([[1.0, 0.0]])
    assert torch.allclose(to_frame(v, torch.tensor([math.pi / 2])), torch.tensor([[0.0, -1.0]]), atol=1e-6)
    angle = torch.tensor([0.3])
    assert torch.allclose(from_frame(to_frame(torch.tensor([[0.4, -2.0]]), angle), angle), torch.tensor([[0.4, -2.0]]))
    assert wrap(torch.tensor([2 * math.pi - 0.1])).item() == pytest.approx(-0.1, abs=1e-6)
    # a T at 6.2 rad that turned past 0 to 0.1 rad is 0.18 rad on, not a turn back
    assert unwrap_to(torch.tensor([[0.1, 6.2]]), torch.tensor([6.2]))[0].tolist() == pytest.approx([0.1 + 2 * math.pi, 6.2])


def test_pose_maps_tell_each_cell_where_it_lies_on_the_object():
    # the object at the centre of cell (row 4, col 3) of an 8-cell grid, turned a quarter turn
    xy = torch.tensor([[[-1 + 3.5 / 4, -1 + 4.5 / 4]]])
    maps = pose_maps(xy, torch.tensor([[math.pi / 2]]), 8, 1.5)[0]
    bump, u, v, cos, sin = maps
    assert divmod(int(bump.argmax()), 8) == (4, 3)
    # the cell to the object's right on the board is, in the object's turned frame, one cell towards -v
    assert (u[4, 4] / bump[4, 4]).item() == pytest.approx(0.0, abs=1e-5)
    assert (v[4, 4] / bump[4, 4]).item() == pytest.approx(-1.0, abs=1e-5)
    assert (cos[4, 3] / bump[4, 3]).item() == pytest.approx(0.0, abs=1e-6)
    assert (sin[4, 3] / bump[4, 3]).item() == pytest.approx(1.0, abs=1e-6)


def test_the_object_mlp_learns_a_push_that_is_simple_in_the_objects_frame():
    """The object slides along its own axis by how far ahead of it (in its frame) the targets lie: one
    rule wherever it lies and however it is turned."""
    torch.manual_seed(0)
    net = ObjectPoseDynamics(5, [2, 3, 4], [0, 1], 4, 16, 2, 4, 128, True, -math.pi, 3 * math.pi, 4.0)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)

    def draw(n):
        hist = torch.rand(n, 4, 5) * 1.6 - 0.8
        theta = torch.rand(n) * 2 * math.pi
        hist[:, :, 4] = net.normalised_angle(theta)[:, None].expand(n, 4)
        hist[:, :, 2:4] = hist[:, -1:, 2:4]  # the object was still
        acts = torch.rand(n, 16, 2) * 1.6 - 0.8
        ahead = to_frame(acts.reshape(n, 4, 4, 2).mean(2) - hist[:, -1:, 2:4], theta[:, None])[..., 0]  # [n, 4]
        slide = (0.1 * ahead).cumsum(1)
        step = from_frame(torch.stack([slide, torch.zeros_like(slide)], dim=-1), theta[:, None])
        fut = torch.cat([hist[:, -1:, 2:4] + step, hist[:, -1:, 4:5].expand(n, 4, 1)], dim=-1)
        return hist, acts, fut

    for _ in range(400):
        hist, acts, fut = draw(128)
        loss = (net(hist, acts) - fut).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    hist, acts, fut = draw(512)
    with torch.no_grad():
        err = (net(hist, acts)[..., :2] - fut[..., :2]).norm(dim=-1).mean()
    copy_last = (hist[:, -1:, 2:4] - fut[..., :2]).norm(dim=-1).mean()
    assert err < 0.3 * copy_last


def test_the_stepwise_model_learns_a_body_that_follows_its_targets_and_an_object_it_pushes():
    """Each step the body goes halfway to its target (a linear controller) and the object slides along its
    own axis by half the body's move along that axis: simple one step at a time, seen from the object."""
    torch.manual_seed(0)
    net = StepwiseObjectDynamics(5, [2, 3, 4], [0, 1], 16, 2, 4, 128, True, -math.pi, 3 * math.pi, 4.0)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)

    def draw(n):
        hist = torch.rand(n, 4, 5) * 1.6 - 0.8
        theta = torch.rand(n) * 2 * math.pi
        hist[:, :, 4] = net.normalised_angle(theta)[:, None]
        acts = torch.rand(n, 16, 2) * 1.6 - 0.8
        body, obj, frames = hist[:, -1, :2], hist[:, -1, 2:4], []
        for k in range(16):
            move = 0.5 * (acts[:, k] - body)
            body = body + move
            obj = obj + from_frame(torch.stack([0.5 * to_frame(move, theta)[:, 0], torch.zeros(n)], -1), theta)
            if k % 4 == 3:
                frames.append(torch.cat([body, obj, hist[:, -1, 4:]], dim=1))
        return hist, acts, torch.stack(frames, dim=1)

    for _ in range(300):
        hist, acts, fut = draw(128)
        loss = proprio_loss(net(hist, acts), fut, net)[0]
        opt.zero_grad()
        loss.backward()
        opt.step()
    hist, acts, fut = draw(512)
    with torch.no_grad():
        pred = net(hist, acts)
    for part in (slice(0, 2), slice(2, 4)):  # the body, then the object
        err = (pred[..., part] - fut[..., part]).norm(dim=-1).mean()
        assert err < 0.3 * (hist[:, -1:, part] - fut[..., part]).norm(dim=-1).mean()


def test_a_stepwise_model_predicts_the_whole_proprio_and_learns_in_every_mode():
    model = _model(proprio_object_stepwise=True)
    assert model.proprio_dynamics is None and isinstance(model.object_dynamics, StepwiseObjectDynamics)
    for mode in ("forward_dynamics", "policy", "inverse_dynamics", "video_prediction"):
        model.zero_grad()
        loss, logs = model(_batch(), mode=mode)
        loss.backward()
        assert logs["object_loss"] > 0 and model.object_dynamics.net[-1].weight.grad.abs().sum() > 0, mode
        assert model.object_dynamics.body_step.weight.grad.abs().sum() > 0, mode
    model.eval()
    hist_p = torch.tensor([[[10, 12, 0, 0, 30, 30, 6.2]] * 4])
    out = model.forward_dynamics(history_latents=torch.randn(1, 4, 8, 8, 4), actions=torch.full((2, 32, 2), 30.0),
                                 history_proprio=hist_p, sample_latents=False, distance_heads=())
    # untrained, it says "everything stays": the body and the object where they are now, over two chunks
    assert torch.allclose(out.proprio, hist_p[:, -1:].expand(2, 8, 7), atol=1e-4)
    # every env step of both chunks, the frames' proprio among them
    assert out.proprio_steps.shape == (2, 32, 7) and torch.equal(out.proprio_steps[:, 3::4], out.proprio)
    assert model.forward_dynamics(history_latents=torch.randn(1, 4, 8, 8, 4), actions=torch.full((2, 16, 2), 30.0),
                                  history_proprio=hist_p, sample_latents=False, distance_heads=()).proprio_steps.shape == (2, 16, 7)
    assert _model().eval().forward_dynamics(history_latents=torch.randn(1, 4, 8, 8, 4), actions=torch.zeros(1, 16, 2),
                                            history_proprio=hist_p).proprio_steps is None  # the chunk MLP has none


def test_a_solved_body_map_is_exact_for_a_linear_body_frozen_and_kept_on_load(tmp_path):
    import world_model

    g = torch.Generator().manual_seed(0)
    lo, hi = torch.tensor(OBJECT["proprio_low"]), torch.tensor(OBJECT["proprio_high"])
    now = lo + torch.rand(400, 7, generator=g) * (hi - lo) * 0.5 + (hi - lo) * 0.25
    act = torch.rand(400, 2, generator=g) * 2 - 1                      # the model's action limits: [-1, 1]
    nxt = now.clone()                                                  # a PD body: v' = 0.5 v + 2 (a - x), x' = x + v'
    nxt[:, 2:4] = 0.5 * now[:, 2:4] + 2.0 * (act - now[:, :2] / 64)
    nxt[:, :2] = now[:, :2] + nxt[:, 2:4]
    model = _model(proprio_object_stepwise=True, proprio_body_fit=True)
    assert not model.object_dynamics.body_step.weight.requires_grad
    fit = model.fit_body_dynamics(now, act, nxt)
    assert fit.residual < 1e-4 and fit.kept == 1.0
    model.eval()
    hist = now[:5, None].expand(5, 4, 7).clone()
    acts = act[:5, None].expand(5, 16, 2)
    out = model.forward_dynamics(history_latents=torch.randn(5, 4, 8, 8, 4), actions=acts, history_proprio=hist,
                                 sample_latents=False, distance_heads=())
    body = hist[:, -1, :4]
    for k in range(16):                                                # the same body, stepped by hand
        v = 0.5 * body[:, 2:4] + 2.0 * (acts[:, k] - body[:, :2] / 64)
        body = torch.cat([body[:, :2] + v, v], dim=1)
        if (k + 1) % 4 == 0:
            assert torch.allclose(out.proprio[:, k // 4, :4], body, atol=1e-3), k
    model.zero_grad()
    model(_batch(), mode="forward_dynamics")[0].backward()
    assert model.object_dynamics.body_step.weight.grad is None          # frozen: training leaves it as solved
    world_model.save_checkpoint(model, tmp_path / "m")
    loaded = world_model.load(tmp_path / "m").object_dynamics.body_step
    assert torch.equal(loaded.weight, model.object_dynamics.body_step.weight) and not loaded.weight.requires_grad


def test_solving_the_body_map_says_what_it_needs():
    with pytest.raises(WorldModelError, match="proprio_body_fit=true"):
        _model(proprio_object_stepwise=True).fit_body_dynamics(torch.zeros(9, 7), torch.zeros(9, 2), torch.zeros(9, 7))
    model = _model(proprio_object_stepwise=True, proprio_body_fit=True)
    with pytest.raises(WorldModelError, match=r"expected \[N, P\], \[N, A\], \[N, P\]"):
        model.fit_body_dynamics(torch.zeros(9, 7), torch.zeros(8, 2), torch.zeros(9, 7))
    with pytest.raises(WorldModelError, match="expected more than 6 finite"):
        model.fit_body_dynamics(torch.full((9, 7), float("nan")), torch.zeros(9, 2), torch.zeros(9, 7))


def test_the_object_learns_in_every_mode_with_states_and_its_map_reaches_the_prior():
    model = _model()
    loss, logs = model(_batch(), mode="forward_dynamics")
    loss.backward()
    assert logs["object_loss"] > 0
    assert model.object_dynamics.net[-1].weight.grad.abs().sum() > 0
    assert model.dynamics_prior.inp.weight.grad[:, -20:].abs().sum() > 0  # the pose maps reach the prior
    for mode in ("policy", "inverse_dynamics", "video_prediction"):  # states and actions are there: it learns
        model.zero_grad()
        loss, logs = model(_batch(), mode=mode)
        loss.backward()
        assert logs["object_loss"] > 0 and model.object_dynamics.net[-1].weight.grad.abs().sum() > 0, mode
    video_only = {k: v for k, v in _batch().items() if "proprio" not in k}
    for mode in ("policy", "inverse_dynamics", "video_prediction"):  # action-free videos have no states
        assert "object_loss" not in model(video_only, mode=mode)[1]


def test_forward_dynamics_predicts_the_objects_pose_continuously_across_the_seam():
    model = _model().eval()
    hist_p = torch.tensor([[[10, 10, 0, 0, 30, 30, 6.2], [10, 10, 0, 0, 30, 30, 6.25],
                            [10, 10, 0, 0, 30, 30, 0.02], [10, 10, 0, 0, 30, 30, 0.05]]])
    out = model.forward_dynamics(history_latents=torch.randn(1, 4, 8, 8, 4), actions=torch.full((2, 32, 2), 30.0),
                                 history_proprio=hist_p, generator=torch.Generator().manual_seed(0))
    assert out.proprio.shape == (2, 8, 7)
    # an untrained object MLP says "it stays": the newest pose, its angle as given (not a turn away)
    assert torch.allclose(out.proprio[..., 4:], torch.tensor([30.0, 30.0, 0.05]).expand(2, 8, 3), atol=1e-4)
    # the history's wrapped angles reach the MLP as one continuous turn
    normalised = model._proprio(hist_p, "history_proprio", 4)
    angles = model.object_dynamics.angle(normalised[0, :, 6])
    assert angles.tolist() == pytest.approx([6.2 - 2 * math.pi, 6.25 - 2 * math.pi, 0.02, 0.05], abs=1e-5)


@pytest.mark.parametrize("overrides, fragment", [
    (dict(proprio_object_pose=[4, 5]), "three distinct proprio indices"),
    (dict(proprio_object_pose=[0, 5, 6]), "none of them the body's"),
    (dict(proprio_object_pose=[4, 5, 7]), "three distinct proprio indices"),
    (dict(dynamics_prior_width=0, proprio_image_xy=[]), "proprio_object_pose needs the dynamics prior"),
    (dict(proprio_object_sigma=0.0), "proprio_object_sigma"),
    (dict(actions_image_xy="yes"), "actions_image_xy is 'yes'"),
    (dict(proprio_object_stepwise=True, proprio_object_pose=[]), "proprio_object_stepwise needs an object pose"),
    (dict(proprio_object_stepwise=True, proprio_glimpse=2), "no glimpse"),
    (dict(proprio_object_stepwise=1), "proprio_object_stepwise is 1"),
    (dict(proprio_body_fit=True), "expected proprio_object_stepwise=true"),
    (dict(proprio_object_stepwise=True, proprio_body_fit="yes"), "proprio_body_fit is 'yes'"),
])
def test_bad_object_configs_say_what_was_expected(overrides, fragment):
    with pytest.raises(WorldModelError, match=fragment):
        tiny_config(**{**OBJECT, **overrides})


def test_an_object_pose_checkpoint_round_trips(tmp_path):
    import world_model

    model = _model()
    world_model.save_checkpoint(model, tmp_path / "run")
    loaded = world_model.load(tmp_path / "run")
    assert loaded.config.proprio_object_pose == [4, 5, 6] and loaded.config.actions_image_xy
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), name


def test_a_cost_on_the_predicted_poses_alone_runs_no_transformer():
    model = _model().eval()
    calls = []
    handle = model.backbone.register_forward_hook(lambda *_: calls.append(1))
    hist, hist_p = torch.randn(1, 4, 8, 8, 4), torch.rand(1, 4, 7) * 6
    alone = model.forward_dynamics(history_latents=hist, actions=torch.zeros(3, 16, 2), history_proprio=hist_p,
                                   sample_latents=False, distance_heads=())
    assert calls == [] and alone.latents is None and alone.proprio.shape == (3, 4, 7)
    model.forward_dynamics(history_latents=hist, actions=torch.zeros(3, 16, 2), history_proprio=hist_p,
                           goal_latents=torch.randn(1, 8, 8, 4), sample_latents=False, distance_heads=("joint",))
    handle.remove()
    assert calls == [1]  # the joint distance needs its pass


def _moving(model):
    """The model with its proprio MLPs' last layers drawn at random, so the poses move chunk by chunk."""
    g = torch.Generator().manual_seed(1)
    for net in (model.object_dynamics.net, model.proprio_dynamics.net):
        with torch.no_grad():
            net[-1].weight.copy_(torch.randn(net[-1].weight.shape, generator=g) * 0.05)
    return model


def test_the_poses_alone_roll_over_several_chunks_without_a_frame_and_match_the_full_rollout():
    model = _moving(_model().eval())
    calls = []
    handle = model.backbone.register_forward_hook(lambda *_: calls.append(1))
    hist, hist_p = torch.randn(1, 4, 8, 8, 4), torch.rand(1, 4, 7) * 6
    acts = torch.rand(2, 48, 2) * 2 - 1
    alone = model.forward_dynamics(history_latents=hist, actions=acts, history_proprio=hist_p, sample_latents=False,
                                   distance_heads=())
    assert calls == [] and alone.proprio.shape == (2, 12, 7)
    full = model.forward_dynamics(history_latents=hist, actions=acts, history_proprio=hist_p,
                                  generator=torch.Generator().manual_seed(0))
    handle.remove()
    assert len(calls) == 3  # the full rollout samples each of the three chunks
    assert torch.allclose(alone.proprio, full.proprio, atol=1e-5)  # the MLPs read states and actions only


def test_the_future_is_unwrapped_against_the_newest_history_frame_in_training():
    model = _model()
    batch = _batch(1)
    batch["history_proprio"][0, :, 6] = torch.tensor([6.1, 6.15, 6.2, 6.25])
    batch["future_proprio"][0, :, 6] = torch.tensor([6.28, 0.02, 0.05, 0.1])  # the T turned past the seam
    _, future = model._batch_proprio(batch, 1)
    angles = model.object_dynamics.angle(future[0, :, 6])
    assert angles.tolist() == pytest.approx([6.28, 0.02 + 2 * math.pi, 0.05 + 2 * math.pi, 0.1 + 2 * math.pi], abs=1e-4)


def test_a_long_rollout_feeds_its_mlps_angles_as_in_training_and_returns_them_as_the_env_does():
    model = _moving(_model().eval())
    seen = []
    handle = model.object_dynamics.register_forward_hook(
        lambda _m, args, _out: seen.append(model.object_dynamics.angle(args[0][:, -1, 6])))
    hist_p = torch.tensor([[[10, 10, 0, 0, 30, 30, 6.2]] * 4])
    out = model.forward_dynamics(history_latents=torch.randn(1, 4, 8, 8, 4), actions=torch.rand(3, 96, 2) * 64,
                                 history_proprio=hist_p, sample_latents=False, distance_heads=())
    handle.remove()
    assert len(seen) == 6  # one per chunk
    for newest in seen:  # every chunk's newest angle lies where the env's states put it in training
        assert ((newest >= 0) & (newest < 2 * math.pi + 1e-5)).all()
    angles = out.proprio[..., 6]
    assert ((angles >= 0) & (angles < 2 * math.pi)).all()


def test_a_stepwise_rollout_turns_on_across_the_seam_over_several_chunks():
    """A T that turns 0.1 rad every env step from 6.0 rad: three chunks later it has turned 4.8 rad, the
    angles returned wrapped into [0, 2 pi) and continuous across 2 pi and across the chunks' seams."""
    model = _model(proprio_object_stepwise=True).eval()
    with torch.no_grad():
        model.object_dynamics.net[-1].bias[2] = 0.1
    hist_p = torch.tensor([[[10, 12, 0, 0, 30, 30, 6.0]] * 4])
    out = model.forward_dynamics(history_latents=torch.randn(1, 4, 8, 8, 4), actions=torch.full((1, 48, 2), 10.0),
                                 history_proprio=hist_p, sample_latents=False, distance_heads=())
    expected = torch.remainder(6.0 + 0.4 * torch.arange(1, 13), 2 * math.pi)
    assert torch.allclose(out.proprio[0, :, 6], expected, atol=1e-3)
