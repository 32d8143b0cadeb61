"""Shared fixtures: a tiny UVA and a synthetic moving-square video whose actions are its velocity, so
every mode has something learnable and every test stays fast on 2 CPU cores."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from world_model.config import make_config
from world_model.model import UVA

ACTION_LOW = [-2.0, -2.0]
ACTION_HIGH = [2.0, 2.0]


def tiny_config(**overrides):
    return make_config("tiny", ACTION_LOW, ACTION_HIGH, env_name="square", **overrides)


@pytest.fixture(autouse=True)
def one_torch_thread():
    """These tests run tiny tensors on a shared 2-core machine, where a second intra-op thread mostly
    spins: measured 8.5 s with one thread vs 181 s with two under load for the overfit test."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def tiny_model():
    torch.manual_seed(0)
    return UVA(tiny_config())


def square_video(n_steps: int, start, velocities, size: int = 64, side: int = 8) -> np.ndarray:
    """``[n_steps + 1, size, size, 3]`` uint8: a white square on a dark background, moved by
    ``velocities [n_steps, 2]`` pixels per step (the actions), clipped to the frame."""
    frames = np.full((n_steps + 1, size, size, 3), 20, dtype=np.uint8)
    pos = np.array(start, dtype=np.float64)
    for t in range(n_steps + 1):
        x, y = np.clip(np.round(pos).astype(int), 0, size - side)
        frames[t, y : y + side, x : x + side] = 235
        if t < n_steps:
            pos = np.clip(pos + velocities[t], 0, size - side)
    return frames


def square_windows(model: UVA, n_items: int, seed: int = 0) -> dict:
    """A batch of ``WindowDataset``-like items (frames uint8, normalised actions, hindsight goal)."""
    cfg = model.config
    rng = np.random.default_rng(seed)
    s, th, tf = cfg.frame_stride, cfg.n_history, cfg.n_future
    n_steps = (th - 1) * s + cfg.chunk_len + 8
    hist, fut, goals, acts, steps = [], [], [], [], []
    for _ in range(n_items):
        vel = np.repeat(rng.uniform(-1.5, 1.5, size=(1, 2)), n_steps, axis=0)
        video = square_video(n_steps, rng.uniform(16, 40, size=2), vel)
        t = (th - 1) * s
        hist.append(video[t - (th - 1) * s : t + 1 : s])
        fut.append(video[t + s : t + tf * s + 1 : s])
        k = int(rng.integers(1, n_steps - t + 1))
        goals.append(video[t + k])
        steps.append(float(k))
        acts.append(vel[t : t + cfg.chunk_len])
    actions = model.normalizer.normalize(torch.tensor(np.stack(acts), dtype=torch.float32))
    return {
        "history": torch.from_numpy(np.stack(hist)),
        "future": torch.from_numpy(np.stack(fut)),
        "goal": torch.from_numpy(np.stack(goals)),
        "actions": actions,
        "goal_steps": torch.tensor(steps),
    }
