"""Goal costs: how far an imagined (or real) trajectory of frames ends from a goal image.

The shape of this cost decides whether goal-image planning succeeds (REFERENCE section 6): a plain
latent L2 between two frames is informative only while the agent overlaps its goal position and is
flat beyond ~15-20 px, so a planner sees no gradient towards a goal in the other room. The costs here
are the candidates the cost-landscape benchmark compares:

- ``latent_l2``: L2 between frame latents and the goal latent (final frame or summed over frames);
- ``multiscale``: the same on average-pooled latents at several scales, which widens the basin;
- ``distance``: the world model's learned temporal distance (predicted env steps to the goal), read
  from the distance head on the joint latent (trained on hindsight goals from whole trajectories);
- ``latent_distance``: the same quantity from the light head that compares a frame's latent grid with
  the goal's, applied to the imagined frames (it learned the routed distance where the joint-latent
  head did not, see benchmarks/cost_landscape.py);
- ``subgoal``: latent L2 to frames the goal-conditioned video predictor imagined on the way;
- ``agent``: how far the agent's own position (its proprioception, predicted by a model trained with
  ``--proprio``) is from its position at the goal, as a fraction of the frame: DINO-WM's proprio term;
- ``pose``: PushT's objects read from the decoded frames (`uva_plan.envs.pusht_locate`): how far the
  block (position and angle) and the agent are from where the goal image shows them, in the units of the
  success test (state units, one degree of angle = one unit): the goal's own terms, where a latent distance weighs
  every pixel the same and cannot tell a T turned 20 degrees from one 20 units away;
- ``combo``: a weighted sum with explicit weights (costs of different scales are never mixed blindly).

Every cost consumes a ``Trajectory`` and returns one number per candidate; lower is better.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from uva_plan.errors import UserInputError
from uva_plan.plan_settings import COST_NAMES

REDUCTIONS = ("final", "sum", "min")
AGENT_WEIGHT = 1.0


@dataclass
class Trajectory:
    """What a cost sees of M candidate rollouts.

    latents: ``[M, T, h, w, c]`` frame latents (imagined by the model, or encoded true frames);
    goal: ``[M, h, w, c]`` goal-image latent for each candidate;
    distance: ``[M, T]`` predicted env steps from each frame to the goal (joint-latent head), or None;
    latent_distance: ``[M, T]`` the same from the latent-comparison head, or None;
    subgoals: ``[M, T, h, w, c]`` intermediate target latents aligned with ``latents``, or None;
    agent: ``[M, T, 2]`` the agent's image position at each frame as a fraction of the frame (from
    proprioception), and goal_agent ``[M, 2]`` its position at the goal, or None;
    block: ``[M, T, 3]`` the pushed object's pose at each frame (x, y in env units, angle in radians; from
    an object-pose model's prediction, or the true states), and goal_block ``[M, 3]`` its goal pose, or None;
    agent_steps ``[M, L, 2]`` and block_steps ``[M, L, 3]``: the same after EVERY env step of the plan (a
    model that rolls them out one step at a time, or the simulator), or None;
    frames: ``[M, T, S, S, 3]`` the frames (decoded imagined latents, or the true frames) in [0, 1], and
    goal_frames ``[M, S, S, 3]`` the goal image and subgoal_frames ``[M, T, S, S, 3]`` the frames aligned
    with ``frames`` that tracking follows, for a cost that reads objects from pixels, or None;
    subgoal_agent_steps ``[M, L, 2]`` and subgoal_block_steps ``[M, L, 3]``: where a tracked video shows the
    agent and the block after each env step of the plan (read from its frames; NaN where not found), or None.
    """

    latents: torch.Tensor | None
    goal: torch.Tensor
    distance: torch.Tensor | None = None
    subgoals: torch.Tensor | None = None
    latent_distance: torch.Tensor | None = None
    agent: torch.Tensor | None = None
    goal_agent: torch.Tensor | None = None
    block: torch.Tensor | None = None
    goal_block: torch.Tensor | None = None
    agent_steps: torch.Tensor | None = None
    block_steps: torch.Tensor | None = None
    frames: torch.Tensor | None = None
    goal_frames: torch.Tensor | None = None
    subgoal_frames: torch.Tensor | None = None
    subgoal_agent_steps: torch.Tensor | None = None
    subgoal_block_steps: torch.Tensor | None = None


def _reduce(per_frame: torch.Tensor, reduce: str) -> torch.Tensor:
    """``[M, T] -> [M]``. "sum" is a mean over frames so horizons of different length stay comparable;
    rewarding frames on the way (not only the last) is what lifted success in REFERENCE section 6."""
    if reduce == "final":
        return per_frame[:, -1]
    if reduce == "sum":
        return per_frame.mean(dim=1)
    if reduce == "min":
        return per_frame.min(dim=1).values
    raise UserInputError(f"unknown reduction {reduce!r}; expected one of {', '.join(REDUCTIONS)}")


class GoalCost:
    """Base class: ``cost(trajectory) -> [M]``. ``needs_latents`` tells the objective whether the
    video head must sample frame latents (the distance cost alone does not need them, which makes
    each objective call one transformer pass)."""

    name = "cost"
    needs_latents = True
    needs_distance = False
    needs_subgoals = False
    needs_agent = False
    needs_block = False  # the pushed object's pose (Trajectory.block / goal_block)
    needs_steps = False  # the poses after every env step (Trajectory.agent_steps / block_steps)
    needs_subgoal_poses = False  # a tracked video's poses at every step (Trajectory.subgoal_*_steps)
    needs_frames = False
    # Which distance heads a cost that needs_distance reads ("joint" needs a transformer pass over the
    # frames, "latent" only the light comparison head); callers compute just these.
    distance_heads: tuple[str, ...] = ("joint", "latent")

    def __call__(self, traj: Trajectory) -> torch.Tensor:
        raise NotImplementedError


class LatentL2(GoalCost):
    """Mean squared latent difference to the goal, per frame, then reduced over frames."""

    def __init__(self, reduce: str = "final"):
        _reduce(torch.zeros(1, 1), reduce)  # validate early
        self.reduce = reduce
        self.name = f"latent_l2_{reduce}"

    def __call__(self, traj: Trajectory) -> torch.Tensor:
        diff = traj.latents - traj.goal.unsqueeze(1)
        return _reduce(diff.pow(2).flatten(2).mean(-1), self.reduce)


class MultiScaleLatent(GoalCost):
    """Latent L2 on average-pooled latent grids at several scales, summed with equal weight per
    scale. Coarse scales stay non-zero when the agent and its goal no longer overlap, so the cost keeps
    a slope at longer range than the plain latent L2."""

    def __init__(self, scales: tuple[int, ...] = (1, 2, 4, 8), reduce: str = "final"):
        _reduce(torch.zeros(1, 1), reduce)
        if not scales or any(s < 1 for s in scales):
            raise UserInputError(f"multiscale scales must be positive integers, got {scales}")
        self.scales = tuple(scales)
        self.reduce = reduce
        self.name = f"multiscale_{reduce}"

    def __call__(self, traj: Trajectory) -> torch.Tensor:
        m, t, h, w, c = traj.latents.shape
        frames = traj.latents.reshape(m * t, h, w, c).permute(0, 3, 1, 2)
        goal = traj.goal.permute(0, 3, 1, 2).repeat_interleave(t, dim=0)
        total = torch.zeros(m * t, device=frames.device, dtype=frames.dtype)
        for s in self.scales:
            k = min(s, h, w)
            a = F.avg_pool2d(frames, k, stride=k, ceil_mode=True) if k > 1 else frames
            b = F.avg_pool2d(goal, k, stride=k, ceil_mode=True) if k > 1 else goal
            total = total + (a - b).pow(2).flatten(1).mean(-1)
        return _reduce(total.reshape(m, t) / len(self.scales), self.reduce)


class TemporalDistance(GoalCost):
    """A distance head's predicted env steps to the goal (trained on hindsight goals).

    head="joint": read from the joint latent (needs no sampled frame latents, one transformer pass);
    head="latent": the latent-comparison head on the imagined frames (needs their latents)."""

    needs_distance = True

    def __init__(self, reduce: str = "final", head: str = "joint"):
        _reduce(torch.zeros(1, 1), reduce)
        if head not in ("joint", "latent"):
            raise UserInputError(f"unknown distance head {head!r}; expected 'joint' or 'latent'")
        self.reduce = reduce
        self.head = head
        self.distance_heads = (head,)
        self.needs_latents = head == "latent"
        self.name = f"{'latent_' if head == 'latent' else ''}distance_{reduce}"

    def __call__(self, traj: Trajectory) -> torch.Tensor:
        values = traj.distance if self.head == "joint" else traj.latent_distance
        if values is None:
            raise UserInputError(f"the {self.name} cost needs the world model's {self.head} distance head output; got none")
        return _reduce(values, self.reduce)


class SubgoalL2(GoalCost):
    """Latent L2 of each imagined frame to the subgoal frame imagined for the same time step."""

    needs_subgoals = True

    def __init__(self, reduce: str = "sum"):
        _reduce(torch.zeros(1, 1), reduce)
        self.reduce = reduce
        self.name = f"subgoal_{reduce}"

    def __call__(self, traj: Trajectory) -> torch.Tensor:
        if traj.subgoals is None:
            raise UserInputError("the subgoal cost needs subgoal latents; got none")
        t = min(traj.latents.shape[1], traj.subgoals.shape[1])
        diff = traj.latents[:, :t] - traj.subgoals[:, :t]
        return _reduce(diff.pow(2).flatten(2).mean(-1), self.reduce)


class AgentDistance(GoalCost):
    """Distance of the agent's position to its goal position, in frames (1 = the frame's width), per
    frame, reduced over frames. The agent is a few pixels in a frame's latent; its own position (a robot
    knows it) is exact where an image cost sees it faintly. Needs a model with proprioception and the
    goal's state."""

    needs_latents = False
    needs_agent = True

    def __init__(self, reduce: str = "sum"):
        self.reduce = reduce
        self.name = f"agent_{reduce}"

    def __call__(self, traj: Trajectory) -> torch.Tensor:
        if traj.agent is None or traj.goal_agent is None:
            raise UserInputError("the agent cost needs the agent's positions: a world model trained with --proprio "
                                 "and goals that carry their state")
        return _reduce((traj.agent - traj.goal_agent[:, None]).norm(dim=-1), self.reduce)


