"""Shapes and contracts of the inference API, and its input checks."""

import numpy as np
import pytest
import torch

from tests.world_model.conftest import ACTION_HIGH, ACTION_LOW, square_windows
from world_model.errors import WorldModelError
from world_model.model import ForwardResult

B = 3


@pytest.fixture
def batch(tiny_model):
    return square_windows(tiny_model, B)


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_encode_decode_shapes(tiny_model, batch):
    lat = tiny_model.encode(batch["history"])
    assert lat.shape == (B, 4, 8, 8, 4)
    assert tiny_model.encode(batch["goal"]).shape == (B, 8, 8, 4)
    frames = tiny_model.decode(lat)
    assert frames.shape == (B, 4, 64, 64, 3) and frames.dtype == torch.float32
    assert torch.allclose(tiny_model.encode(batch["history"].float() / 255), lat, atol=1e-5)
    assert torch.allclose(tiny_model.encode(batch["history"].numpy()), lat)


def test_policy_shape_and_env_units(tiny_model, batch):
    out = tiny_model.policy(batch["history"], batch["goal"], num_samples=5, generator=_gen())
    assert out.shape == (B, 5, 16, 2)
    assert out.min() >= ACTION_LOW[0] and out.max() <= ACTION_HIGH[0]
    assert tiny_model.policy(batch["history"]).shape == (B, 1, 16, 2)


def test_policy_runs_one_transformer_pass_and_never_the_video_head_or_decoder(tiny_model, batch, monkeypatch):
    calls = {"backbone": 0}
    original = tiny_model.backbone.forward

    def counting(*args, **kwargs):
        calls["backbone"] += 1
        return original(*args, **kwargs)

    def forbidden(*args, **kwargs):
        raise AssertionError("policy must not call this")

    monkeypatch.setattr(tiny_model.backbone, "forward", counting)
    monkeypatch.setattr(tiny_model.video_head, "forward", forbidden)
    monkeypatch.setattr(tiny_model.video_head, "sample", forbidden)
    monkeypatch.setattr(tiny_model.video_head.diffusion, "sample", forbidden)
    monkeypatch.setattr(tiny_model.tokenizer, "decode", forbidden)
    monkeypatch.setattr(tiny_model.tokenizer.decoder, "forward", forbidden)
    monkeypatch.setattr(tiny_model, "decode", forbidden)
    out = tiny_model.policy(batch["history"], batch["goal"], num_samples=4, num_steps=8)
    assert out.shape == (B, 4, 16, 2)
    assert calls["backbone"] == 1
    # the guard is real: the video route does hit the forbidden head
    with pytest.raises(AssertionError, match="must not"):
        tiny_model.predict_video(batch["history"])


def test_forward_dynamics_rolls_out_chunk_by_chunk(tiny_model, batch):
    acts = torch.rand(B, 48, 2) * 3 - 1.5
    res = tiny_model.forward_dynamics(batch["history"], acts, batch["goal"], decode=True, generator=_gen())
    assert isinstance(res, ForwardResult)
    assert res.latents.shape == (B, 12, 8, 8, 4)
    assert res.frames.shape == (B, 12, 64, 64, 3)
    assert res.distance.shape == (B, 12) and torch.all(res.distance >= 0)
    assert res.latent_distance.shape == (B, 12) and torch.all(res.latent_distance >= 0)
    # the latent-comparison distance is the temporal distance of the imagined frames
    again = tiny_model.temporal_distance(latents=res.latents, goal=batch["goal"])
    assert torch.allclose(again, res.latent_distance, rtol=1e-4, atol=1e-4)
    no_goal = tiny_model.forward_dynamics(batch["history"], acts[:, :16])
    assert no_goal.distance is None and no_goal.latent_distance is None
    assert no_goal.frames is None and no_goal.latents.shape == (B, 4, 8, 8, 4)


def test_forward_dynamics_feeds_predictions_back_as_history(tiny_model, batch):
    acts = torch.rand(B, 32, 2)
    hist = tiny_model.encode(batch["history"])
    both = tiny_model.forward_dynamics(history_latents=hist, actions=acts, generator=_gen(3), num_steps=2)
    first = tiny_model.forward_dynamics(history_latents=hist, actions=acts[:, :16], generator=_gen(3), num_steps=2)
    assert torch.allclose(both.latents[:, :4], first.latents, atol=1e-5)
    # the second chunk equals a fresh call from the first chunk's predictions (same random stream)
    g = _gen(3)
    tiny_model.forward_dynamics(history_latents=hist, actions=acts[:, :16], generator=g, num_steps=2)
    second = tiny_model.forward_dynamics(history_latents=first.latents, actions=acts[:, 16:], generator=g, num_steps=2)
    assert torch.allclose(both.latents[:, 4:], second.latents, atol=1e-5)


