"""Proprioception: the position maps, the proprio dynamics, and the model contract around them."""

import pytest
import torch

from world_model.errors import WorldModelError
from world_model.model import UVA
from world_model.proprio import ProprioDynamics, StepwiseBodyDynamics, glimpse, glimpse_size, position_maps

from .conftest import tiny_config

PROPRIO = dict(dynamics_prior_width=16, proprio_dim=4, proprio_low=[0, 0, -10, -10], proprio_high=[64, 64, 10, 10],
               proprio_image_xy=[0, 1], proprio_state_indices=[0, 1, 2, 3])


def _model(**kw):
    torch.manual_seed(0)
    return UVA(tiny_config(**{**PROPRIO, **kw}))


def _batch(b=3):
    g = torch.Generator().manual_seed(0)
    return dict(history_latents=torch.randn(b, 4, 8, 8, 4, generator=g),
                future_latents=torch.randn(b, 4, 8, 8, 4, generator=g),
                actions=torch.rand(b, 16, 2, generator=g) * 2 - 1,
                history_proprio=torch.rand(b, 4, 4, generator=g) * 10,
                future_proprio=torch.rand(b, 4, 4, generator=g) * 10)


def test_position_maps_put_the_bump_in_the_named_cell_with_its_offset():
    # x = 2.75 cells from the left, y = 5.25 cells from the top of an 8-cell grid
    xy = torch.tensor([[[-1 + 2.75 / 4, -1 + 5.25 / 4]]])
    maps = position_maps(xy, 8, 0.6)[0]
    bump, dx, dy = maps[0], maps[1], maps[2]
    row, col = divmod(int(bump.argmax()), 8)
    assert (row, col) == (5, 2)
    assert dx[row, col] / bump[row, col] == pytest.approx(0.25, abs=1e-5)
    assert dy[row, col] / bump[row, col] == pytest.approx(-0.25, abs=1e-5)
    assert bump[0, 7] < 1e-6  # far cells see nothing


def test_proprio_dynamics_learns_motion_from_the_actions():
    torch.manual_seed(0)
    net = ProprioDynamics(2, 4, 16, 2, 4, 64)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)

    def draw(n):
        hist = torch.rand(n, 4, 2) * 2 - 1
        acts = torch.rand(n, 16, 2) * 2 - 1
        steps = acts.reshape(n, 4, 4, 2).sum(2) * 0.05  # each future frame moves by its 4 actions
        return hist, acts, hist[:, -1:] + steps.cumsum(1)

    for _ in range(300):
        hist, acts, fut = draw(64)
        loss = (net(hist, acts) - fut).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    hist, acts, fut = draw(256)
    with torch.no_grad():
        err = (net(hist, acts) - fut).norm(dim=-1).mean()
    copy_last = (hist[:, -1:] - fut).norm(dim=-1).mean()
    assert err < 0.25 * copy_last


def test_the_proprio_loss_trains_only_with_actions_and_reaches_the_mlp():
    model = _model()
    loss, logs = model(_batch(), mode="forward_dynamics")
    loss.backward()
    assert logs["proprio_loss"] > 0
    assert model.proprio_dynamics.net[0].weight.grad.abs().sum() > 0
    assert model.dynamics_prior.inp.weight.grad[:, -12:].abs().sum() > 0  # the maps reach the prior
    model.zero_grad()
    _, logs = model(_batch(), mode="policy")
    assert "proprio_loss" not in logs
    video_only = {k: v for k, v in _batch().items() if "proprio" not in k}
    for mode in ("policy", "inverse_dynamics", "video_prediction"):  # action-free videos have no proprio
        model(video_only, mode=mode)
    with pytest.raises(WorldModelError, match="history_proprio"):
        model(video_only, mode="forward_dynamics")


def test_without_a_true_future_the_maps_follow_the_prediction():
    model = _model()
    batch = _batch()
    del batch["future_proprio"]
    _, logs = model(batch, mode="forward_dynamics")
    assert "proprio_loss" not in logs and "video_loss" in logs


