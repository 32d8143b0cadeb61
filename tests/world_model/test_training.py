"""A tiny UVA overfits a tiny synthetic batch (a moving square whose actions are its velocity) in every
mode: each mode's losses, measured with the same noise before and after, fall by a set factor."""

import torch

from tests.world_model.conftest import square_windows, tiny_config
from world_model.config import MODE_NAMES
from world_model.model import UVA
from world_model.modes import MODES

STEPS = 250
# Measured (seeds 0, 1; 250 steps): video ~0.15-0.18x, action ~0.13-0.28x, distances <= 0.03x.
FACTORS = {"video_loss": 0.5, "action_loss": 0.75, "distance_loss": 0.5, "latent_distance_loss": 0.5}


def _pooled_latents(frames: torch.Tensor) -> torch.Tensor:
    """Stand-in latents that do not depend on a trained tokenizer: 8x8 average-pooled RGB plus
    brightness, standardised - ``[..., 64, 64, 3]`` uint8 -> ``[..., 8, 8, 4]``."""
    x = frames.float() / 255.0
    lead = x.shape[:-3]
    x = x.reshape(-1, 8, 8, 8, 8, 3).mean(dim=(2, 4))
    x = torch.cat([x, x.mean(dim=-1, keepdim=True)], dim=-1)
    return ((x - 0.2) / 0.2).reshape(*lead, 8, 8, 4)


def _evaluate(model, batch):
    out = {}
    with torch.no_grad():
        for mode in MODE_NAMES:
            sums = {}
            for seed in range(3):
                _, logs = model(batch, mode=mode, generator=torch.Generator().manual_seed(100 + seed))
                for key in FACTORS:
                    if key in logs:
                        sums[key] = sums.get(key, 0.0) + logs[key] / 3
            out[mode] = sums
    return out


def test_tiny_model_overfits_every_mode():
    torch.manual_seed(0)
    # Plain MSE for the distance heads (expectile 0.5): this test is about capacity; the expectile
    # loss has its own test below.
    model = UVA(tiny_config(static_history_prob=0.0, distance_expectile=0.5))
    frames = square_windows(model, 8)
    model.freeze_tokenizer()
    batch = {
        "history_latents": _pooled_latents(frames["history"]),
        "future_latents": _pooled_latents(frames["future"]),
        "goal_latents": _pooled_latents(frames["goal"]),
        "actions": frames["actions"],
        "goal_steps": frames["goal_steps"],
    }
    before = _evaluate(model, batch)
    assert all(torch.isfinite(torch.tensor(list(v.values()))).all() for v in before.values())
    opt = torch.optim.AdamW(model.world_parameters(), 2e-3, weight_decay=0.0, foreach=True)
    g = torch.Generator().manual_seed(0)
    seen = set()
    for _ in range(STEPS):
        loss, logs = model(batch, generator=g)
        seen.add(logs["mode"])
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert seen == set(MODE_NAMES)
    after = _evaluate(model, batch)
    for mode in MODE_NAMES:
        assert set(after[mode]) == set(before[mode])
        for key, value in after[mode].items():
            assert value < FACTORS[key] * before[mode][key], (mode, key, before[mode][key], value)


def test_each_mode_trains_its_own_heads_and_never_the_tokenizer():
    """The modes differ in which heads their loss reaches: the action head only where actions are a
    target, the video head only where frames are; the frozen tokenizer never."""
    torch.manual_seed(0)
    model = UVA(tiny_config())
    model.freeze_tokenizer()
    batch = square_windows(model, 2)
    for mode in MODE_NAMES:
        model.zero_grad(set_to_none=True)
        loss, _ = model(batch, mode=mode, generator=torch.Generator().manual_seed(0))
        loss.backward()
        got = {name.split(".")[0] for name, p in model.named_parameters() if p.grad is not None}
        assert "backbone" in got and "tokenizer" not in got, (mode, got)
        assert ("video_head" in got) == MODES[mode].video_loss, (mode, got)
        assert ("action_head" in got) == MODES[mode].action_loss, (mode, got)


def test_expectile_loss_is_mse_at_one_half_and_fits_the_lower_envelope_below():
    from world_model.model import expectile_loss

    pred, target = torch.tensor([1.0, 3.0]), torch.tensor([2.0, 2.0])
    assert torch.allclose(expectile_loss(pred, target, 0.5), (pred - target).pow(2))
    low = expectile_loss(pred, target, 0.1)
    assert low[1] > low[0]  # over-estimating costs 9x more than under-estimating at tau = 0.1
    # The minimiser over a spread of targets sits in their lower part.
    x = torch.zeros((), requires_grad=True)
    targets = torch.arange(11.0)
    opt = torch.optim.SGD([x], lr=0.05)
    for _ in range(400):
        opt.zero_grad()
        expectile_loss(x.expand(11), targets, 0.1).mean().backward()
        opt.step()
    assert 1.0 < float(x.detach()) < 3.5


def test_foreground_weight_marks_object_tokens_and_reweights_only_them():
    """`video_foreground_weight`: tokens that differ from the empty scene (the tokenizer's fitted
    background) weigh more in the video loss; a batch showing only the empty scene keeps the plain mean."""
    torch.manual_seed(0)
    plain = UVA(tiny_config(video_foreground_threshold=2.0))
    weighted = UVA(tiny_config(video_foreground_weight=9.0, video_foreground_threshold=2.0))
    weighted.load_state_dict(plain.state_dict())
    batch = square_windows(plain, 4)
    for model in (plain, weighted):
        model.tokenizer.fit_background(torch.full((1, 64, 64, 3), 20, dtype=torch.uint8))
        model.freeze_tokenizer()
    tok = weighted.tokenizer
    hist_t = tok.patchify(weighted.encode(batch["history"]))
    fut_t = tok.patchify(weighted.encode(batch["future"]))
    w = weighted._foreground_token_weights(hist_t[:, -1:], fut_t)
    assert set(w.unique().tolist()) == {1.0, 10.0}
    assert (w == 10.0).float().mean() < 0.75  # the square and its neighbourhood, not the whole frame
    empty = {**batch, "history": torch.full_like(batch["history"], 20), "future": torch.full_like(batch["future"], 20)}
    assert (weighted._foreground_token_weights(tok.patchify(weighted.encode(empty["history"]))[:, -1:],
                                               tok.patchify(weighted.encode(empty["future"]))) == 1.0).all()

    def video_loss(model, b):
        return model(b, mode="forward_dynamics", generator=torch.Generator().manual_seed(0))[1]["video_loss"]

    assert video_loss(weighted, empty) == video_loss(plain, empty)
    assert abs(video_loss(weighted, batch) - video_loss(plain, batch)) > 1e-6
