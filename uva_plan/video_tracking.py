"""Executing what a video shows, judged only after each episode from the true env state (never inside
the loop):
- ``replay_actions``: inferred actions open-loop from the video's first state;
- ``track_video``: goal-image MPC (UVA forward dynamics + a planner) towards successive subgoal frames of
  the video, the inferred actions as the warm-start candidate and the goal-conditioned policy as the
  prior: the video is the plan, the model corrects drift;
- ``run_policy``: the goal-conditioned policy alone (the planning evaluation's ``policy`` method);
- ``judge``: success and distances of a rollout against the demo's final state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from uva_plan.errors import UserInputError

TRACK_COST = "subgoal"


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
    ``settings.cost`` (default ``default_track_cost``): ``subgoal`` scores imagined frames against the
    video's subgoal frames; ``subgoal_pose_steps`` scores the poses a stepwise object-pose model predicts
    after every env step against the poses read from the video's frame at that step (``video_poses``).
    """
    import torch

    from planners import run_mpc
    from uva_plan.env_batch import EnvBatch
    from uva_plan.goal_costs import make_cost
    from uva_plan.objective import PolicyProposals, UVAObjective, encode_problems
    from uva_plan.plan_settings import PlanSettings, batch_seed, execute_for, make_planner

    cfg = model.config
    vids = torch.as_tensor(np.asarray(videos))
    s_img = cfg.image_size
    if vids.ndim != 5 or tuple(vids.shape[2:]) != (s_img, s_img, 3) or vids.shape[0] != len(start_states):
        raise UserInputError(f"videos have shape {tuple(vids.shape)}; expected [{len(start_states)}, T, {s_img}, {s_img}, 3]")
    b, t_len = vids.shape[:2]
    init = torch.as_tensor(np.asarray(init_actions, dtype=np.float32))
    if tuple(init.shape) != (b, t_len - 1, cfg.action_dim):
        raise UserInputError(f"inferred actions have shape {tuple(init.shape)}; expected [{b}, {t_len - 1}, {cfg.action_dim}]")
    settings = settings or PlanSettings()
    cost = make_cost(check_track_cost(model, env_name, settings.cost))  # against the video, not a goal
    settings.validate(cfg.chunk_len, env_name)
    stride = cfg.frame_stride
    k = stride if subgoal_every is None else subgoal_every
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise UserInputError(f"subgoal_every is {subgoal_every!r}; expected an integer >= 1 (env steps between subgoal frames)")
    if not (isinstance(label_weight, (int, float)) and math.isfinite(label_weight) and label_weight >= 0):
        raise UserInputError(f"label_weight is {label_weight!r}; expected a finite number >= 0")
    horizon = settings.horizon
    n_imagined = horizon // stride
    poses = video_poses(env_name, vids.numpy()) if cost.needs_subgoal_poses else None
    gen = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        video_latents = model.encode(vids)
    batch = EnvBatch(env_name, start_states, image_size=s_img)
    low, high = torch.as_tensor(batch.action_low), torch.as_tensor(batch.action_high)

    def subgoal_index() -> list[int]:
        t = batch.steps
        return [min(k * math.ceil((t + j * stride) / k), t_len - 1) for j in range(1, n_imagined + 1)]

    def problems(goal_index: int):
        """This replan's history (with its states, for a proprioceptive model) and the video frame as goal."""
        return encode_problems(model, batch.history(cfg.n_history, stride), vids[:, goal_index],
                               history_states=batch.history_states(cfg.n_history, stride))

    def step_poses():
        """Where the video shows the objects after each of the plan's env steps (its last frame beyond it)."""
        if poses is None:
            return None
        idx = [min(batch.steps + j, t_len - 1) for j in range(1, horizon + 1)]
        return poses[0][:, idx], poses[1][:, idx]

    def make_objective():
        idx = subgoal_index()
        objective = UVAObjective(model, None, None, cost, num_steps=settings.denoise_steps,
                                 model_samples=settings.model_samples, subgoals=video_latents[:, idx], generator=gen,
                                 encoded=problems(idx[-1]), subgoal_poses=step_poses())
        if label_weight > 0:
            objective = LabelPrior(objective, _pad_to(init[:, batch.steps:], horizon), low, high, label_weight)
        return objective

    def proposals_fn():
        t = batch.steps
        warm = _pad_to(init[:, t:], horizon)
        prior = (PolicyProposals(model, None, None, num_steps=settings.denoise_steps, generator=gen,
                                 encoded=problems(subgoal_index()[-1])) if settings.prior_fraction > 0 else None)

        def sample(bsz: int, m: int):
            parts = [warm[:, None]]
            if m > 1 and prior is not None:
                parts.append(prior(bsz, m - 1, horizon))
            elif m > 1:  # no policy prior: jitter the warm start instead
                noise = torch.randn(bsz, m - 1, horizon, warm.shape[-1], generator=gen) * 0.1 * (high - low) / 2
                parts.append(warm[:, None] + noise)
            return torch.cat(parts, dim=1)

        return sample

    planner = make_planner(settings, settings.prior_fraction, cost.name)
    result = run_mpc(planner, make_objective, batch.step, batch_size=b, horizon=horizon, action_dim=cfg.action_dim,
                     low=low, high=high, n_execute=execute_for(settings, env_name), budget_steps=t_len - 1,
                     proposals_fn=proposals_fn,
                     seed=batch_seed(settings.seed, seed), time_budget=settings.time_budget)
    executed = np.clip(result.actions.cpu().numpy(), batch.action_low, batch.action_high)
    return _rollout(batch, executed)