def test_forward_dynamics_returns_the_rolled_proprio_and_needs_the_history():
    model = _model().eval()
    hist = torch.randn(1, 4, 8, 8, 4)
    acts = torch.rand(5, 32, 2) * 4 - 2
    with pytest.raises(WorldModelError, match="history_proprio was not given"):
        model.forward_dynamics(history_latents=hist, actions=acts)
    with pytest.raises(WorldModelError, match=r"expected \[B, 4, 4\]"):
        model.forward_dynamics(history_latents=hist, actions=acts, history_proprio=torch.zeros(1, 3, 4))
    with pytest.raises(WorldModelError, match="NaN"):
        model.forward_dynamics(history_latents=hist, actions=acts, history_proprio=torch.full((1, 4, 4), float("nan")))
    out = model.forward_dynamics(history_latents=hist, actions=acts, history_proprio=torch.rand(1, 4, 4) * 10)
    assert out.latents.shape == (5, 8, 8, 8, 4) and out.proprio.shape == (5, 8, 4)
    assert torch.isfinite(out.proprio).all()


def test_the_proprio_rolls_on_chunk_by_chunk_like_one_chunk_at_a_time():
    """Two chunks in one call = the first chunk, then the second from the first's predicted proprio."""
    model = _model().eval()
    hist, hist_p = torch.randn(2, 4, 8, 8, 4), torch.rand(2, 4, 4) * 10
    acts = torch.rand(2, 32, 2) * 4 - 2
    both = model.forward_dynamics(history_latents=hist, actions=acts, history_proprio=hist_p, sample_latents=False)
    first = model.forward_dynamics(history_latents=hist, actions=acts[:, :16], history_proprio=hist_p)
    rolled = torch.cat([hist_p, first.proprio], dim=1)[:, -4:]
    second = model.forward_dynamics(history_latents=first.latents[:, -4:], actions=acts[:, 16:], history_proprio=rolled)
    assert torch.allclose(both.proprio, torch.cat([first.proprio, second.proprio], dim=1), atol=1e-5)


def test_a_model_without_proprio_returns_none_and_ignores_nothing():
    torch.manual_seed(0)
    model = UVA(tiny_config()).eval()
    out = model.forward_dynamics(history_latents=torch.randn(2, 4, 8, 8, 4), actions=torch.zeros(2, 16, 2))
    assert out.proprio is None


@pytest.mark.parametrize("overrides, fragment", [
    (dict(dynamics_prior_width=0), "needs the dynamics prior"),
    (dict(proprio_low=[0, 0]), "proprio_low/proprio_high have 2/4"),
    (dict(proprio_image_xy=[0, 0]), "two distinct proprio indices"),
    (dict(proprio_high=[64, 64, 10, -20]), "low < high"),
    (dict(proprio_state_indices=[0, 1]), "proprio_state_indices"),
    (dict(proprio_glimpse=-1), "proprio_glimpse is -1"),
    (dict(proprio_glimpse=2, proprio_image_xy=[]), "proprio_glimpse needs proprio_image_xy"),
    (dict(proprio_context=True, proprio_dim=0, proprio_low=[], proprio_high=[], proprio_image_xy=[],
          proprio_state_indices=[]), "proprio_context needs proprioception"),
    (dict(proprio_context_dropout=1.5), "proprio_context_dropout"),
    (dict(proprio_history_frames=5), "proprio_history_frames is 5"),
])
def test_bad_proprio_configs_say_what_was_expected(overrides, fragment):
    with pytest.raises(WorldModelError, match=fragment):
        tiny_config(**{**PROPRIO, **overrides})


def test_a_proprio_checkpoint_round_trips(tmp_path):
    import world_model

    model = _model()
    world_model.save_checkpoint(model, tmp_path / "run")
    loaded = world_model.load(tmp_path / "run")
    assert loaded.config.proprio_state_indices == [0, 1, 2, 3]
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), name