def pose_terms(block: torch.Tensor, want_block: torch.Tensor, agent: torch.Tensor | None = None,
               want_agent: torch.Tensor | None = None) -> list[torch.Tensor]:
    """PushT's success test as cost terms, per frame: the block's position error, its angle error
    (``ANGLE_SCALE`` units per radian, so the 20-unit and 20-degree tolerances weigh alike) and, when
    given, the agent's position error; poses ``[..., 3]`` (x, y in state units, angle in radians) and
    agents ``[..., 2]`` in state units, broadcast against their targets. NaN where a pose is NaN."""
    from uva_plan.envs.pusht import ANGLE_SCALE
    from world_model.object_pose import wrap

    terms = [(block[..., :2] - want_block[..., :2]).norm(dim=-1), wrap(block[..., 2] - want_block[..., 2]).abs() * ANGLE_SCALE]
    if agent is not None:
        terms.append((agent - want_agent).norm(dim=-1))
    return terms


class LocatedPose(GoalCost):
    """PushT: the block's pose (and, with ``agent=True``, the agent's position) located in each frame
    and in the goal image by `uva_plan.envs.pusht_locate`, compared in the success test's units (state
    units of the 512-unit board; ``ANGLE_SCALE`` units per radian, so the 20-unit and 20-degree tolerances
    weigh alike), then reduced over frames. An object the locator does not find in a frame (an imagined
    frame that lost it) costs the most its terms can: the board's diagonal for a position, a half turn
    for the angle, so a plan is never rewarded for losing it. ``against="subgoals"`` compares each frame
    with its own target frame instead (``subgoal_frames``: tracking a video, frame by frame)."""

    needs_frames = True

    def __init__(self, reduce: str = "sum", agent: bool = True, against: str = "goal"):
        _reduce(torch.zeros(1, 1), reduce)
        if against not in ("goal", "subgoals"):
            raise UserInputError(f"a pose cost compares against 'goal' or 'subgoals', got {against!r}")
        self.reduce = reduce
        self.agent = agent
        self.needs_subgoals = against == "subgoals"
        self.name = f"{'subgoal_' if self.needs_subgoals else ''}{'pose' if agent else 'block_pose'}_{reduce}"

    def __call__(self, traj: Trajectory) -> torch.Tensor:
        import numpy as np

        from uva_plan.envs.pusht import ANGLE_SCALE, WORKSPACE
        from uva_plan.envs.pusht_locate import locate_pusht

        target = traj.subgoal_frames if self.needs_subgoals else traj.goal_frames
        if traj.frames is None or target is None:
            raise UserInputError(f"the {self.name} cost reads objects from frames; expected the trajectory's decoded "
                                 f"frames and the {'subgoal frames' if self.needs_subgoals else 'goal image'}")
        m, t = traj.frames.shape[:2]
        if self.needs_subgoals:
            t = min(t, target.shape[1])
            want = locate_pusht(target[:, :t].detach().float().cpu().numpy())  # [M, t] like the frames
            want_block, want_angle, want_agent = want.block_xy, want.block_angle, want.agent_xy
        else:
            goal = locate_pusht(target.detach().float().cpu().numpy())  # [M]: broadcast over the frames
            want_block, want_angle, want_agent = goal.block_xy[:, None], goal.block_angle[:, None], goal.agent_xy[:, None]
        now = locate_pusht(traj.frames[:, :t].detach().float().cpu().numpy())
        far, turned = WORKSPACE * math.sqrt(2.0), math.pi * ANGLE_SCALE  # the most each term can be
        as_t = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float32))  # noqa: E731
        terms = pose_terms(as_t(np.concatenate([now.block_xy, now.block_angle[..., None]], axis=-1)),
                           as_t(np.concatenate([want_block, want_angle[..., None]], axis=-1)),
                           as_t(now.agent_xy) if self.agent else None, as_t(want_agent) if self.agent else None)
        # an object missing on either side (NaN) costs the most its term can
        per_frame = sum(torch.nan_to_num(term, nan=worst) for term, worst in zip(terms, (far, turned, far)))
        out = per_frame.reshape(m, t).to(traj.frames.device)
        return _reduce(out, self.reduce)


