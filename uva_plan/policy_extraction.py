"""Policy extraction: fine-tune the goal-conditioned policy mode to follow the data's BETTER
trajectories towards each hindsight goal: `uva-plan extract-policy`.

Why: the joint training clones every recorded chunk towards a hindsight goal from later in the same
episode, so the wandering and random episodes a world model needs (they show what off-path actions do)
teach the policy to wander too. Advantage-weighted regression (AWR; as in GCIQL / HIQL policy
extraction) keeps the same windows but weighs each chunk by how much it brought the agent closer to
its goal, by the model's own latent goal distance d (env steps, the head `fit-distance` refits):

    A = d(s_t, g) - d(s_{t+k}, g) - k        (k: the chunk's steps up to the goal, <= chunk length)
    w = min(exp(A / beta), max_weight)

A chunk on a shortest path has A ~ 0 (w ~ 1); a chunk that makes no progress has A ~ -k.

Methods: ``awr`` (the above), ``uniform`` (the same loop with w = 1: the control, which shows what
more policy steps alone do). ``episode_policy`` keeps only the episodes the data records as collected
by that policy (e.g. ``expert``), for data that says so; ``policy_skip`` keeps the named collection
policies out of the policy mode only (e.g. ``dash``: full-speed runs in one direction that teach the
world model its stops, but whose hindsight AWR weights rank them above the expert's; measured on the
shipped Wall data: mean weight dash 0.44, expert 0.40), while the other modes still train on them.

With ``hold_at_goal`` (default) the policy's targets stop at the goal: a recorded episode moves on
past its hindsight goal, so cloning its chunk teaches a policy asked for a near goal to run through it
(measured on the shipped Wall model of the time: 38 of 50 policy episodes passed within the success
radius, 16 ended there). Past the goal step the target is the env's hold action
(`uva_plan.envs.hold_actions`).

A share of the steps (``1 - policy_fraction``) keeps training the other masked modes with the run's own
mode weights, so the world model the planner imagines with is not traded for the policy. The
latent-distance head is restored afterwards (the refit head is better than what the joint loss would
make of it in a few thousand steps). The state models (the proprio and object dynamics) are frozen
unless ``train_state_models``: they read states, actions and the tokenizer's frames, never the
backbone, so the policy gains nothing from their change, and on the Wall the extraction's steps moved
the body's gate off the training run's (full-speed still starts 93% -> 91%, README). The checkpoint is
rewritten atomically in place, like `fit-distance`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from uva_plan.errors import UserInputError
from uva_plan.finetuning import check_positive_int

EXTRACT_METHODS = ("awr", "uniform")
# The modules that predict states from states, actions and frames: frozen by default (module docstring).
STATE_MODELS = ("proprio_dynamics.", "object_dynamics.")


@dataclass
class PolicyExtractionResult:
    steps: int
    seconds: float
    train_episodes: int
    # Mean AWR weight of the windows of each recorded collection policy (a check that the weights
    # single out the goal-directed data); empty when the data does not record its policies.
    mean_weight_by_policy: dict[str, float] = field(default_factory=dict)


def advantage_weights(model, batch: dict, beta: float, max_weight: float):
    """AWR weights ``[B]`` of a batch of training windows (latents, ``goal_steps``): see the module
    docstring. Uses the model's latent-distance head, without gradients."""
    import torch

    cfg = model.config
    with torch.no_grad():
        head = model.latent_distance_head
        goal, fut = batch["goal_latents"], batch["future_latents"]
        steps = batch["goal_steps"].float()
        # The future frame at or just past the goal: the chunk's progress is judged up to there.
        j = (torch.ceil(steps / cfg.frame_stride).long().clamp(1, cfg.n_future) - 1)
        after = fut[torch.arange(fut.shape[0], device=fut.device), j]
        spent = ((j + 1) * cfg.frame_stride).float()

        def dist(frames):
            return torch.expm1(head(frames, goal).clamp(min=0.0))

        adv = dist(batch["history_latents"][:, -1]) - dist(after) - spent
        return torch.exp(adv / beta).clamp(max=max_weight)


def _mode_mix(model, policy_fraction: float) -> dict[str, float]:
    """``policy_fraction`` of the steps in the policy mode; the rest split like the run's own mode
    weights over the other modes."""
    others = {m: w for m, w in model.config.mode_weights.items() if m != "policy" and w > 0}
    total = sum(others.values())
    mix = {"policy": policy_fraction}
    if policy_fraction < 1.0 and total > 0:
        mix.update({m: (1.0 - policy_fraction) * w / total for m, w in others.items()})
    return mix