def test_the_glimpse_reads_the_cells_around_the_body_and_marks_the_grid_edge():
    latent = torch.zeros(1, 8, 8, 4)
    latent[0, 5, 2] = torch.tensor([1.0, 2.0, 3.0, 4.0])  # row 5, column 2
    centre = torch.tensor([[-1 + 2.5 / 4, -1 + 5.5 / 4]])  # that cell's centre
    view = glimpse(latent, centre, 1).reshape(5, 3, 3)  # channels (4 + inside), 3 x 3 points
    assert view.shape[0] * 9 == glimpse_size(1, 4)
    assert torch.allclose(view[:4, 1, 1], latent[0, 5, 2])
    assert torch.allclose(view[:4, 1, 2], torch.zeros(4))  # one cell right: empty
    left = glimpse(latent, torch.tensor([[-1 + 3.5 / 4, -1 + 5.5 / 4]]), 1).reshape(5, 3, 3)
    assert torch.allclose(left[:4, 1, 0], latent[0, 5, 2])  # the body one cell right sees it on its left
    half = glimpse(latent, torch.tensor([[-1 + 3.0 / 4, -1 + 5.5 / 4]]), 1).reshape(5, 3, 3)
    assert torch.allclose(half[:4, 1, 1], 0.5 * latent[0, 5, 2])  # half a cell off: bilinear
    corner = glimpse(latent, torch.tensor([[-1 + 0.5 / 4, -1 + 0.5 / 4]]), 1).reshape(5, 3, 3)
    assert corner[4, 1, 1] == 1 and corner[4, 0, 0] == 0 and corner[4, 2, 2] == 1  # past the edge: 0


def test_the_glimpse_lets_the_proprio_mlp_learn_a_stop_it_cannot_see_in_its_own_state():
    """A 1-D toy: the body moves right by its actions unless a wall cell (seen only in the latent, at a
    random column) is in its way. With the glimpse the MLP learns the stop; from its state alone it
    cannot tell where the wall is."""

    def draw(n, g):
        x_cell = torch.randint(1, 4, (n,), generator=g).float() + 0.5  # body at cell 1..3 (centre)
        wall = torch.randint(2, 7, (n,), generator=g)
        wall = torch.where(wall.float() <= x_cell, wall + 3, wall).clamp(max=7)
        latent = torch.zeros(n, 8, 8, 4)
        latent[torch.arange(n), :, wall, 0] = 1.0
        acts = torch.zeros(n, 16, 2)
        acts[..., 0] = torch.rand(n, 1, generator=g)  # constant speed right, up to 3 cells over the chunk
        travel = acts[..., 0].reshape(n, 4, 4).sum(2).cumsum(1) * (3.0 / 16)  # cells at each future frame
        stop = wall.float() - 0.5 - x_cell  # the body's centre may go no further than half a cell from it
        future_cells = x_cell[:, None] + torch.minimum(travel, stop[:, None])
        to_norm = lambda c: c / 4 - 1  # noqa: E731 (cell coordinate -> [-1, 1])
        hist = torch.stack([to_norm(x_cell), torch.zeros(n)], -1)[:, None].expand(n, 4, 2)
        fut = torch.stack([to_norm(future_cells), torch.zeros(n, 4)], -1)
        return latent, hist, acts, fut

    errors = {}
    for radius in (0, 3):
        torch.manual_seed(0)
        g = torch.Generator().manual_seed(1)
        net = ProprioDynamics(2, 4, 16, 2, 4, 64, glimpse_dim=glimpse_size(radius, 4))
        opt = torch.optim.Adam(net.parameters(), lr=3e-3)
        view = (lambda lat, h, r=radius: glimpse(lat, h[:, -1], r)) if radius else (lambda lat, h: None)
        for _ in range(400):
            latent, hist, acts, fut = draw(128, g)
            loss = (net(hist, acts, view(latent, hist)) - fut).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        latent, hist, acts, fut = draw(512, torch.Generator().manual_seed(99))
        with torch.no_grad():
            errors[radius] = (net(hist, acts, view(latent, hist)) - fut)[..., 0].abs().mean().item()
    assert errors[3] < 0.5 * errors[0], errors


def test_a_glimpse_model_trains_and_imagines_with_a_shared_history():
    model = _model(proprio_glimpse=2)
    loss, logs = model(_batch(), mode="forward_dynamics")
    loss.backward()
    glimpse_inputs = model.proprio_dynamics.net[0].weight.grad[:, -glimpse_size(2, 4):]
    assert logs["proprio_loss"] > 0 and glimpse_inputs.abs().sum() > 0
    model.eval()
    out = model.forward_dynamics(history_latents=torch.randn(1, 4, 8, 8, 4), actions=torch.rand(5, 32, 2) * 4 - 2,
                                 history_proprio=torch.rand(1, 4, 4) * 10)
    assert out.proprio.shape == (5, 8, 4) and torch.isfinite(out.proprio).all()


