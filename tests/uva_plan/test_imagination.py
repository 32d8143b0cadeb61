"""The imagination measures can tell a model that follows the simulator from one that ignores the
actions: checked with two stand-in models whose answers are known."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from uva_plan.imagination import (
    SamplingSettings,
    direction_test,
    heldout_episodes,
    imagination_sheet,
    measure_imagination,
)

CONFIG = SimpleNamespace(frame_stride=4, n_history=4, n_future=4, chunk_len=16, image_size=64)


class _StandIn:
    """forward_dynamics answers from a lookup of the true futures (oracle) or repeats the current frame
    (copy-last); encode/decode are the identity on float frames."""

    config = CONFIG

    def __init__(self, futures: dict | None):
        self.futures = futures

    def forward_dynamics(self, history, actions, decode=True, **_):
        hist = history.numpy()
        out = []
        for h, a in zip(hist, actions.numpy()):
            key = (h[-1].tobytes(), a.tobytes())
            if self.futures is not None and key in self.futures:
                out.append(self.futures[key])
            else:
                out.append(np.repeat(h[-1:], CONFIG.n_future, axis=0))
        return SimpleNamespace(frames=torch.from_numpy(np.stack(out).astype(np.float32) / 255.0))

    def encode(self, frames):
        return frames

    def decode(self, latents):
        return latents.float() / 255.0 if latents.dtype == torch.uint8 else latents


@pytest.fixture(scope="module")
def episodes():
    return heldout_episodes(n_per_kind=2, steps=40)


def _oracle(episodes):
    futures = {}
    for ep in episodes:
        for t in range(len(ep.frames) - CONFIG.chunk_len):
            key = (ep.frames[t].tobytes(), ep.actions[t : t + CONFIG.chunk_len].tobytes())
            futures[key] = ep.frames[t + CONFIG.frame_stride * np.arange(1, CONFIG.n_future + 1)]
    return _StandIn(futures)


def test_held_out_episodes_are_reproducible_and_disjoint_from_training_seeds(episodes):
    again = heldout_episodes(n_per_kind=2, steps=40)
    assert all(np.array_equal(a.frames, b.frames) for a, b in zip(episodes, again))
    assert {ep.kind for ep in episodes} == {"expert", "random"}
    assert episodes[0].frames.shape == (41, 64, 64, 3) and episodes[0].actions.shape == (40, 2)


def test_an_oracle_is_present_and_exact_and_copy_last_is_not(episodes):
    settings = SamplingSettings("planner")
    for rep in measure_imagination(_oracle(episodes), episodes, settings, every=4):
        for h in rep.horizons:
            assert h.present == 1.0
            assert h.median_error < 0.1
    expert = next(r for r in measure_imagination(_StandIn(None), episodes, settings, every=4) if r.kind == "expert")
    last = expert.horizons[-1]
    assert last.median_error == pytest.approx(last.copy_last_error, abs=0.1)
    assert last.median_error > 5.0  # the expert moves: ignoring the actions is far off


def test_direction_test_fails_a_model_that_ignores_the_actions():
    results = direction_test(_StandIn(None), n_starts=4)
    assert [r.direction for r in results] == ["right", "left", "down", "up"]
    assert all(r.moved_right_way == 0.0 for r in results)
    # staying put is right only where a wall blocks the way
    assert np.mean([r.near for r in results]) < 0.5


def test_sheet_is_a_png(tmp_path, episodes):
    path = tmp_path / "sheet.png"
    imagination_sheet(_StandIn(None), episodes, path, n_rows=2)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
