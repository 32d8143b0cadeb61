"""Imitation from action-free videos with one UVA model (REFERENCE section 3): label the video's actions
(`uva_plan.action_labels`), then replay them, track the video with goal-image MPC
(`uva_plan.video_tracking`), or clone them into the policy (``bc``: the policy mode fine-tuned on
pseudo-labelled videos, VPT-style, compared with the same fine-tuning on the true labels when they are
known). ``run_imitation`` is the ``uva-plan imitate`` job (labels files, results.json, GIF, table).

Shapes: videos ``uint8 [B, T, S, S, 3]`` (one frame per env step), actions ``[B, T-1, A]`` in env units.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from uva_plan.action_labels import (  # noqa: F401  (the labelling API, re-exported for `imitation` users)
    Labels,
    action_metrics,
    average_overlapping,
    label_frames,
    min_video_frames,
    save_labels,
)
from uva_plan.errors import UserInputError
from uva_plan.label_refinement import refine_labels, why_not_refined
from uva_plan.video_tracking import (  # noqa: F401  (the execution API, re-exported for `imitation` users)
    TRACK_COST,
    LabelPrior,
    Rollout,
    check_track_cost,
    default_track_cost,
    judge,
    replay_actions,
    run_policy,
    track_video,
    video_poses,
)

MODES = ("label", "replay", "track", "bc")
# Behaviour cloning's learning rate: gentle, because the policy it starts from already reaches goals and
# the labels' noise is what a stronger fine-tune absorbs. Shipped Wall checkpoint, 48 held-out demos, 32
# videos x 200 steps, seeds 0-2: UVA labels 88 / 88 / 88% and true labels 96% each at 3e-5; at 1e-4
# 75 / 75 / 85% and 94 / 90 / 90% (`python benchmarks/imitation.py --demos 48 --skip bco track --bc-lr X`).
BC_LR = 3e-5


def finetune_policy(model, videos: Sequence[np.ndarray], actions: Sequence[np.ndarray], *, steps: int = 200,
                    batch_size: int = 16, lr: float = BC_LR, seed: int = 0,
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
    if mode == "forward_dynamics" and getattr(cfg, "proprio_dim", 0):
        raise UserInputError("fine-tuning forward dynamics of a proprioceptive model needs the videos' states; "
                             "these videos carry none (expected a model trained without --proprio)")
    # videos carry no states: the modes trained here (policy, inverse dynamics) read no proprio
    spec = WindowSpec(cfg.n_history, cfg.n_future, cfg.frame_stride)
    dataset = WindowDataset(buffer, spec, seed=seed, frames=latents)
    return finetune_windows(model, dataset, {mode: 1.0}, steps=steps, batch_size=batch_size, lr=lr, seed=seed,
                            progress=progress)


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
    bc_lr: float = BC_LR
    denoise_steps: int = 4
    seed: int = 0
    track_cost: str | None = None  # None: video_tracking.default_track_cost
    # Refine the inverse-mode labels with the model's stepwise body, one env step at a time, where the
    # model and env allow it (`uva_plan.label_refinement`; labels R^2 0.87 -> 0.98 on 48 held-out Wall demos).
    refine: bool = True


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

    from uva_plan.envs import env_name as canonical_env_name
    from uva_plan.envs import make_env
    from uva_plan.json_files import atomic_write_json
    from uva_plan.model_loading import load_model_for_env
    from uva_plan.plan_settings import PlanSettings, population_for
    from uva_plan.progress import progress_bar
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
    if opts.track_cost is not None and mode != "track":
        raise UserInputError(f"--track-cost {opts.track_cost} applies to --mode track; expected it only with track")
    track_cost = check_track_cost(model, env_name, opts.track_cost) if mode == "track" else None
    torch.manual_seed(opts.seed)
    if vid.note:
        console.print(f"[yellow]note:[/] {vid.note}")

    n_steps = len(vid) - 1
    payload: dict = {"env": env_name, "checkpoint": str(checkpoint) if checkpoint else "shipped default",
                     "video": vid.source, "mode": mode, "n_frames": len(vid), "video_note": vid.note,
                     "start_state": None if start is None else [float(v) for v in start],
                     "options": {**asdict(opts), "track_cost": track_cost}, "methods": {}}
    executed: Rollout | None = None
    with progress_bar(console=console) as progress:
        task = progress.add_task("labelling (inverse dynamics)", total=1)
        labels = label_frames(model, vid.frames, num_samples=opts.label_samples, dense=opts.dense,
                              num_steps=opts.denoise_steps, seed=opts.seed)
        payload["labels"] = {}
        unrefined = labels
        reason = why_not_refined(model, env_name) if opts.refine else "--no-refine"
        if reason is None:
            labels = refine_labels(model, env_name, vid.frames, labels)
        payload["labels"]["refined"] = reason is None
        payload["labels"]["not_refined_because"] = reason
        progress.advance(task)
        out.mkdir(parents=True, exist_ok=True)
        save_labels(out, labels, true_actions)
        payload["labels"]["mean_std"] = float(labels.std.mean())
        if true_actions is not None:
            payload["labels"].update(action_metrics(labels.actions, true_actions, cfg.action_low, cfg.action_high))
            if reason is None:  # what the inverse-dynamics mode alone read
                payload["labels"]["inverse_mode"] = action_metrics(unrefined.actions, true_actions, cfg.action_low,
                                                                   cfg.action_high)
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
            settings = PlanSettings(cost=track_cost, denoise_steps=opts.denoise_steps, seed=opts.seed)
            payload["track_population"] = list(population_for(settings, track_cost))  # (samples, iters) it ran with
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
                rollout = run_policy(tuned, env_name, [start], goal_frames, budget_steps=n_steps,
                                     denoise_steps=opts.denoise_steps, seed=opts.seed)
                record(name, rollout)
                if executed is None:
                    executed = rollout

    atomic_write_json(out / "results.json", payload, allow_nan=True)
    if executed is not None:
        side_by_side_gif(out / "imitation.gif", vid.frames, executed.frames[0], labels=("demo", mode))
    labels_line = "action R^2 " + ("-" if payload["action_r2"] is None else f"{payload['action_r2']:.3f}")
    labels_line += ", MSE " + ("-" if payload["action_mse"] is None else f"{payload['action_mse']:.4g}")
    refined = "refined by the body model" if payload["labels"]["refined"] else "inverse dynamics alone"
    console.print(f"Labels ({refined}): {n_steps} actions, mean spread {payload['labels']['mean_std']:.3g}; "
                  f"{labels_line} (true actions " + ("known" if true_actions is not None else "unknown") + ")")
    if not payload["labels"]["refined"]:
        console.print(f"Not refined: {payload['labels']['not_refined_because']}.")
    if payload["methods"]:
        console.print(_results_table(payload))
    console.print("Labels (actions.npz, actions.csv), results.json" + (" and imitation.gif" if executed else "")
                  + f" are in {out}/")
    return payload


__all__ = [
    "MODES", "TRACK_COST", "ImitationOptions", "Labels", "Rollout", "action_metrics", "average_overlapping",
    "check_track_cost", "default_track_cost", "finetune_mode",
    "finetune_policy",
    "judge", "label_frames", "min_video_frames", "parse_state", "refine_labels", "replay_actions", "run_imitation",
    "run_policy", "why_not_refined",
    "save_labels", "track_video", "video_poses",
]