def _context_model(**kw):
    return _model(proprio_context=True, **kw)


def test_a_context_model_starts_as_the_model_without_it():
    """Zero-initialised context: a run grown from one without it (--init-from) starts where it was."""
    plain = _model().eval()
    grown = _context_model().eval()
    missing, unexpected = grown.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and all("proprio_context" in k or "no_proprio" in k or "no_goal_proprio" in k for k in missing)
    hist, goal = torch.randn(2, 4, 8, 8, 4), torch.randn(2, 8, 8, 4)
    hist_p, goal_p = torch.rand(2, 4, 4) * 10, torch.rand(2, 4) * 10

    def act(model, **kw):
        return model.policy(history_latents=hist, goal_latents=goal, generator=torch.Generator().manual_seed(0), **kw)

    assert torch.allclose(act(plain), act(grown, history_proprio=hist_p, goal_proprio=goal_p), atol=1e-6)


def test_the_policy_reads_the_context_and_its_none_stands_in_without_it():
    model = _context_model().eval()
    _randomise_context(model)
    hist, goal = torch.randn(1, 4, 8, 8, 4), torch.randn(1, 8, 8, 4)

    def act(**kw):
        return model.policy(history_latents=hist, goal_latents=goal, temperature=0.0, **kw)

    here, there = torch.full((1, 4, 4), 5.0), torch.full((1, 4, 4), 50.0)
    assert not torch.allclose(act(history_proprio=here), act(history_proprio=there))
    assert not torch.allclose(act(history_proprio=here), act())
    assert not torch.allclose(act(history_proprio=here, goal_proprio=here[:, 0]), act(history_proprio=here))
    with pytest.raises(WorldModelError, match="goal_proprio has shape"):
        act(goal_proprio=torch.zeros(1, 4, 4))


def _randomise_context(model):
    """Context weights and the zero-initialised outputs that would hide them, made non-zero."""
    with torch.no_grad():
        for p in (model.backbone.proprio_context.weight, model.backbone.goal_proprio_context.weight,
                  model.backbone.no_proprio, model.backbone.no_goal_proprio):
            p.normal_(0, 0.5)
        for p in [*model.action_head.parameters(), *model.video_head.parameters(),
                  *model.backbone.transformer.parameters()]:
            p.add_(torch.randn_like(p) * 0.2)


def test_inverse_dynamics_and_video_prediction_never_read_the_context():
    """Action-free videos have no states: the labelling and video modes must not depend on them."""
    model = _context_model()
    _randomise_context(model)
    batch = _batch()
    moved = dict(batch, history_proprio=batch["history_proprio"] + 20.0, goal_proprio=torch.full((3, 4), 30.0))
    for mode in ("inverse_dynamics", "video_prediction"):
        losses = [model(b, mode=mode, generator=torch.Generator().manual_seed(3))[0].item() for b in (batch, moved)]
        assert losses[0] == losses[1], mode
    for mode in ("policy", "joint"):  # the modes that read it: it counts, and they train without states too
        losses = [model(b, mode=mode, generator=torch.Generator().manual_seed(3))[0].item() for b in (batch, moved)]
        assert losses[0] != losses[1], mode
        model({k: v for k, v in batch.items() if "proprio" not in k}, mode=mode)


def test_the_policy_mode_trains_the_goals_context():
    model = _context_model()
    _randomise_context(model)
    batch = dict(_batch(), goal_latents=torch.randn(3, 8, 8, 4), goal_proprio=torch.rand(3, 4) * 10)
    loss, _ = model(batch, mode="policy", generator=torch.Generator().manual_seed(1))
    loss.backward()
    assert model.backbone.goal_proprio_context.weight.grad.abs().sum() > 0
    assert model.backbone.proprio_context.weight.grad.abs().sum() > 0