class PredictedPose(GoalCost):
    """PushT's success test on the poses an object-pose world model predicts (``train --object-pose``):
    the block's position and angle errors and the agent's position error against the goal's, in state
    units (``pose_terms``), reduced over frames. Reads no frames: the model's own prediction of where the T
    lies, predicted in the T's frame, is what it compares (README, "The block's pose"). Needs the goal's
    state, as the agent cost does (DINO-WM's goals carry their proprio).

    ``every_step=True`` (``predicted_pose_steps``) scores the poses after every env step of the plan, not
    every ``frame_stride``-th: a plan scored only at the frames may leave the goal between them and come
    back, and an episode's end can fall between two frames (PushT's 50-step budget, replans every 4 steps).
    Needs a model that rolls the poses out one step at a time (``proprio_object_stepwise``).

    ``against="subgoals"`` (``subgoal_pose_steps``, every step only): each step's poses against where a
    tracked video shows them at that step (``Trajectory.subgoal_*_steps``, read from its frames), so
    tracking follows the video's path, not its last frame; an object's terms count only at the steps where
    the video showed it, and a candidate whose predicted poses are NaN costs inf. A latent distance to the video's frames (``subgoal``) weighs every pixel
    alike and cannot tell a T turned 20 degrees from one moved a few units."""

    needs_latents = False
    needs_agent = True
    needs_block = True

    def __init__(self, reduce: str = "sum", every_step: bool = False, against: str = "goal"):
        _reduce(torch.zeros(1, 1), reduce)
        if against not in ("goal", "subgoals") or (against == "subgoals" and (not every_step or reduce != "sum")):
            raise UserInputError(f"a predicted pose cost compares against 'goal', or 'subgoals' at every step with a "
                                 f"mean over steps; got against={against!r}, every_step={every_step}, reduce={reduce!r}")
        self.reduce = reduce
        self.needs_steps = every_step
        self.needs_subgoal_poses = against == "subgoals"
        self.name = ("subgoal_pose_steps" if self.needs_subgoal_poses else
                     "predicted_pose_steps" if every_step else f"predicted_pose_{reduce}")

    def __call__(self, traj: Trajectory) -> torch.Tensor:
        if self.needs_subgoal_poses:
            return self._against_subgoals(traj)
        block, agent = (traj.block_steps, traj.agent_steps) if self.needs_steps else (traj.block, traj.agent)
        if block is None or traj.goal_block is None or agent is None or traj.goal_agent is None:
            raise UserInputError(f"the {self.name} cost reads the block's and the agent's predicted poses"
                                 f"{' after every env step' if self.needs_steps else ''}: a world model trained with "
                                 f"--proprio --object-pose{' and proprio_object_stepwise' if self.needs_steps else ''}, "
                                 "and goals that carry their state")
        board = _board_units()
        terms = pose_terms(block, traj.goal_block[:, None], agent * board, traj.goal_agent[:, None] * board)
        return _reduce(sum(terms), self.reduce)

    def _against_subgoals(self, traj: Trajectory) -> torch.Tensor:
        block, agent = traj.block_steps, traj.agent_steps
        want_block, want_agent = traj.subgoal_block_steps, traj.subgoal_agent_steps
        if block is None or agent is None or want_block is None or want_agent is None:
            raise UserInputError(f"the {self.name} cost compares the poses a stepwise object-pose model predicts "
                                 "after every env step with a tracked video's poses at those steps; expected a model "
                                 "trained with --proprio --object-pose and proprio_object_stepwise, and the video's poses")
        steps = block.shape[1]
        covered = min(want_block.shape[1], want_agent.shape[1])
        if covered < steps:
            raise UserInputError(f"the video's poses cover {covered} steps; the plan has {steps}")
        board = _board_units()
        want_block, want_agent = want_block[:, :steps].to(block), want_agent[:, :steps].to(agent)
        block_seen = torch.isfinite(want_block).all(dim=-1)  # [M, L]: where the video showed each object
        agent_seen = torch.isfinite(want_agent).all(dim=-1)
        position, angle, agent_error = pose_terms(block, torch.where(block_seen[..., None], want_block, block.detach()),
                                                  agent * board,
                                                  torch.where(agent_seen[..., None], want_agent, agent.detach()) * board)
        per_step = (position + angle) * block_seen + agent_error * agent_seen  # an unseen object costs nothing there
        per_step = torch.where(torch.isfinite(per_step), per_step, torch.full_like(per_step, float("inf")))
        seen = (block_seen | agent_seen).sum(dim=1)
        return torch.where(seen > 0, per_step.sum(dim=1) / seen.clamp(min=1), torch.zeros_like(per_step[:, 0]))


