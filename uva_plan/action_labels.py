"""Action labels for action-free videos: UVA's inverse-dynamics mode reads the video in overlapping
windows; every step's action is the average over the windows covering it and over several diffusion
samples, and their spread is the step's uncertainty. With PushT's position targets two frames do not
determine an action, so the windows keep UVA's history frames and the averaging happens over whole
chunks. Also: the label metrics and the labels files (`uva-plan imitate --mode label`).

Shapes: videos ``uint8 [B, T, S, S, 3]`` (one frame per env step), actions ``[B, T-1, A]`` in env units.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from uva_plan.errors import UserInputError
from world_model.files import atomic_write_bytes


def min_video_frames(config) -> int:
    """The shortest labellable video: one full action chunk, ``chunk_len`` steps, so ``chunk_len + 1``
    frames (shorter clips leave the model's window mostly padding)."""
    return int(config.chunk_len) + 1


# ----------------------------------------------------------------------------------------- labelling


@dataclass
class Labels:
    """Inferred actions ``[..., T-1, A]`` (env units) and their per-step spread ``std`` (same shape)."""

    actions: np.ndarray
    std: np.ndarray


def average_overlapping(parts: Sequence[tuple[int, np.ndarray, np.ndarray]], n_steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Merge predictions that cover overlapping step ranges.

    parts: ``(offset, mean [B, n_steps - offset, A], std [B, n_steps - offset, A])``, each covering steps
    ``offset .. n_steps - 1``. Returns ``(mean, std)`` ``[B, n_steps, A]``: the equal-weight average of
    the parts covering each step, and the spread of their pooled samples (law of total variance:
    mean of second moments minus the squared mean).
    """
    if not parts:
        raise UserInputError("no predictions to average; expected at least one (offset, mean, std) part")
    b, a = parts[0][1].shape[0], parts[0][1].shape[-1]
    total = np.zeros((b, n_steps, a))
    second = np.zeros((b, n_steps, a))
    count = np.zeros((1, n_steps, 1))
    for offset, mean, std in parts:
        if mean.shape != (b, n_steps - offset, a) or std.shape != mean.shape:
            raise UserInputError(
                f"part at offset {offset} has mean {mean.shape} and std {std.shape}; expected "
                f"[{b}, {n_steps - offset}, {a}] each"
            )
        total[:, offset:] += mean
        second[:, offset:] += std**2 + mean**2
        count[:, offset:] += 1
    if np.any(count == 0):
        raise UserInputError(f"steps {np.flatnonzero(count[0, :, 0] == 0).tolist()} are covered by no part; expected full coverage")
    mean = total / count
    var = np.clip(second / count - mean**2, 0.0, None)
    return mean.astype(np.float32), np.sqrt(var).astype(np.float32)


def label_frames(model, frames, *, num_samples: int = 4, dense: bool = True, num_steps: int | None = None,
                 seed: int = 0) -> Labels:
    """Inverse dynamics over a video: ``uint8 [T, S, S, 3]`` (or a batch ``[B, T, S, S, 3]`` of equal
    length) -> ``Labels`` ``[T-1, A]`` (or ``[B, T-1, A]``).

    UVA's ``inverse_dynamics`` starts a window every ``frame_stride`` steps; ``dense`` also runs it on
    the video shifted by 1 .. stride-1 steps, so every step is covered by windows starting at every
    phase (up to ``chunk_len`` windows instead of ``n_future``), and averages them. The frames are
    encoded once.
    """
    import torch

    cfg = model.config
    x = torch.as_tensor(np.asarray(frames))
    single = x.ndim == 4
    if single:
        x = x[None]
    s = cfg.image_size
    if x.ndim != 5 or tuple(x.shape[2:]) != (s, s, 3) or x.shape[1] < 2 or x.shape[0] < 1:
        raise UserInputError(
            f"video frames have shape {tuple(x.shape)}; expected [T, {s}, {s}, 3] or [B, T, {s}, {s}, 3] with T >= 2"
        )
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
        raise UserInputError(f"num_samples is {num_samples!r}; expected an integer >= 1")
    t = x.shape[1]
    gen = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        latents = model.encode(x)
        parts = []
        for offset in range(cfg.frame_stride if dense else 1):
            if t - offset < 2:
                break
            mean, std = model.inverse_dynamics(latents=latents[:, offset:], num_samples=num_samples, return_std=True,
                                               num_steps=num_steps, generator=gen)
            parts.append((offset, mean.cpu().numpy(), std.cpu().numpy()))
    mean, std = average_overlapping(parts, t - 1)
    return Labels(mean[0], std[0]) if single else Labels(mean, std)


def action_metrics(pred, true, low, high) -> dict:
    """How close inferred actions are to the true ones, over all steps (and videos) together.

    ``action_r2``: 1 - SSE / SST per action dimension, averaged over dimensions with any variance
    (sklearn's ``uniform_average``; None if no dimension varies); ``action_mse`` in env units;
    ``action_mse_normalized`` in the model's [-1, 1] units, comparable across envs.
    """
    p = np.asarray(pred, dtype=np.float64)
    y = np.asarray(true, dtype=np.float64)
    if p.shape != y.shape or p.ndim < 2 or p.size == 0:
        raise UserInputError(f"inferred actions have shape {p.shape} and true actions {y.shape}; expected equal shapes [..., T-1, A]")
    if not (np.all(np.isfinite(p)) and np.all(np.isfinite(y))):
        raise UserInputError("actions contain NaN or infinite values; expected finite actions to score")
    a = p.shape[-1]
    p, y = p.reshape(-1, a), y.reshape(-1, a)
    err = p - y
    sse = (err**2).sum(0)
    sst = ((y - y.mean(0)) ** 2).sum(0)
    varying = sst > 1e-12
    r2 = float(np.mean(1.0 - sse[varying] / sst[varying])) if varying.any() else None
    half = (np.asarray(high, dtype=np.float64) - np.asarray(low, dtype=np.float64)) / 2.0
    return {
        "action_r2": r2,
        "action_mse": float((err**2).mean()),
        "action_mse_normalized": float(((err / half) ** 2).mean()),
    }


def save_labels(out_dir: str | Path, labels: Labels, true_actions: np.ndarray | None = None) -> tuple[Path, Path]:
    """Write ``actions.npz`` (``actions``, ``std`` [, ``true_actions``]) and ``actions.csv`` (one row per
    step) into ``out_dir``, each atomically. Returns both paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    actions, std = np.asarray(labels.actions, np.float32), np.asarray(labels.std, np.float32)
    arrays = {"actions": actions, "std": std}
    if true_actions is not None:
        arrays["true_actions"] = np.asarray(true_actions, np.float32)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    npz = out / "actions.npz"
    atomic_write_bytes(npz, buf.getvalue())

    a = actions.shape[-1]
    header = ["step", *[f"action_{i}" for i in range(a)], *[f"std_{i}" for i in range(a)]]
    if true_actions is not None:
        header += [f"true_action_{i}" for i in range(a)]
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(header)
    for t in range(actions.shape[0]):
        row = [t, *(f"{v:.6g}" for v in actions[t]), *(f"{v:.6g}" for v in std[t])]
        if true_actions is not None:
            row += [f"{v:.6g}" for v in arrays["true_actions"][t]]
        writer.writerow(row)
    path_csv = out / "actions.csv"
    atomic_write_bytes(path_csv, text.getvalue().encode())
    return npz, path_csv
