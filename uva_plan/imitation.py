"""Imitation from action-free videos with one UVA model (REFERENCE section 3).

1. Labelling: UVA's inverse-dynamics mode reads the video in overlapping windows; every step's action is
   the average over the windows covering it and over several diffusion samples, and their spread is the
   step's uncertainty. With PushT's position targets two frames do not determine an action, so the
   windows keep UVA's history frames and the averaging happens over whole chunks.
2. Execution, judged only after each episode from the true env state (never inside the loop):
   - ``replay``: the inferred actions open-loop from the video's first state;
   - ``track``: goal-image MPC (UVA forward dynamics + a planner) towards successive subgoal frames of
     the video, the inferred actions as the warm-start candidate and the goal-conditioned policy as the
     prior: the video is the plan, the model corrects drift;
   - ``bc``: the policy mode fine-tuned on pseudo-labelled videos (VPT-style), then run towards the
     video's last frame; compared with the same fine-tuning on the true labels when they are known.
3. ``run_imitation``: the ``uva-plan imitate`` job (labels files, results.json, GIF, table).

Shapes: videos ``uint8 [B, T, S, S, 3]`` (one frame per env step), actions ``[B, T-1, A]`` in env units.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from uva_plan.errors import UserInputError

MODES = ("label", "replay", "track", "bc")
TRACK_COST = "subgoal"


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


def _atomic_bytes(path: Path, data: bytes) -> None:
    from uva_plan.train_state import atomic_write_bytes

    atomic_write_bytes(path, data)


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
    _atomic_bytes(npz, buf.getvalue())

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
    _atomic_bytes(path_csv, text.getvalue().encode())
    return npz, path_csv


# ----------------------------------------------------------------------------------------- execution


@dataclass
class Rollout:
    """What one execution mode did on B episodes: ``frames`` per episode ``uint8 [n + 1, S, S, 3]``
    (the start frame first), ``final_states [B, D]``, executed ``actions [B, n, A]`` (clipped; None
    where the executor does not report them, as the planning evaluator's policy loop)."""

    frames: list[np.ndarray]
    final_states: np.ndarray
    actions: np.ndarray | None = None


def _rollout(batch, actions) -> Rollout:
    return Rollout([np.stack(f) for f in batch.frames], batch.states(), np.asarray(actions, dtype=np.float32))


def replay_actions(env_name: str, start_states, actions, image_size: int = 64) -> Rollout:
    """Open-loop replay of ``actions [B, n, A]`` from ``start_states [B, D]``."""
    from uva_plan.env_batch import EnvBatch

    acts = np.asarray(actions, dtype=np.float32)
    if acts.ndim != 3 or acts.shape[0] != len(start_states) or acts.shape[1] < 1:
        raise UserInputError(f"actions have shape {acts.shape}; expected [{len(start_states)}, n, A] (one sequence per start state)")
    batch = EnvBatch(env_name, start_states, image_size=image_size)
    if acts.shape[2] != len(batch.action_low):
        raise UserInputError(
            f"actions have {acts.shape[2]} dimensions; expected {len(batch.action_low)} (the {env_name} env's action size)"
        )
    if not np.all(np.isfinite(acts)):
        raise UserInputError("actions contain NaN or infinite values; expected finite actions to replay")
    clipped = np.clip(acts, batch.action_low, batch.action_high)
    batch.step(clipped)
    return _rollout(batch, clipped)


def _pad_to(x, length: int):
    """``[B, n, A] -> [B, length, A]``: cut, or repeat the last step (the video's final action) at the end."""
    import torch

    if x.shape[1] >= length:
        return x[:, :length]
    return torch.cat([x, x[:, -1:].expand(x.shape[0], length - x.shape[1], x.shape[2])], dim=1)


class LabelPrior:
    """Objective wrapper: ``cost + weight * mean(((a - labels) / half_range)^2)`` over the horizon, so
    the planner leaves the inferred actions only where the model predicts a clear gain. Weight 0 is
    pure goal-image MPC; a large weight is open-loop replay."""

    def __init__(self, objective, labels, low, high, weight: float):
        self.objective, self.labels, self.weight = objective, labels, float(weight)
        self.half = (high - low) / 2

    def __call__(self, actions):
        """``actions [B, N, H, A]`` -> costs ``[B, N]``."""
        costs = self.objective(actions)
        labels, half = self.labels[:, None].to(actions), self.half.to(actions)
        deviation = ((actions - labels) / half).pow(2).mean(dim=(2, 3))
        return costs + self.weight * deviation.to(costs)


def track_video(model, env_name: str, start_states, videos, init_actions, *, settings=None,
                subgoal_every: int | None = None, label_weight: float = 0.0, seed: int = 0) -> Rollout:
    """Closed-loop tracking of ``videos uint8 [B, T, S, S, 3]`` for ``T-1`` env steps.

    Before each replan at step t, imagined frame j (at step ``t + j*stride``) is scored against the
    video's next subgoal frame at or after that step (subgoals every ``subgoal_every`` steps, default
    the model's frame stride, i.e. every imagined frame has its own target): the ``subgoal`` cost,
    summed over the horizon. The proposals are the inferred actions ``init_actions [B, T-1, A]`` for
    the coming horizon (the warm-start candidate, kept across planner iterations) plus samples of the
    goal-conditioned policy towards the last subgoal in the horizon (the prior). ``label_weight > 0``
    adds ``LabelPrior``: a cost for leaving the inferred actions.
    """
    import torch

    from planners import run_mpc
    from uva_plan.env_batch import EnvBatch
    from uva_plan.evaluation import make_planner
    from uva_plan.goal_costs import make_cost
    from uva_plan.objective import PolicyProposals, UVAObjective
    from uva_plan.plan_settings import PlanSettings

    cfg = model.config
    vids = torch.as_tensor(np.asarray(videos))
    s_img = cfg.image_size
    if vids.ndim != 5 or tuple(vids.shape[2:]) != (s_img, s_img, 3) or vids.shape[0] != len(start_states):
        raise UserInputError(f"videos have shape {tuple(vids.shape)}; expected [{len(start_states)}, T, {s_img}, {s_img}, 3]")
    b, t_len = vids.shape[:2]
    init = torch.as_tensor(np.asarray(init_actions, dtype=np.float32))
    if tuple(init.shape) != (b, t_len - 1, cfg.action_dim):
        raise UserInputError(f"inferred actions have shape {tuple(init.shape)}; expected [{b}, {t_len - 1}, {cfg.action_dim}]")
    settings = settings or PlanSettings(cost=TRACK_COST)
    settings.validate(cfg.chunk_len)
    stride = cfg.frame_stride
    k = stride if subgoal_every is None else subgoal_every
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise UserInputError(f"subgoal_every is {subgoal_every!r}; expected an integer >= 1 (env steps between subgoal frames)")
    if not (isinstance(label_weight, (int, float)) and math.isfinite(label_weight) and label_weight >= 0):
        raise UserInputError(f"label_weight is {label_weight!r}; expected a finite number >= 0")
    horizon = settings.horizon
    n_imagined = horizon // stride
    cost = make_cost(settings.cost)
    gen = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        video_latents = model.encode(vids)
    batch = EnvBatch(env_name, start_states, image_size=s_img)
    low, high = torch.as_tensor(batch.action_low), torch.as_tensor(batch.action_high)

    def subgoal_index() -> list[int]:
        t = batch.steps
        return [min(k * math.ceil((t + j * stride) / k), t_len - 1) for j in range(1, n_imagined + 1)]

    def history():
        return batch.history(cfg.n_history, stride)

    def make_objective():
        idx = subgoal_index()
        objective = UVAObjective(model, history(), vids[:, idx[-1]], cost, num_steps=settings.denoise_steps,
                                 model_samples=settings.model_samples, subgoals=video_latents[:, idx], generator=gen)
        if label_weight > 0:
            objective = LabelPrior(objective, _pad_to(init[:, batch.steps:], horizon), low, high, label_weight)
        return objective

    def proposals_fn():
        t = batch.steps
        warm = _pad_to(init[:, t:], horizon)
        prior = (PolicyProposals(model, history(), vids[:, subgoal_index()[-1]], num_steps=settings.denoise_steps,
                                 generator=gen) if settings.prior_fraction > 0 else None)

        def sample(bsz: int, m: int):
            parts = [warm[:, None]]
            if m > 1 and prior is not None:
                parts.append(prior(bsz, m - 1, horizon))
            elif m > 1:  # no policy prior: jitter the warm start instead
                noise = torch.randn(bsz, m - 1, horizon, warm.shape[-1], generator=gen) * 0.1 * (high - low) / 2
                parts.append(warm[:, None] + noise)
            return torch.cat(parts, dim=1)

        return sample

    planner = make_planner(settings, settings.prior_fraction)
    result = run_mpc(planner, make_objective, batch.step, batch_size=b, horizon=horizon, action_dim=cfg.action_dim,
                     low=low, high=high, n_execute=settings.execute, budget_steps=t_len - 1, proposals_fn=proposals_fn,
                     seed=settings.seed * 7919 + int(seed), time_budget=settings.time_budget)
    executed = np.clip(result.actions.cpu().numpy(), batch.action_low, batch.action_high)
    return _rollout(batch, executed)


def finetune_policy(model, videos: Sequence[np.ndarray], actions: Sequence[np.ndarray], *, steps: int = 200,
                    batch_size: int = 16, lr: float = 1e-4, seed: int = 0,
                    progress: Callable[[int, float], None] | None = None):
    """Behaviour cloning: a copy of ``model`` whose policy mode is fine-tuned on ``videos`` (each
    ``uint8 [T, S, S, 3]``) labelled with ``actions`` (each ``[T-1, A]``, env units). See
    ``finetune_mode``."""
    return finetune_mode(model, videos, actions, "policy", steps=steps, batch_size=batch_size, lr=lr, seed=seed,
                         progress=progress)


def finetune_mode(model, videos: Sequence[np.ndarray], actions: Sequence[np.ndarray], mode: str, *,
                  steps: int = 200, batch_size: int = 16, lr: float = 1e-4, seed: int = 0,
                  progress: Callable[[int, float], None] | None = None):
    """A copy of ``model`` fine-tuned in one masked mode (``policy`` for behaviour cloning,
    ``inverse_dynamics`` to specialise the labeller) on ``videos`` (each ``uint8 [T, S, S, 3]``)
    labelled with ``actions`` (each ``[T-1, A]``, env units).

    Windows come from ``uva_plan.data.WindowDataset`` (the training windows: history, action chunk,
    a hindsight goal from later in the same video) over latents encoded once by the frozen tokenizer,
    trained by ``uva_plan.finetuning.finetune_windows``. The last frame of each video is dropped
    because no action follows it. ``progress(step, loss)`` is called after each step.
    """
    import torch

    from uva_plan.data import ReplayBuffer, WindowDataset, WindowSpec
    from uva_plan.finetuning import check_positive_int, finetune_windows
    from world_model.config import MODE_NAMES

    cfg = model.config
    if mode not in MODE_NAMES:
        raise UserInputError(f"unknown mode {mode!r}; expected one of {', '.join(MODE_NAMES)}")
    if len(videos) != len(actions) or not videos:
        raise UserInputError(f"got {len(videos)} videos and {len(actions)} action sequences; expected equal, non-zero counts")
    check_positive_int("steps", steps)
    check_positive_int("batch_size", batch_size)
    imgs, acts, ends = [], [], []
    for i, (v, a) in enumerate(zip(videos, actions)):
        v, a = np.asarray(v), np.asarray(a, dtype=np.float32)
        if v.ndim != 4 or a.shape != (len(v) - 1, cfg.action_dim) or len(v) < 2:
            raise UserInputError(
                f"video {i} has frames {v.shape} and actions {a.shape}; expected [T, S, S, 3] and [T-1, {cfg.action_dim}]"
            )
        if not np.all(np.isfinite(a)):
            raise UserInputError(f"actions of video {i} contain NaN or infinite values; expected finite labels")
        imgs.append(v[:-1])
        acts.append(a)
        ends.append((ends[-1] if ends else 0) + len(a))
    img = np.concatenate(imgs)
    buffer = ReplayBuffer(img=img, action=np.concatenate(acts), state=np.zeros((len(img), 0), np.float32),
                          episode_ends=np.asarray(ends, dtype=np.int64),
                          attrs={"action_low": list(cfg.action_low), "action_high": list(cfg.action_high)})
    with torch.no_grad():
        latents = model.encode(torch.from_numpy(img)).cpu().numpy()
    spec = WindowSpec(cfg.n_history, cfg.n_future, cfg.frame_stride)
    dataset = WindowDataset(buffer, spec, seed=seed, frames=latents)
    return finetune_windows(model, dataset, {mode: 1.0}, steps=steps, batch_size=batch_size, lr=lr, seed=seed,
                            progress=progress)


def run_policy(model, env_name: str, start_states, goal_frames, goal_states=None, *, budget_steps: int,
               execute: int = 8, denoise_steps: int = 4, seed: int = 0) -> Rollout:
    """The goal-conditioned policy alone from ``start_states [B, D]`` towards ``goal_frames uint8
    [B, S, S, 3]`` for ``budget_steps`` env steps, re-queried every ``execute`` steps: the planning
    evaluation's ``policy`` method, reused so BC is run exactly like the planning baseline."""
    from uva_plan.envs.goals import GoalPair
    from uva_plan.evaluation import Evaluator
    from uva_plan.plan_settings import PlanSettings

    cfg = model.config
    settings = PlanSettings(horizon=cfg.chunk_len, execute=min(execute, cfg.chunk_len), budget_steps=budget_steps,
                            denoise_steps=denoise_steps, seed=seed, batch_episodes=max(1, len(start_states)))
    goals = [GoalPair(list(map(float, s)), None if goal_states is None else list(map(float, g)))
             for s, g in zip(start_states, goal_states if goal_states is not None else [None] * len(start_states))]
    frames: list[np.ndarray] = []
    finals: list[np.ndarray] = []

    def on_batch(first, batch, trace):
        for f in batch.frames:
            frames.append(np.stack(f))
        finals.append(batch.states())

    Evaluator(model, env_name, settings, image_size=cfg.image_size).run(
        "policy", goals, goal_frames=np.asarray(goal_frames), on_batch=on_batch)
    return Rollout(frames, np.concatenate(finals))


# ------------------------------------------------------------------------------------------ judging


def judge(env_name: str, rollout: Rollout, goal_states=None, goal_frames=None, image_size: int = 64) -> dict:
    """Success and distances from the true final states (after the episode), against the demo's final
    state; ``final_pixel_distance`` (mean squared pixel error to the demo's last frame, in [0, 1]
    units) is reported even when the demo's state is unknown."""
    from uva_plan.envs import make_env

    env = make_env(env_name, image_size=image_size)
    rows = []
    for b, final in enumerate(rollout.final_states):
        row = {"success": None, "final_distance": None, "final_pixel_distance": None}
        if goal_states is not None:
            row["success"] = bool(env.is_success(final, goal_states[b]))
            row["final_distance"] = float(env.state_distance(final, goal_states[b]))
        if goal_frames is not None:
            diff = (rollout.frames[b][-1].astype(np.float32) - np.asarray(goal_frames[b], np.float32)) / 255.0
            row["final_pixel_distance"] = float((diff**2).mean())
        rows.append(row)

    def mean(key):
        vals = [r[key] for r in rows if r[key] is not None]
        return float(np.mean(vals)) if vals else None

    return {"success_rate": mean("success"), "mean_final_distance": mean("final_distance"),
            "final_pixel_distance": mean("final_pixel_distance"), "episodes": rows}


# ------------------------------------------------------------------------------------- the CLI job


@dataclass
class ImitationOptions:
    """Knobs of ``uva-plan imitate`` beyond the inputs."""

    label_samples: int = 4
    dense: bool = True
    subgoal_every: int | None = None
    label_weight: float = 0.0
    bc_steps: int = 200
    bc_batch_size: int = 16
    bc_lr: float = 1e-4
    denoise_steps: int = 4
    seed: int = 0


def parse_state(text: str | None) -> list[float] | None:
    """``"1.5,2,3"`` -> ``[1.5, 2.0, 3.0]`` (None stays None)."""
    if text is None:
        return None
    try:
        values = [float(x) for x in text.split(",")]
    except ValueError:
        raise UserInputError(f"--start-state {text!r} is not a comma-separated list of numbers") from None
    if not all(math.isfinite(v) for v in values):
        raise UserInputError(f"--start-state {text!r} contains NaN or infinite values; expected finite numbers")
    return values


def _results_table(payload: dict):
    from rich.table import Table

    def fmt(x, spec):
        return "-" if x is None else format(x, spec)

    table = Table(title=f"Imitation on {payload['env']} ({payload['n_frames']} frames, mode {payload['mode']})")
    for col in ("method", "success", "final distance", "pixel dist"):
        table.add_column(col, justify="left" if col == "method" else "right")
    for name, res in payload["methods"].items():
        table.add_row(name, fmt(res["success_rate"], ".0%"), fmt(res["mean_final_distance"], ".2f"),
                      fmt(res["final_pixel_distance"], ".4f"))
    return table


def run_imitation(*, checkpoint, video, mode: str, env_name: str, out, start_state=None, episode: int = 0,
                  options: ImitationOptions | None = None, device: str = "cpu", console=None) -> dict:
    """Everything ``uva-plan imitate`` does. All inputs are checked before anything is written to
    ``out``: labels (``actions.npz``/``.csv``), ``results.json`` and ``imitation.gif`` (demo | executed).
    Returns the results payload."""
    import torch
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from uva_plan.envs import env_name as canonical_env_name
    from uva_plan.envs import make_env
    from uva_plan.plan_settings import PlanSettings
    from uva_plan.planning import load_model_for_env, write_json_atomic
    from uva_plan.videos import load_video
    from uva_plan.viz import side_by_side_gif

    opts = options or ImitationOptions()
    console = console or Console()
    if mode not in MODES:
        raise UserInputError(f"unknown mode {mode!r}; expected one of {', '.join(MODES)}")
    env_name = canonical_env_name(env_name)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserInputError(f"--out {out} is a file; expected a folder (new or existing)")
    model = load_model_for_env(checkpoint, env_name, device)
    cfg = model.config
    vid = load_video(video, cfg.image_size, min_frames=min_video_frames(cfg), episode=episode)
    env = make_env(env_name, image_size=cfg.image_size)
    if start_state is not None:
        start = env.check_state(start_state)
    elif vid.states is not None:
        start = env.check_state(vid.states[0])
    elif mode != "label":
        raise UserInputError(
            f"mode {mode!r} executes actions from the video's first state, which {vid.source} does not store; "
            "expected --start-state (comma-separated env state) or a zarr episode with data/state"
        )
    else:
        start = None
    goal_state = env.check_state(vid.states[-1]) if vid.states is not None else None
    true_actions = vid.actions
    if true_actions is not None and true_actions.shape[-1] != cfg.action_dim:
        raise UserInputError(
            f"the video's stored actions have {true_actions.shape[-1]} dimensions; expected {cfg.action_dim} (the {env_name} "
            "model's action size)"
        )
    if opts.subgoal_every is not None and opts.subgoal_every < 1:
        raise UserInputError(f"--subgoal-every is {opts.subgoal_every}; expected an integer >= 1")
    torch.manual_seed(opts.seed)
    if vid.note:
        console.print(f"[yellow]note:[/] {vid.note}")

    n_steps = len(vid) - 1
    payload: dict = {"env": env_name, "checkpoint": str(checkpoint) if checkpoint else "shipped default",
                     "video": vid.source, "mode": mode, "n_frames": len(vid), "video_note": vid.note,
                     "start_state": None if start is None else [float(v) for v in start],
                     "options": asdict(opts), "methods": {}}
    executed: Rollout | None = None
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console) as progress:
        task = progress.add_task("labelling (inverse dynamics)", total=1)
        labels = label_frames(model, vid.frames, num_samples=opts.label_samples, dense=opts.dense,
                              num_steps=opts.denoise_steps, seed=opts.seed)
        progress.advance(task)
        out.mkdir(parents=True, exist_ok=True)
        save_labels(out, labels, true_actions)
        payload["labels"] = {"mean_std": float(labels.std.mean())}
        if true_actions is not None:
            payload["labels"].update(action_metrics(labels.actions, true_actions, cfg.action_low, cfg.action_high))
        payload["action_r2"] = payload["labels"].get("action_r2")
        payload["action_mse"] = payload["labels"].get("action_mse")

        goal_frames = vid.frames[-1:]
        goals = None if goal_state is None else goal_state[None]

        def record(name, rollout):
            payload["methods"][name] = judge(env_name, rollout, goals, goal_frames, cfg.image_size)

        if mode != "label" and true_actions is not None:
            record("replay (true actions)", replay_actions(env_name, [start], true_actions[None], cfg.image_size))
        if mode == "replay":
            executed = replay_actions(env_name, [start], labels.actions[None], cfg.image_size)
            record("replay", executed)
        elif mode == "track":
            task = progress.add_task("closed-loop tracking", total=1)
            settings = PlanSettings(cost=TRACK_COST, denoise_steps=opts.denoise_steps, seed=opts.seed)
            executed = track_video(model, env_name, [start], vid.frames[None], labels.actions[None],
                                   settings=settings, subgoal_every=opts.subgoal_every,
                                   label_weight=opts.label_weight, seed=opts.seed)
            progress.advance(task)
            record("track", executed)
        elif mode == "bc":
            sources = [("bc (pseudo labels)", labels.actions)]
            if true_actions is not None:
                sources.append(("bc (true labels)", true_actions))
            for name, acts in sources:
                task = progress.add_task(f"fine-tuning {name}", total=opts.bc_steps)
                tuned = finetune_policy(model, [vid.frames], [acts], steps=opts.bc_steps,
                                        batch_size=opts.bc_batch_size, lr=opts.bc_lr, seed=opts.seed,
                                        progress=lambda step, loss, task=task: progress.update(task, completed=step))
                rollout = run_policy(tuned, env_name, [start], goal_frames, goals, budget_steps=n_steps,
                                     denoise_steps=opts.denoise_steps, seed=opts.seed)
                record(name, rollout)
                if executed is None:
                    executed = rollout

    write_json_atomic(out / "results.json", payload)
    if executed is not None:
        side_by_side_gif(out / "imitation.gif", vid.frames, executed.frames[0], labels=("demo", mode))
    labels_line = "action R^2 " + ("-" if payload["action_r2"] is None else f"{payload['action_r2']:.3f}")
    labels_line += ", MSE " + ("-" if payload["action_mse"] is None else f"{payload['action_mse']:.4g}")
    console.print(f"Labels: {n_steps} actions, mean spread {payload['labels']['mean_std']:.3g}; {labels_line} "
                  "(true actions " + ("known" if true_actions is not None else "unknown") + ")")
    if payload["methods"]:
        console.print(_results_table(payload))
    console.print("Labels (actions.npz, actions.csv), results.json" + (" and imitation.gif" if executed else "")
                  + f" are in {out}/")
    return payload


__all__ = [
    "MODES", "ImitationOptions", "Labels", "Rollout", "action_metrics", "average_overlapping", "finetune_mode",
    "finetune_policy",
    "judge", "label_frames", "min_video_frames", "parse_state", "replay_actions", "run_imitation", "run_policy",
    "save_labels", "track_video",
]