class WeightedSum(GoalCost):
    """Explicitly weighted sum of costs. Weights are the user's statement of relative scale."""

    def __init__(self, terms: list[tuple[float, GoalCost]]):
        if not terms:
            raise UserInputError("a combined cost needs at least one (weight, cost) term")
        self.terms = terms
        self.needs_latents = any(c.needs_latents for _, c in terms)
        self.needs_distance = any(c.needs_distance for _, c in terms)
        self.distance_heads = tuple(sorted({h for _, c in terms if c.needs_distance for h in c.distance_heads}))
        self.needs_subgoals = any(c.needs_subgoals for _, c in terms)
        self.needs_agent = any(c.needs_agent for _, c in terms)
        self.needs_block = any(c.needs_block for _, c in terms)
        self.needs_steps = any(c.needs_steps for _, c in terms)
        self.needs_subgoal_poses = any(c.needs_subgoal_poses for _, c in terms)
        self.needs_frames = any(c.needs_frames for _, c in terms)
        self.name = "+".join(f"{w:g}*{c.name}" for w, c in terms)

    def __call__(self, traj: Trajectory) -> torch.Tensor:
        return sum(w * c(traj) for w, c in self.terms)


def distances_of(model, cost: GoalCost, latents: torch.Tensor, goal: torch.Tensor) -> dict:
    """``Trajectory`` keyword arguments ``distance`` / ``latent_distance`` for frame ``latents`` (true or
    imagined) against ``goal``: only the heads ``cost`` reads are run, None for the others."""
    heads = cost.distance_heads if cost.needs_distance else ()
    return {
        "distance": model.temporal_distance(latents=latents, goal_latents=goal, head="joint") if "joint" in heads else None,
        "latent_distance": (
            model.temporal_distance(latents=latents, goal_latents=goal, head="latent") if "latent" in heads else None
        ),
    }