def test_forward_dynamics_distance_without_sampling_latents(tiny_model, batch, monkeypatch):
    hist = tiny_model.encode(batch["history"])
    goal = tiny_model.encode(batch["goal"])
    acts = torch.rand(B, 16, 2)
    full = tiny_model.forward_dynamics(history_latents=hist, actions=acts, goal_latents=goal, generator=_gen())

    def forbidden(*args, **kwargs):
        raise AssertionError("video head called")

    monkeypatch.setattr(tiny_model.video_head, "sample", forbidden)
    cheap = tiny_model.forward_dynamics(history_latents=hist, actions=acts, goal_latents=goal, sample_latents=False)
    assert cheap.latents is None and cheap.latent_distance is None
    assert torch.allclose(cheap.distance, full.distance, atol=1e-5)


def test_forward_dynamics_shares_a_single_history(tiny_model, batch):
    hist = tiny_model.encode(batch["history"][:1])
    res = tiny_model.forward_dynamics(history_latents=hist, actions=torch.rand(7, 16, 2), goal_latents=hist[:, -1])
    assert res.latents.shape == (7, 4, 8, 8, 4) and res.distance.shape == (7, 4)


def test_sampling_is_deterministic_with_a_generator(tiny_model, batch):
    a = tiny_model.policy(batch["history"], num_samples=2, generator=_gen(7))
    b = tiny_model.policy(batch["history"], num_samples=2, generator=_gen(7))
    c = tiny_model.policy(batch["history"], num_samples=2, generator=_gen(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    p = tiny_model.predict_video(batch["history"], num_iters=3, generator=_gen(7)).latents
    q = tiny_model.predict_video(batch["history"], num_iters=3, generator=_gen(7)).latents
    assert torch.equal(p, q)


@pytest.mark.parametrize("num_iters", [1, 2, 8])
def test_predict_video_shapes(tiny_model, batch, num_iters):
    res = tiny_model.predict_video(batch["history"], batch["goal"], num_iters=num_iters, decode=True, num_steps=1)
    assert res.latents.shape == (B, 4, 8, 8, 4) and res.frames.shape == (B, 4, 64, 64, 3)
    assert res.distance.shape == (B, 4)
    assert torch.isfinite(res.latents).all()


def test_temperature_zero_makes_sampling_deterministic(tiny_model, batch):
    a = tiny_model.policy(batch["history"], temperature=0.0, generator=_gen(1))
    b = tiny_model.policy(batch["history"], temperature=0.0, generator=_gen(2))
    assert torch.equal(a, b)


@pytest.mark.parametrize("head", ["latent", "joint"])
def test_temporal_distance_shape(tiny_model, batch, head):
    d = tiny_model.temporal_distance(batch["future"], batch["goal"], head=head)
    assert d.shape == (B, 4) and torch.all(d >= 0)
    shared = tiny_model.temporal_distance(batch["future"], batch["goal"][:1], head=head)
    assert torch.allclose(shared[:1], d[:1], rtol=1e-4, atol=1e-4)
    # each frame is scored on its own: the same frame gives the same distance wherever it sits
    frames = batch["future"][:1, [0, 0, 2]]
    d3 = tiny_model.temporal_distance(frames, batch["goal"][:1], head=head)
    assert torch.allclose(d3[0, 0], d3[0, 1], rtol=1e-4, atol=1e-4)


def test_inverse_dynamics_shapes(tiny_model, batch):
    video = torch.cat([batch["history"], batch["future"]], dim=1)  # 8 frames -> 7 actions
    out = tiny_model.inverse_dynamics(video)
    assert out.shape == (B, 7, 2)
    mean, std = tiny_model.inverse_dynamics(video, num_samples=3, return_std=True, generator=_gen())
    assert mean.shape == std.shape == (B, 7, 2) and torch.all(std >= 0)
    assert tiny_model.inverse_dynamics(video[:, :2]).shape == (B, 1, 2)


def test_inverse_dynamics_averages_overlapping_windows(tiny_model, monkeypatch):
    """Each window 'predicts' its own index for every action; a step's answer must be the mean of the
    indices of the windows covering it, and the spread their standard deviation."""
    cfg = tiny_model.config
    t = 30  # 29 actions, windows start at 0, 4, ..., 28 -> 8 windows of 16 actions each
    window_ids = []

    def fake_sample(z, num_samples=1, num_steps=None, temperature=None, generator=None):
        n = z.shape[0]
        start = len(window_ids)
        window_ids.extend(range(start, start + n))
        ids = torch.arange(start, start + n, dtype=torch.float32) / 10.0
        return ids.view(n, 1, 1, 1).expand(n, num_samples, cfg.chunk_len, cfg.action_dim)

    monkeypatch.setattr(tiny_model.action_head, "sample", fake_sample)
    frames = torch.zeros(1, t, 64, 64, 3, dtype=torch.uint8)
    mean, std = tiny_model.inverse_dynamics(frames, return_std=True, max_batch=3)
    assert len(window_ids) == 8
    scale = (ACTION_HIGH[0] - ACTION_LOW[0]) / 2
    for step in range(t - 1):
        covering = [w / 10.0 for w in range(8) if w * 4 <= step < w * 4 + cfg.chunk_len]
        assert mean[0, step, 0].item() == pytest.approx(np.mean(covering) * scale, abs=1e-5)
        assert std[0, step, 1].item() == pytest.approx(np.std(covering) * scale, abs=1e-4)


@pytest.mark.parametrize(
    "call, fragment",
    [
        (lambda m, b: m.policy(b["history"][:, :3]), r"history has shape \(3, 3, 64, 64, 3\); expected \[B, 4, 64, 64, 3\]"),
        (lambda m, b: m.policy(b["history"][..., :2]), "expected"),
        (lambda m, b: m.policy(b["history"].float()), r"expected \[0, 1\]"),
        (lambda m, b: m.policy(b["history"].float() * np.nan), "NaN"),
        (lambda m, b: m.policy(b["history"].int()), "dtype"),
        (lambda m, b: m.policy(None), "neither history nor history_latents"),
        (lambda m, b: m.policy(b["history"], history_latents=torch.zeros(3, 4, 8, 8, 4)), "only one"),
        (lambda m, b: m.policy(b["history"], num_samples=0), "num_samples"),
        (lambda m, b: m.policy(b["history"], num_steps=0), "num_steps"),
        (lambda m, b: m.policy(b["history"], num_steps=101), "num_steps"),
        (lambda m, b: m.policy(b["history"], temperature=-1.0), "temperature"),
        (lambda m, b: m.policy(b["history"], b["goal"][:, :32]), "goal has shape"),
        (lambda m, b: m.policy(b["history"], b["goal"][:2]), "batch size 2"),
        (lambda m, b: m.forward_dynamics(b["history"], torch.zeros(3, 10, 2)), "multiple of the chunk length 16"),
        (lambda m, b: m.forward_dynamics(b["history"], torch.zeros(3, 16, 5)), r"expected \[B, L, 2\]"),
        (lambda m, b: m.forward_dynamics(b["history"], torch.full((3, 16, 2), np.nan)), "NaN"),
        (lambda m, b: m.forward_dynamics(b["history"], torch.zeros(2, 16, 2)), "history has batch size 3"),
        (lambda m, b: m.forward_dynamics(b["history"]), "actions were not given"),
        (lambda m, b: m.forward_dynamics(b["history"], torch.zeros(3, 16, 2), num_iters=0), "num_iters"),
        (lambda m, b: m.predict_video(history_latents=torch.zeros(3, 4, 8, 8, 3)), "history_latents has shape"),
        (lambda m, b: m.predict_video(history_latents=torch.full((3, 4, 8, 8, 4), np.inf)), "NaN or infinite"),
        (lambda m, b: m.inverse_dynamics(b["history"][:, :1]), "at least 2"),
        (lambda m, b: m.inverse_dynamics(latents=torch.zeros(2, 5, 8, 8, 3)), r"latents has shape \(2, 5, 8, 8, 3\)"),
        (lambda m, b: m.inverse_dynamics(b["history"], latents=torch.zeros(3, 4, 8, 8, 4)), "both frames and latents"),
        (lambda m, b: m.temporal_distance(b["future"]), "neither goal nor goal_latents"),
        (lambda m, b: m.temporal_distance(b["future"], b["goal"], head="pixel"), "expected 'latent' or 'joint'"),
        (lambda m, b: m.encode("frames"), "expected a torch tensor"),
        (lambda m, b: m.decode(torch.zeros(2, 4, 4, 4)), "latents has shape"),
        (lambda m, b: m({**b, "actions": b["actions"][:, :8]}), r"expected \[3, 16, 2\]"),
        (lambda m, b: m({k: v for k, v in b.items() if k != "actions"}), "no 'actions'"),
        (lambda m, b: m({**b, "goal_steps": torch.tensor([1.0, np.nan, 2.0])}), "goal_steps"),
        (lambda m, b: m(b, mode="dream"), "unknown mode"),
    ],
)
def test_bad_inputs_raise_world_model_error(tiny_model, batch, call, fragment):
    with pytest.raises(WorldModelError, match=fragment):
        call(tiny_model, batch)
