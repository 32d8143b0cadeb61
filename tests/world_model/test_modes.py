import pytest
import torch

from tests.world_model.conftest import square_windows
from world_model.config import MODE_NAMES
from world_model.errors import WorldModelError
from world_model.modes import (
    MODES,
    MaskLaw,
    cosine_mask_counts,
    future_mask,
    mask_first,
    random_orders,
    resolve_mode,
    sample_mask_ratios,
)


def test_mode_table_matches_uva():
    table = {m.name: (m.future, m.actions_given, m.video_loss, m.action_loss) for m in MODES.values()}
    assert table == {
        "video_prediction": ("partial", False, True, False),
        "forward_dynamics": ("partial", True, True, False),
        "policy": ("all_masked", False, False, True),
        "inverse_dynamics": ("visible", False, False, True),
        "joint": ("partial", False, True, True),
    }


def test_mask_ratios_follow_the_truncated_normal():
    law = MaskLaw()
    r = sample_mask_ratios(20000, law, torch.Generator().manual_seed(0))
    assert r.min() >= 0.7 and r.max() <= 1.0
    # N(1, 0.25) truncated to [0.7, 1]: the density rises towards 1, mean ~0.868
    assert 0.85 < float(r.mean()) < 0.885
    assert (r > 0.85).float().mean() > (r < 0.85).float().mean()


@pytest.mark.parametrize("name", MODE_NAMES)
def test_each_mode_masks_the_same_positions_in_every_future_frame(name):
    g = torch.Generator().manual_seed(1)
    mask = future_mask(MODES[name], 64, 4, 16, MaskLaw(), g)
    assert mask.shape == (64, 4, 16) and mask.dtype == torch.bool
    assert torch.equal(mask, mask[:, :1].expand_as(mask))
    counts = mask[:, 0].sum(dim=1)
    if MODES[name].future == "all_masked":
        assert torch.all(counts == 16)
    elif MODES[name].future == "visible":
        assert torch.all(counts == 0)
    else:
        # ceil(16 * r) with r in [0.7, 1]: 12..16 positions, and not always the same positions
        assert counts.min() >= 12 and counts.max() <= 16
        assert counts.float().std() > 0
        assert len({tuple(m.tolist()) for m in mask[:, 0]}) > 32


def test_mask_first_follows_the_order():
    orders = torch.tensor([[3, 0, 2, 1], [0, 1, 2, 3]])
    m = mask_first(orders, torch.tensor([2, 1]))
    assert m.tolist() == [[True, False, False, True], [True, False, False, False]]
    perm = random_orders(5, 16, torch.Generator().manual_seed(0))
    assert torch.equal(perm.sort(dim=1).values, torch.arange(16).expand(5, 16))


def test_cosine_schedule_reveals_everything_and_decreases():
    assert cosine_mask_counts(1, 16) == [0]
    for n in range(2, 9):
        c = cosine_mask_counts(n, 16)
        assert len(c) == n and c[-1] == 0
        assert all(a > b for a, b in zip([16] + c, c))


def test_resolve_mode_draws_by_weight_and_rejects_unknown_names():
    weights = {name: 0.0 for name in MODE_NAMES}
    weights["policy"] = 1.0
    g = torch.Generator().manual_seed(0)
    assert {resolve_mode(None, weights, g).name for _ in range(20)} == {"policy"}
    uniform = {name: 1.0 for name in MODE_NAMES}
    drawn = [resolve_mode(None, uniform, g).name for _ in range(500)]
    assert set(drawn) == set(MODE_NAMES)
    assert min(drawn.count(n) for n in MODE_NAMES) > 60
    assert resolve_mode("joint", uniform).name == "joint"
    with pytest.raises(WorldModelError, match="unknown mode 'dream'"):
        resolve_mode("dream", uniform)


def test_action_weights_make_the_action_loss_a_weighted_mean_over_items(tiny_model):
    """Per-item weights (advantage-weighted regression): one-hot weights pick one item's loss, equal
    weights give the plain mean, and a bad weight vector is refused in one line."""
    batch = square_windows(tiny_model, 2, seed=3)

    def action_loss(weights):
        b = dict(batch) if weights is None else {**batch, "action_weights": torch.tensor(weights)}
        return tiny_model(b, mode="policy", generator=torch.Generator().manual_seed(0))[1]["action_loss"]

    first, second, plain = action_loss([1.0, 0.0]), action_loss([0.0, 1.0]), action_loss(None)
    assert first != pytest.approx(second)
    assert plain == pytest.approx((first + second) / 2, rel=1e-5)
    assert action_loss([3.0, 3.0]) == pytest.approx(plain, rel=1e-5)
    assert action_loss([3.0, 1.0]) == pytest.approx(0.75 * first + 0.25 * second, rel=1e-5)
    for bad in ([1.0], [1.0, float("nan")], [-1.0, 1.0], [0.0, 0.0]):
        with pytest.raises(WorldModelError, match="action_weights"):
            action_loss(bad)


def test_goal_actions_are_the_targets_of_the_policy_mode_only(tiny_model):
    """Goal-reaching relabels train the policy (nothing it sees shows the recorded future); the modes
    that see future frames keep the recorded chunk, which those frames show."""
    batch = square_windows(tiny_model, 2, seed=4)
    relabelled = {**batch, "goal_actions": torch.zeros_like(batch["actions"])}

    def action_loss(b, mode):
        return tiny_model(b, mode=mode, generator=torch.Generator().manual_seed(0))[1]["action_loss"]

    assert action_loss(relabelled, "policy") != pytest.approx(action_loss(batch, "policy"))
    assert action_loss({**batch, "goal_actions": batch["actions"]}, "policy") == pytest.approx(action_loss(batch, "policy"))
    for mode in ("inverse_dynamics", "joint"):
        assert action_loss(relabelled, mode) == pytest.approx(action_loss(batch, mode))
    with pytest.raises(WorldModelError, match="goal_actions"):
        action_loss({**batch, "goal_actions": batch["actions"][:, :3]}, "policy")