def extract_policy(checkpoint, data, *, method: str = "awr", steps: int = 3000, batch_size: int = 32,
                   lr: float = 3e-4, beta: float = 4.0, max_weight: float = 20.0, policy_fraction: float = 0.5,
                   episode_policy: str | None = None, policy_skip: tuple[str, ...] = (), hold_at_goal: bool = True,
                   train_state_models: bool = False, seed: int = 0, device: str = "cpu", progress: bool = False) -> PolicyExtractionResult:
    """Fine-tune ``checkpoint``'s policy mode on ``data`` (see the module docstring) and rewrite it."""

    import world_model
    from uva_plan.data import WindowDataset, WindowSpec
    from uva_plan.finetuning import finetune_windows
    from uva_plan.progress import progress_bar
    from uva_plan.run_data import encode_buffer, episodes_of_run, load_run_and_data
    from world_model.checkpoint import load_extra_state

    if method not in EXTRACT_METHODS:
        raise UserInputError(f"method is {method!r}; expected one of {', '.join(EXTRACT_METHODS)}")
    check_positive_int("steps", steps)
    check_positive_int("batch_size", batch_size, 2)
    for name, value, ok, expected in (
        ("beta", beta, lambda v: v > 0, "a number > 0 (env steps)"),
        ("max_weight", max_weight, lambda v: v >= 1, "a number >= 1"),
        ("policy_fraction", policy_fraction, lambda v: 0 < v <= 1, "a number in (0, 1]"),
    ):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not ok(value):
            raise UserInputError(f"{name} is {value!r}; expected {expected}")
    run_dir, data = Path(checkpoint), Path(data)
    model, buffer = load_run_and_data(run_dir, data, device)
    env = buffer.attrs.get("env_name")
    train_eps, _ = episodes_of_run(run_dir, data, buffer.n_episodes)
    recorded = _episode_policies(buffer)
    if episode_policy is not None:
        if recorded is None:
            raise UserInputError(f"{data} does not record which policy collected each episode; "
                                 "expected data from `uva-plan collect` to use --episode-policy")
        train_eps = [e for e in train_eps if recorded[e] == episode_policy]
        if not train_eps:
            kinds = ", ".join(sorted(set(recorded)))
            raise UserInputError(f"no training episode of {data} was collected by {episode_policy!r}; expected one of {kinds}")
    policy_eps = train_eps
    if policy_skip:
        if recorded is None:
            raise UserInputError(f"{data} does not record which policy collected each episode; "
                                 "expected data from `uva-plan collect` to use --policy-skip")
        unknown = sorted(set(policy_skip) - set(recorded))
        policy_eps = [e for e in train_eps if recorded[e] not in policy_skip]
        if unknown or not policy_eps:
            kinds = ", ".join(sorted(set(recorded)))
            raise UserInputError(f"--policy-skip {', '.join(policy_skip)} leaves no policy windows or names a policy "
                                 f"{data} does not record; expected some of {kinds}, not all")

    cfg = model.config
    model.eval()
    latents = encode_buffer(model, buffer)
    spec = WindowSpec.of(cfg)
    hold = None
    if hold_at_goal:
        from uva_plan.envs import hold_actions

        if buffer.state.shape[1] == 0 or not (env or model.config.env_name):
            raise UserInputError(f"{data} has no env states or env name; expected data from `uva-plan collect` "
                                 "for hold-at-goal targets (or turn them off)")
        hold = hold_actions(env or model.config.env_name, np.asarray(buffer.state))
    frames = latents.cpu().numpy()
    dataset = WindowDataset(buffer, spec, episodes=train_eps, seed=seed, frames=frames, hold_actions=hold)
    mode_datasets = {}
    if policy_skip:  # the policy mode draws from the episodes left after the skip
        mode_datasets["policy"] = WindowDataset(buffer, spec, episodes=policy_eps, seed=seed, frames=frames,
                                                hold_actions=hold)
    weight_fn = (lambda batch: advantage_weights(model, batch, beta, max_weight)) if method == "awr" else None

    t0 = time.perf_counter()
    with progress_bar(progress) as bar:
        task = bar.add_task(f"extract policy ({method})", total=steps)
        tuned = finetune_windows(
            model, dataset, _mode_mix(model, float(policy_fraction)), steps=steps, batch_size=batch_size, lr=lr,
            seed=seed, weight_fn=weight_fn, mode_datasets=mode_datasets,
            frozen=() if train_state_models else STATE_MODELS,
            progress=lambda step, loss: bar.update(task, completed=step, description=f"extract policy  loss {loss:.4f}"),
        )
    seconds = time.perf_counter() - t0
    tuned.latent_distance_head.load_state_dict(model.latent_distance_head.state_dict())
    by_policy = _mean_weights(model, dataset, recorded, beta, max_weight, seed) if recorded is not None else {}

    extra = load_extra_state(run_dir)
    extra["policy_extraction"] = {"method": method, "steps": steps, "batch_size": batch_size, "lr": lr, "beta": beta,
                                  "max_weight": max_weight, "policy_fraction": policy_fraction,
                                  "episode_policy": episode_policy, "policy_skip": list(policy_skip), "hold_at_goal": hold_at_goal,
                                  "train_state_models": train_state_models, "seed": seed, "data": str(data),
                                  "mean_weight_by_policy": by_policy}
    world_model.save_checkpoint(tuned, run_dir, extra_state=extra)
    return PolicyExtractionResult(steps, seconds, len(train_eps), by_policy)


def _episode_policies(buffer) -> list[str] | None:
    """The collection policy of each episode, as `uva-plan collect` records it (a list or its repr)."""
    import ast

    raw = buffer.attrs.get("episode_policies")
    if isinstance(raw, str):
        try:
            raw = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            return None
    if not isinstance(raw, (list, tuple)) or len(raw) != buffer.n_episodes:
        return None
    return [str(p) for p in raw]


def _mean_weights(model, dataset, recorded, beta, max_weight, seed, n: int = 2048) -> dict[str, float]:
    """Mean AWR weight of ``n`` random windows, per recorded collection policy."""
    from uva_plan.training_data import collate

    rng = np.random.default_rng(seed + 1)
    idx = rng.integers(len(dataset), size=n)
    items = [dataset[int(i)] for i in idx]
    batch = collate(items, model.device)
    w = advantage_weights(model, batch, beta, max_weight).cpu().numpy()
    kinds = np.asarray([recorded[e] for e in dataset.episode_of(idx)], dtype=object)
    return {str(k): round(float(w[kinds == k].mean()), 4) for k in sorted(set(kinds))}
