"""Proprioception: the position maps, the proprio dynamics, and the model contract around them."""

import pytest
import torch

from world_model.errors import WorldModelError
from world_model.model import UVA
from world_model.proprio import ProprioDynamics, position_maps

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