def test_the_proprio_mlp_reads_only_the_newest_frames_it_is_told_to():
    model = _model(proprio_history_frames=1).eval()
    hist = torch.randn(1, 4, 8, 8, 4)
    acts = torch.rand(1, 16, 2) * 4 - 2
    a, b = torch.rand(1, 4, 4) * 10, torch.rand(1, 4, 4) * 10
    b[:, -1] = a[:, -1]  # same current state, different past
    out = [model.forward_dynamics(history_latents=hist, actions=acts, history_proprio=p, sample_latents=False).proprio
           for p in (a, b)]
    assert torch.allclose(out[0], out[1])
    assert model.proprio_dynamics.net[0].in_features == 1 * 4 + 16 * 2


def test_proprio_every_step_trains_the_mlp_in_every_mode_with_states():
    model = _model(proprio_every_step=True)
    for mode in ("policy", "inverse_dynamics", "video_prediction"):
        model.zero_grad()
        loss, logs = model(_batch(), mode=mode)
        loss.backward()
        assert logs["proprio_loss"] > 0 and model.proprio_dynamics.net[0].weight.grad.abs().sum() > 0, mode
    video_only = {k: v for k, v in _batch().items() if "proprio" not in k}
    assert "proprio_loss" not in model(video_only, mode="policy")[1]  # action-free videos have no states
    with pytest.raises(WorldModelError, match="proprio_every_step"):
        tiny_config(**{**PROPRIO, "proprio_every_step": "yes"})


def test_the_stepwise_body_moves_by_its_actions_and_stops_at_a_wall_it_sees():
    """Each step the body moves by its action, but never past a wall whose column the latent marks (a
    random column per sample): free moves are linear, the stop needs the glimpse at each step's place."""
    torch.manual_seed(0)
    net = StepwiseBodyDynamics(2, [0, 1], 16, 2, 4, 128, 2, 4)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    centres = (torch.arange(8) + 0.5) / 4 - 1  # cell centres in [-1, 1]

    def draw(n):
        wall = torch.randint(4, 8, (n,))
        latent = torch.zeros(n, 8, 8, 4)
        latent[..., 0] = (torch.arange(8)[None, None, :] >= wall[:, None, None]).float()
        limit = centres[wall] - 0.25  # the body's x stays half a cell short of the wall's cells
        hist = torch.rand(n, 4, 2) * 0.8 - 0.5
        hist[..., 0] = torch.minimum(hist[..., 0], limit[:, None])
        acts = torch.rand(n, 16, 2) * 0.15
        pos, frames = hist[:, -1], []
        for k in range(16):
            pos = pos + 0.5 * acts[:, k]
            pos = torch.stack([torch.minimum(pos[:, 0], limit), pos[:, 1]], dim=1)
            if k % 4 == 3:
                frames.append(pos)
        return latent, hist, acts, torch.stack(frames, dim=1)

    for _ in range(400):
        latent, hist, acts, fut = draw(128)
        loss = (net(hist, acts, latent) - fut).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    latent, hist, acts, fut = draw(512)
    with torch.no_grad():
        err = (net(hist, acts, latent) - fut).norm(dim=-1)[:, -1]
    free_err = (hist[:, -1] + 0.5 * acts.sum(1) - fut[:, -1]).norm(dim=-1)  # ignoring the wall
    stopped = free_err > 0.1
    assert stopped.float().mean() > 0.2
    assert err.mean() < 0.2 * (hist[:, -1] - fut[:, -1]).norm(dim=-1).mean()
    assert err[stopped].mean() < 0.3 * free_err[stopped].mean()  # it sees the wall
    with pytest.raises(WorldModelError, match="no latent"):
        net(hist, acts)
    with torch.no_grad():
        future, gates = net.roll(hist, acts, latent)
    assert torch.equal(future, net(hist, acts, latent)) and gates.shape == (512, 16, 2)
    assert ((gates >= 0) & (gates <= 1)).all() and gates[stopped, :, 0].min() < 0.5 < gates[~stopped, :, 0].median()