def _board_units() -> float:
    """PushT's board width in state units: a fraction of the frame times this is in the pose cost's units."""
    from uva_plan.envs.pusht import (
        WORKSPACE,  # imported when such a cost is built, never on the CLI's start-up path
    )

    return WORKSPACE


def _block_pose_and_agent() -> GoalCost:
    return WeightedSum([(1.0, LocatedPose("sum", agent=False)), (_board_units(), AgentDistance("sum"))])


def _default_and_pose() -> GoalCost:
    """The PushT default's image + agent terms plus the located block and agent in board widths."""
    return WeightedSum([(1.0, MultiScaleLatent(reduce="sum")), (AGENT_WEIGHT, AgentDistance("sum")),
                        (1.0 / _board_units(), LocatedPose("sum"))])


def make_cost(name: str) -> GoalCost:
    """Build a cost from its CLI name (see ``COST_NAMES``)."""
    table = {
        "latent_l2": lambda: LatentL2("final"),
        "latent_l2_sum": lambda: LatentL2("sum"),
        "multiscale": lambda: MultiScaleLatent(reduce="final"),
        "multiscale_sum": lambda: MultiScaleLatent(reduce="sum"),
        "distance": lambda: TemporalDistance("final"),
        "distance_sum": lambda: TemporalDistance("sum"),
        "latent_distance": lambda: TemporalDistance("final", head="latent"),
        "latent_distance_sum": lambda: TemporalDistance("sum", head="latent"),
        "subgoal": lambda: SubgoalL2("sum"),
        # The distance head steers at long range, the latent term sharpens the last few pixels;
        # 1 latent-MSE unit is weighted like 4 env steps (measured scales: distance ~0-60 steps,
        # latent MSE ~0-2).
        "distance+latent": lambda: WeightedSum([(1.0, TemporalDistance("final")), (4.0, LatentL2("final"))]),
        # The same pairing with the latent-comparison head, both terms summed over the imagined frames.
        "latent_distance+latent": lambda: WeightedSum(
            [(1.0, TemporalDistance("sum", head="latent")), (4.0, LatentL2("sum"))]
        ),
        "agent_sum": lambda: AgentDistance("sum"),
        "predicted_pose_sum": lambda: PredictedPose("sum"),
        "predicted_pose_steps": lambda: PredictedPose("sum", every_step=True),
        "subgoal_pose_steps": lambda: PredictedPose("sum", every_step=True, against="subgoals"),
        # The image's block and the agent's own position; AGENT_WEIGHT is measured (README, "Proprioception").
        "multiscale_sum+agent": lambda: WeightedSum([(1.0, MultiScaleLatent(reduce="sum")),
                                                     (AGENT_WEIGHT, AgentDistance("sum"))]),
        # PushT: the block located in the frames, the agent located too or (``+agent``) from proprio, in
        # board units (``_board_units``).
        "pose_sum": lambda: LocatedPose("sum"),
        "subgoal_pose_sum": lambda: LocatedPose("sum", against="subgoals"),
        "multiscale_sum+agent+pose": _default_and_pose,
        "block_pose_sum+agent": _block_pose_and_agent,
    }
    if name not in table:
        raise UserInputError(f"unknown goal cost {name!r}; expected one of {', '.join(COST_NAMES)}")
    return table[name]()