def default_track_cost(model, env_name: str) -> str:
    """``subgoal_pose_steps`` for a PushT model that rolls the T out one env step at a time, else
    ``subgoal`` (TRACK_COST). Why: on PushT the latent distance to the video's frames cannot tell a T
    turned 20 degrees from one in place (README, "Imitation from action-free videos")."""
    from uva_plan.envs import env_name as canonical
    from uva_plan.plan_settings import COST_ENVS

    stepwise = bool(getattr(model.config, "proprio_object_stepwise", False))
    return "subgoal_pose_steps" if stepwise and canonical(env_name) in COST_ENVS["subgoal_pose_steps"] else TRACK_COST


def check_track_cost(model, env_name: str, name: str | None) -> str:
    """The tracking cost ``name`` (None: ``default_track_cost``), checked against the model and the env
    before any work: it must read the video, and the pose cost needs PushT and a stepwise object model."""
    from uva_plan.envs import env_name as canonical
    from uva_plan.goal_costs import make_cost

    env_name = canonical(env_name)
    name = name or default_track_cost(model, env_name)
    cost = make_cost(name)
    if cost.needs_subgoals == cost.needs_subgoal_poses:
        raise UserInputError(f"tracking scores a plan against the video; the {name} cost does not read it. "
                             f"Expected {TRACK_COST} or subgoal_pose_steps")
    if cost.needs_subgoal_poses and env_name != "pusht":
        raise UserInputError(f"the {name} tracking cost reads PushT's agent and T from the video; expected "
                             f"{TRACK_COST} for {env_name}")
    if cost.needs_subgoal_poses and not getattr(model.config, "proprio_object_stepwise", False):
        raise UserInputError(f"the {name} tracking cost compares the poses a model predicts after every env step; "
                             f"this model does not roll them out step by step (proprio_object_stepwise). Expected "
                             f"{TRACK_COST}")
    return name


def video_poses(env_name: str, videos):
    """Where ``videos uint8 [B, T, S, S, 3]`` show PushT's agent and block in each frame, read by
    `uva_plan.envs.pusht_locate` (median error on true frames: agent 0.4, block 0.9 state units, angle
    0.6 degrees): ``(agent [B, T, 2]`` as a fraction of the frame, as a proprio model predicts it, ``block
    [B, T, 3]`` in env units and radians``)``, float32 tensors, NaN where an object was not found."""
    import torch

    from uva_plan.envs import env_name as canonical

    if canonical(env_name) != "pusht":
        raise UserInputError(f"poses are read from {env_name} videos only for pusht (its agent and T); expected "
                             f"the {TRACK_COST} tracking cost on {env_name}")
    from uva_plan.envs.pusht import WORKSPACE
    from uva_plan.envs.pusht_locate import locate_pusht

    found = locate_pusht(np.asarray(videos))
    agent = np.asarray(found.agent_xy, dtype=np.float32) / WORKSPACE  # the agent's proprio spans the board
    block = np.concatenate([found.block_xy, found.block_angle[..., None]], axis=-1).astype(np.float32)
    return torch.from_numpy(agent), torch.from_numpy(block)


def run_policy(model, env_name: str, start_states, goal_frames, *, budget_steps: int,
               execute: int | None = None, denoise_steps: int = 4, seed: int = 0) -> Rollout:
    """The goal-conditioned policy alone from ``start_states [B, D]`` towards ``goal_frames uint8
    [B, S, S, 3]`` for ``budget_steps`` env steps, re-queried every ``execute`` steps (None: the env's
    interval, ``plan_settings.EXECUTE_STEPS``): the loop and the sample stream of the planning
    evaluation's ``policy`` method, so BC is run exactly like that baseline."""
    from uva_plan.env_batch import EnvBatch
    from uva_plan.plan_settings import PlanSettings, execute_for, model_generator
    from uva_plan.policy_rollout import drive_with_policy

    cfg = model.config
    batch = EnvBatch(env_name, [list(map(float, s)) for s in start_states], image_size=cfg.image_size)
    every = min(execute_for(PlanSettings(execute=execute), env_name), cfg.chunk_len)
    drive_with_policy(model, batch, np.asarray(goal_frames), budget_steps=budget_steps, execute=every,
                      denoise_steps=denoise_steps, temperature=0.0,
                      generator=model_generator(seed, 0))
    return Rollout([np.stack(f) for f in batch.frames], batch.states())


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