def test_a_sliding_body_learns_a_sideways_push_that_a_gate_cannot_draw():
    """A wall deflects the body: what it loses of its x move it gains in y (as the Wall's door corner
    pushes the agent out sideways). Only ``slide`` can move y beyond what the action commands; at
    initialisation it is the plain gated body."""
    def draw(n, g):
        latent = torch.zeros(n, 8, 8, 4)
        latent[..., 5:, 0] = 1.0  # the wall's cells: columns 5..7, whose edge is at x = 0.25
        hist = torch.rand(n, 4, 2, generator=g) * 0.6 - 0.5
        acts = torch.rand(n, 16, 2, generator=g) * 0.15
        acts[:n // 2, :, 1] = 0.0  # half the chunks command no y motion at all
        pos, frames = hist[:, -1], []
        for k in range(16):
            want = pos + 0.5 * acts[:, k]
            x = torch.clamp(want[:, 0], max=0.0)
            pos = torch.stack([x, want[:, 1] + (want[:, 0] - x)], dim=1)
            if k % 4 == 3:
                frames.append(pos)
        return latent, hist, acts, torch.stack(frames, dim=1)

    errors = {}
    for slide in (False, True):
        torch.manual_seed(0)
        net = StepwiseBodyDynamics(2, [0, 1], 16, 2, 4, 64, 2, 4, free_fitted=True, slide=slide)
        with torch.no_grad():  # the free move as solved: 0.5 x the action
            net.free.weight.copy_(torch.tensor([[0.0, 0.0, 0.5, 0.0], [0.0, 0.0, 0.0, 0.5]]))
        if slide:
            plain = StepwiseBodyDynamics(2, [0, 1], 16, 2, 4, 64, 2, 4)
            latent, hist, acts, _ = draw(8, torch.Generator().manual_seed(2))
            with torch.no_grad():  # zero-initialised: no slide before training
                plain.load_state_dict({k: v[: v.shape[0] // 2] if k == "net.4.weight" or k == "net.4.bias" else v
                                       for k, v in net.state_dict().items()})
                assert torch.allclose(net(hist, acts, latent), plain(hist, acts, latent))
        opt = torch.optim.Adam(net.parameters(), lr=3e-3)
        g = torch.Generator().manual_seed(0)
        for _ in range(200):
            latent, hist, acts, fut = draw(64, g)
            loss = (net(hist, acts, latent) - fut).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        latent, hist, acts, fut = draw(512, torch.Generator().manual_seed(1))
        with torch.no_grad():
            pushed = (fut[:, -1, 1] - hist[:, -1, 1] - 0.5 * acts[..., 1].sum(1)) > 0.05
            errors[slide] = (net(hist, acts, latent) - fut)[:, -1][pushed].norm(dim=-1).mean().item()
    assert errors[True] < 0.3 * errors[False]


def _walled_transitions(n, seed=0):
    """A body that moves by 0.5 x its action (env units) unless a wall at x = 10 stops it (a fifth of the
    moves hit it): the free move is linear, the stopped ones are not."""
    g = torch.Generator().manual_seed(seed)
    now = torch.rand(n, 4, generator=g) * 20
    now[:, 0] = torch.where(torch.rand(n, generator=g) < 0.8, 9.0 + torch.rand(n, generator=g), now[:, 0] * 0.45)
    act = torch.rand(n, 2, generator=g) * 4 - 2
    nxt = now.clone()
    nxt[:, :2] = now[:, :2] + 0.5 * act
    nxt[:, 0] = torch.minimum(nxt[:, 0], torch.tensor(10.0))
    return now, act, nxt


def test_the_wall_body_s_free_move_is_solved_from_the_transitions_no_wall_changed_and_frozen(tmp_path):
    import world_model

    model = _model(proprio_body_stepwise=True, proprio_glimpse=2, proprio_body_fit=True)
    free = model.proprio_dynamics.free
    assert not free.weight.requires_grad
    now, act, nxt = _walled_transitions(600)
    fit = model.fit_body_dynamics(now, act, nxt)
    stopped = (nxt[:, 0] < now[:, 0] + 0.5 * act[:, 0] - 1e-6).float().mean()
    assert 0.1 < stopped < 0.4 and abs(fit.kept - (1 - stopped)) < 0.02 and fit.residual < 1e-5
    # normalised units: proprio (0, 64) -> [-1, 1] is x / 32, actions (-2, 2) -> [-1, 1] is a / 2, so the
    # free move 0.5 a is (1 / 32) x the normalised action on its own axis, and nothing else
    want = torch.zeros(4, 6)
    want[0, 4] = want[1, 5] = 1 / 32
    assert torch.allclose(free.weight, want, atol=1e-5) and free.bias.abs().max() < 1e-5
    everything = StepwiseBodyDynamics(4, [0, 1], 16, 2, 4, 16, 0, 4)  # no trim: the stops bend the solution
    inputs = torch.cat([now / 32 - 1, act / 2], dim=1)
    from world_model.proprio import solve_linear_step

    assert solve_linear_step(everything.free, inputs, (nxt - now) / 32, trim=False).residual > 1e-2
    model.zero_grad()
    model(_batch(), mode="forward_dynamics")[0].backward()
    assert free.weight.grad is None  # training leaves it as solved
    world_model.save_checkpoint(model, tmp_path / "m")
    assert torch.equal(world_model.load(tmp_path / "m").proprio_dynamics.free.weight, free.weight)
    with pytest.raises(WorldModelError, match=r"expected \[N, P\], \[N, A\], \[N, P\]"):
        model.fit_body_dynamics(now, act[:5], nxt)
    with pytest.raises(WorldModelError, match="proprio_body_fit solves a stepwise body"):
        tiny_config(**{**PROPRIO, "proprio_body_fit": True})


def test_the_proprio_loss_leaves_out_future_frames_past_the_episode_s_end():
    model = _model()
    batch = _batch()
    with torch.no_grad():
        full = model(batch, mode="forward_dynamics", generator=torch.Generator().manual_seed(0))[1]["proprio_loss"]
        batch["future_valid"] = torch.tensor([[True, True, False, False]] * 3)
        part = model(batch, mode="forward_dynamics", generator=torch.Generator().manual_seed(0))[1]["proprio_loss"]
        batch["future_proprio"][:, 2:] = 1e6  # what a clamped frame says cannot reach the loss
        same = model(batch, mode="forward_dynamics", generator=torch.Generator().manual_seed(0))[1]["proprio_loss"]
    assert part != full and same == pytest.approx(part)
    batch["future_valid"] = torch.ones(3, 3, dtype=torch.bool)
    with pytest.raises(WorldModelError, match="future_valid has shape"):
        model(batch, mode="forward_dynamics")


def test_hide_body_paints_the_body_s_disc_with_the_floor_and_nothing_else():
    from world_model.proprio import hide_body

    frames = torch.zeros(2, 16, 16, 3)
    frames[:, :, 12:] = 0.5                               # a wall: the right quarter of each frame
    frames[0, 3:6, 3:6] = 1.0                             # frame 0's body, a 3 x 3 blob round pixel (4, 4)
    xy = torch.tensor([[4.5 / 8 - 1, 4.5 / 8 - 1], [10.5 / 8 - 1, 0.0]])  # pixels (4, 4) and (10, 7.5)
    out = hide_body(frames, xy, 1.5)
    assert out[0, 3:6, 3:6].abs().max() == 0             # the body is floor now
    assert torch.equal(out[0, :, 12:], frames[0, :, 12:])  # the wall is untouched
    assert torch.equal(out[1, :, 12:], frames[1, :, 12:])  # 1.5 px round column 10 stops short of the wall's 12
    assert (out != frames).any(dim=-1).sum(dim=(1, 2)).tolist() == [9, 0]  # frame 1 had only floor there


def test_a_stepwise_body_with_its_body_hidden_trains_and_refuses_it_without_the_pixel_glimpse():
    model = _model(proprio_body_stepwise=True, proprio_glimpse=2, proprio_glimpse_pixels=True,
                   proprio_glimpse_hide_body=3.4)
    loss, logs = model(_batch(), mode="forward_dynamics")
    assert torch.isfinite(loss) and logs["proprio_loss"] > 0
    with pytest.raises(WorldModelError, match="expected proprio_glimpse_pixels=true"):
        tiny_config(**{**PROPRIO, "proprio_body_stepwise": True, "proprio_glimpse": 2, "proprio_glimpse_hide_body": 3.4})


def test_a_body_stepwise_model_replaces_the_proprio_mlp_and_trains_and_imagines():
    model = _model(proprio_body_stepwise=True, proprio_glimpse=2)
    assert isinstance(model.proprio_dynamics, StepwiseBodyDynamics)
    with torch.no_grad():  # past its "it stays" start, so the gradient reaches the glimpse
        model.proprio_dynamics.net[-1].weight.normal_(0.0, 0.01)
        model.proprio_dynamics.free.weight.normal_(0.0, 0.01)
    loss, logs = model(_batch(), mode="forward_dynamics")
    loss.backward()
    assert logs["proprio_loss"] > 0
    assert model.proprio_dynamics.free.weight.grad.abs().sum() > 0
    assert model.proprio_dynamics.net[0].weight.grad[:, :glimpse_size(2, 4)].abs().sum() > 0
    model.eval()
    with torch.no_grad():
        model.proprio_dynamics.free.weight.zero_()
    hist_p = torch.tensor([[[20.0, 30.0, 1.0, -1.0]] * 4])
    out = model.forward_dynamics(history_latents=torch.randn(1, 4, 8, 8, 4), actions=torch.rand(5, 32, 2) * 4 - 2,
                                 history_proprio=hist_p)
    assert out.proprio.shape == (5, 8, 4)
    assert torch.allclose(out.proprio, hist_p[:, -1:].expand(5, 8, 4), atol=1e-4)  # untrained: it stays


@pytest.mark.parametrize("overrides, fragment", [
    (dict(proprio_body_stepwise=True, proprio_image_xy=[]), "proprio_body_stepwise needs the body's image"),
    (dict(proprio_body_stepwise="on"), "proprio_body_stepwise is 'on'"),
    (dict(proprio_body_slide=True), "proprio_body_slide is True; expected false, or true with proprio_body_stepwise"),
])
def test_bad_stepwise_body_configs_say_what_was_expected(overrides, fragment):
    with pytest.raises(WorldModelError, match=fragment):
        tiny_config(**{**PROPRIO, **overrides})


def test_a_pixel_glimpse_reads_the_decoded_frame_one_pixel_apart():
    model = _model(proprio_body_stepwise=True, proprio_glimpse=2, proprio_glimpse_pixels=True)
    assert model.proprio_dynamics.net[0].in_features == glimpse_size(2, 3) + 4 + 2
    with torch.no_grad():
        model.proprio_dynamics.net[-1].weight.normal_(0.0, 0.01)
        model.proprio_dynamics.free.weight.normal_(0.0, 0.01)
    loss, logs = model(_batch(), mode="forward_dynamics")
    loss.backward()
    assert model.proprio_dynamics.net[0].weight.grad[:, :glimpse_size(2, 3)].abs().sum() > 0
    assert all(p.grad is None for p in model.tokenizer.parameters())  # the tokenizer stays frozen
    model.eval()  # one history shared by the candidates is decoded once, with the same prediction
    hist_lat, hist_p, acts = torch.randn(1, 4, 8, 8, 4), torch.rand(1, 4, 4) * 10, torch.rand(3, 16, 2) * 4 - 2
    shared = model.forward_dynamics(history_latents=hist_lat, actions=acts, history_proprio=hist_p,
                                    sample_latents=False, distance_heads=()).proprio
    copied = model.forward_dynamics(history_latents=hist_lat.repeat(3, 1, 1, 1, 1), actions=acts,
                                    history_proprio=hist_p.repeat(3, 1, 1), sample_latents=False,
                                    distance_heads=()).proprio
    assert torch.allclose(shared, copied, atol=1e-5) and not torch.allclose(shared[0], shared[1])
    # a planner's rows repeat each problem's history (gathered, not broadcast): each distinct frame is
    # decoded once, to the same pictures
    frames = torch.randn(2, 8, 8, 4)[torch.tensor([0, 1, 1, 0, 1])]
    sizes = []
    decode = model.tokenizer.decode
    model.tokenizer.decode = lambda z: sizes.append(len(z)) or decode(z)
    assert torch.equal(model._decoded_once(frames), decode(frames)) and sizes == [2]
    with pytest.raises(WorldModelError, match="proprio_glimpse_pixels needs the stepwise body"):
        tiny_config(**{**PROPRIO, "proprio_glimpse": 2, "proprio_glimpse_pixels": True})
