"""Scripted policies: data collection, baselines and protocol goals.

`make_policy(env_name, kind, seed, **options)` returns an object with `reset(state, goal_state=None)` and
`__call__(state) -> action float32 [A]`. Policies read only the state (never the image) and draw all
randomness from their own seeded generator, so a (seed, start state) pair gives one trajectory.

Wall: `random` (uniform velocities), `expert` (door-aware; reaches any goal), `greedy` (straight at the
goal, ignoring the wall: the baseline), `wander` and `box` (piecewise-constant velocities), `dash`
(rest, then a fast straight move). PushT: `random` (uniform targets), `pusher` (noisy, block-aimed).
"""

from __future__ import annotations

import math

import numpy as np

from uva_plan.envs import env_name as canonical_env_name
from uva_plan.envs import wall_geometry as geo
from uva_plan.envs.pusht import WORKSPACE, block_center
from uva_plan.envs.wall import room_of, sample_position
from uva_plan.errors import UserInputError

POLICY_KINDS = {"wall": ("random", "expert", "greedy", "wander", "box", "dash"), "pusht": ("random", "pusher", "greedy")}


def _towards(dx: float, dy: float) -> np.ndarray:
    """Fastest Wall velocity along (dx, dy) that stops on the target: scaled so no axis exceeds the limit."""
    largest = max(abs(dx), abs(dy))
    scale = 1.0 if largest <= geo.MAX_SPEED else geo.MAX_SPEED / largest
    return np.array([dx * scale, dy * scale])


class _WallGoalPolicy:
    """Shared goal handling: with no goal given, draw one (in the other room with probability
    `p_other_room`), and draw a new one once it is reached, so collected episodes keep moving."""

    def __init__(self, seed: int, noise: float = 0.0, p_other_room: float = 0.7):
        if not 0.0 <= noise <= 1.0:
            raise UserInputError(f"policy noise is {noise}; expected a value in [0, 1] (fraction of the top speed)")
        self.rng = np.random.default_rng(seed)
        self.noise = float(noise)
        self.p_other_room = float(p_other_room)
        self.goal: np.ndarray | None = None
        self._own_goal = False

    def reset(self, state, goal_state=None) -> None:
        state = np.asarray(state, dtype=np.float64)
        if goal_state is None:
            self._own_goal = True
            self.goal = self._draw_goal(state)
        else:
            self._own_goal = False
            self.goal = np.asarray(goal_state, dtype=np.float64)[:2].copy()

    def _draw_goal(self, state: np.ndarray) -> np.ndarray:
        room = room_of(float(state[0]))
        if self.rng.random() < self.p_other_room:
            room = 1 - room
        return np.array(sample_position(self.rng, room))

    def _goal_for(self, state: np.ndarray) -> np.ndarray:
        if self.goal is None:
            self.reset(state)
        if self._own_goal and math.hypot(state[0] - self.goal[0], state[1] - self.goal[1]) < 1.0:
            self.goal = self._draw_goal(state)
        return self.goal

    def _finish(self, velocity: np.ndarray) -> np.ndarray:
        if self.noise > 0:
            velocity = velocity + self.rng.normal(0.0, self.noise * geo.MAX_SPEED, size=2)
        return np.clip(velocity, -geo.MAX_SPEED, geo.MAX_SPEED).astype(np.float32)


class WallExpert(_WallGoalPolicy):
    """Door-aware expert: straight to the goal when the way is clear, else through the door.

    The door is entered and left along its centre line from points DOOR_APPROACH units outside the wall,
    so the disc never grazes the door's corners even with action noise."""

    DOOR_APPROACH = 5.0  # units from the wall face to the door's entry/exit points
    ALIGNED = 1.5  # units off the door's centre line that still count as lined up with it

    def __call__(self, state) -> np.ndarray:
        s = np.asarray(state, dtype=np.float64)
        x, y, door = float(s[0]), float(s[1]), float(s[2])
        gx, gy = self._goal_for(s)
        # Keep a little clearance from the door's corners, but never more than the endpoints have.
        margin = min(0.25, geo.clearance(x, y, door) - geo.AGENT_RADIUS, geo.clearance(gx, gy, door) - geo.AGENT_RADIUS)
        if geo.segment_is_free(x, y, gx, gy, door, margin=max(margin, 0.0)):
            return self._finish(_towards(gx - x, gy - y))
        goal_side = 1.0 if gx >= geo.WALL_CENTER_X else -1.0
        half = (geo.WALL_X1 - geo.WALL_X0) / 2 + geo.AGENT_RADIUS + self.DOOR_APPROACH
        entry_x = geo.WALL_CENTER_X - goal_side * half
        exit_x = geo.WALL_CENTER_X + goal_side * half
        in_door = abs(x - geo.WALL_CENTER_X) <= (geo.WALL_X1 - geo.WALL_X0) / 2 + geo.AGENT_RADIUS
        in_lane = abs(y - door) <= self.ALIGNED and (x - entry_x) * goal_side >= -0.5
        on_goal_side = (x - geo.WALL_CENTER_X) * goal_side > 0
        if in_door or in_lane or on_goal_side:
            if math.hypot(exit_x - x, door - y) < 0.5:
                # Out of the door and still no straight line (a goal tucked beside the door): slide along.
                return self._finish(_towards(gx - x, gy - y))
            return self._finish(_towards(exit_x - x, door - y))
        return self._finish(_towards(entry_x - x, door - y))


class WallGreedy(_WallGoalPolicy):
    """Straight line at the goal, blind to the wall: the baseline the planners must beat."""

    def __call__(self, state) -> np.ndarray:
        s = np.asarray(state, dtype=np.float64)
        gx, gy = self._goal_for(s)
        return self._finish(_towards(gx - s[0], gy - s[1]))


class WallRandom:
    """Uniform random velocities in the action box."""

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)

    def reset(self, state, goal_state=None) -> None:
        pass

    def __call__(self, state) -> np.ndarray:
        return self.rng.uniform(-geo.MAX_SPEED, geo.MAX_SPEED, size=2).astype(np.float32)


class WallWander:
    """Piecewise-constant velocities: a random heading and speed held for 4-16 steps, then a new one.

    Why: a world model is queried with the planner's candidates, which are smooth, often fast and
    unrelated to where the agent was heading; per-step uniform noise barely moves the agent and the
    expert's motion is predictable from its history alone. Wandering covers long straight moves, turns
    and bumps into walls, with a history that does not tell the future."""

    def __init__(self, seed: int, min_hold: int = 4, max_hold: int = 16, box: bool = False):
        self.rng = np.random.default_rng(seed)
        self.min_hold, self.max_hold = int(min_hold), int(max_hold)
        self.box = bool(box)
        self._velocity = np.zeros(2)
        self._left = 0

    def reset(self, state, goal_state=None) -> None:
        self._left = 0

    def __call__(self, state) -> np.ndarray:
        if self._left <= 0:
            if self.box:  # uniform over the action box, as a planner's first candidates are: mostly fast
                self._velocity = self.rng.uniform(-geo.MAX_SPEED, geo.MAX_SPEED, size=2)
            else:
                heading = self.rng.uniform(0.0, 2.0 * math.pi)
                speed = geo.MAX_SPEED * self.rng.uniform(0.3, 1.0)
                self._velocity = _towards(math.cos(heading) * 1e3, math.sin(heading) * 1e3) * speed / geo.MAX_SPEED
            self._left = int(self.rng.integers(self.min_hold, self.max_hold + 1))
        self._left -= 1
        return self._velocity.astype(np.float32)


class WallDash:
    """Rest, then dash: still for a while, then a fast straight move held for 8-24 steps, repeated.

    Why: a planner asks the world model about fast straight chunks from wherever the agent is, often
    from rest and often into a wall. The mixed data has few of those (0.55% of its 16-step windows
    start from a still history and travel >= 28 units): expert episodes rest only at their first step
    and wandering rarely runs at full speed. Half the headings are the 8 compass directions with each
    axis at -max, 0 or +max (where a planner's clipped candidates saturate), half uniform on the edge of
    the action box; 70% at full speed. A still history spans 12 steps, so most rests last 12-16."""

    def __init__(self, seed: int, min_dash: int = 8, max_dash: int = 24):
        self.rng = np.random.default_rng(seed)
        self.min_dash, self.max_dash = int(min_dash), int(max_dash)
        self._velocity = np.zeros(2)
        self._left = 0
        self._resting = False

    def reset(self, state, goal_state=None) -> None:
        self._left, self._resting = 0, False  # the first call flips to a rest: every episode starts resting

    def _rest_length(self) -> int:
        u = self.rng.random()
        return 0 if u < 0.3 else int(self.rng.integers(1, 12)) if u < 0.5 else int(self.rng.integers(12, 17))

    def _dash_velocity(self) -> np.ndarray:
        if self.rng.random() < 0.5:
            while True:
                axes = self.rng.integers(-1, 2, size=2)
                if axes.any():
                    velocity = axes * geo.MAX_SPEED
                    break
        else:
            heading = self.rng.uniform(0.0, 2.0 * math.pi)
            velocity = _towards(math.cos(heading) * 1e3, math.sin(heading) * 1e3)
        speed = 1.0 if self.rng.random() < 0.7 else self.rng.uniform(0.3, 1.0)
        return velocity * speed

    def __call__(self, state) -> np.ndarray:
        while self._left <= 0:
            self._resting = not self._resting
            if self._resting:
                self._velocity, self._left = np.zeros(2), self._rest_length()
            else:
                self._velocity = self._dash_velocity()
                self._left = int(self.rng.integers(self.min_dash, self.max_dash + 1))
        self._left -= 1
        return self._velocity.astype(np.float32)


class PushTRandom:
    """Uniform random agent targets over the reachable workspace."""

    MARGIN = 20.0

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)

    def reset(self, state, goal_state=None) -> None:
        pass

    def __call__(self, state) -> np.ndarray:
        return self.rng.uniform(self.MARGIN, WORKSPACE - self.MARGIN, size=2).astype(np.float32)


class PushTGreedy:
    """The agent straight to the goal's agent position, ignoring the block: the planning baseline that
    shows how much of a goal is reached without pushing anything on purpose."""

    def __init__(self, seed: int):
        self.goal: np.ndarray | None = None

    def reset(self, state, goal_state=None) -> None:
        if goal_state is None:
            raise UserInputError("the PushT greedy controller needs a goal state; expected reset(state, goal_state)")
        self.goal = np.asarray(goal_state, dtype=np.float32)[0:2].copy()

    def __call__(self, state) -> np.ndarray:
        if self.goal is None:
            raise UserInputError("the PushT greedy controller has no goal yet; call reset(state, goal_state) first")
        return self.goal.copy()


class PushTPusher:
    """Noisy block-aimed pusher: makes contact often so the block moves in most short windows.

    Repeats: pick a destination for the block's centre 40-120 px away inside a safe central box, circle
    round the block (outside its reach) to the side opposite the destination, then drive the agent
    through the block towards the destination. Aiming pushes at a fixed point inside the box, rather
    than pushing "forward" without end, matters: a kinematic agent that pins the T against gym-pusht's
    thin walls squeezes it out of the arena (seen in 26 of 30 episodes with an unbounded pusher).
    Gaussian noise on every target adds diversity.

    Pace: each target stays within `max_lead` px of the agent (default 30; the clip to the board's margin
    comes after, and only near an edge moves a target further), so the agent moves at the
    pace of the human demonstrations DINO-WM's PushT data holds (target - agent std 20 px per axis,
    agent velocity std 75 px/s; its dataset statistics in dino_wm's datasets/pusht_dset.py). Measured
    on 20 episodes of 100 steps: 30 px gives 21 px and 78 px/s, the block moving a median 43 px and
    20 degrees per 25 steps; with no cap the pusher ran 3x faster (59 px, 220 px/s, 130 px and 30
    degrees), and even the true simulator with the true distance reached 6-12% of its 25-step goals
    (44% at this pace). None = no cap.
    """

    MARGIN = 25.0  # agent targets stay this far inside the workspace
    SAFE_BOX = (150.0, 362.0)  # where block-centre destinations are drawn
    PUSH_DISTANCE = (40.0, 120.0)
    ORBIT_RADIUS = 100.0  # the T reaches 76 px from its centre, the agent has radius 15
    ORBIT_STEP = math.radians(40)  # chords of this angle stay outside the T's reach
    ORBIT_STEPS = 12  # then push from wherever the agent is
    PUSH_STEPS = (6, 16)

    def __init__(self, seed: int, noise: float = 8.0, max_lead: float | None = 30.0):
        if not 0.0 <= noise <= 100.0:
            raise UserInputError(f"pusher noise is {noise}; expected a standard deviation in [0, 100] px")
        if max_lead is not None and not 1.0 <= max_lead <= WORKSPACE:
            raise UserInputError(f"pusher max_lead is {max_lead}; expected None or a distance in [1, {WORKSPACE:g}] px")
        self.rng = np.random.default_rng(seed)
        self.noise = float(noise)
        self.max_lead = None if max_lead is None else float(max_lead)
        self._phase = "orbit"
        self._timer = 0
        self._direction = np.array([1.0, 0.0])
        self._target = np.array([WORKSPACE / 2, WORKSPACE / 2])

    def reset(self, state, goal_state=None) -> None:
        self._new_push(np.asarray(state, dtype=np.float64))

    def _new_push(self, state: np.ndarray) -> None:
        center = block_center(state)
        lo, hi = self.SAFE_BOX
        destination = None
        for _ in range(20):
            candidate = self.rng.uniform(lo, hi, size=2)
            if self.PUSH_DISTANCE[0] <= np.hypot(*(candidate - center)) <= self.PUSH_DISTANCE[1]:
                destination = candidate
                break
        if destination is None:  # block far outside the box: head for the box's centre
            destination = np.array([(lo + hi) / 2, (lo + hi) / 2])
        offset = destination - center
        self._direction = offset / max(np.hypot(*offset), 1e-9)
        self._target = destination  # the agent runs to where the block's centre should go
        self._phase = "orbit"
        self._timer = self.ORBIT_STEPS

    def __call__(self, state) -> np.ndarray:
        s = np.asarray(state, dtype=np.float64)
        center = block_center(s)
        target = None
        if self._phase == "orbit":
            agent = s[0:2] - center
            here = math.atan2(agent[1], agent[0])
            behind = math.atan2(-self._direction[1], -self._direction[0])
            delta = (behind - here + math.pi) % (2 * math.pi) - math.pi
            self._timer -= 1
            if abs(delta) < math.radians(25) or self._timer <= 0:
                self._phase = "push"
                self._timer = int(self.rng.integers(*self.PUSH_STEPS))
            else:
                step = here + float(np.clip(delta, -self.ORBIT_STEP, self.ORBIT_STEP))
                target = center + self.ORBIT_RADIUS * np.array([math.cos(step), math.sin(step)])
        if self._phase == "push":
            target = self._target
            self._timer -= 1
            if self._timer <= 0 or np.hypot(*(s[0:2] - self._target)) < 10.0:
                self._new_push(s)
        target = target + self.rng.normal(0.0, self.noise, size=2)
        if self.max_lead is not None:
            lead = target - s[0:2]
            distance = float(np.hypot(*lead))
            if distance > self.max_lead:
                target = s[0:2] + lead * (self.max_lead / distance)
        return np.clip(target, self.MARGIN, WORKSPACE - self.MARGIN).astype(np.float32)


def make_policy(env_name: str, kind: str, seed: int = 0, **options):
    """Scripted policy `kind` for `env_name` (see POLICY_KINDS), seeded with `seed`.

    Options: wall expert/greedy `noise` (std of velocity noise as a fraction of the top speed, default 0)
    and `p_other_room`; pusht pusher `noise` (std in px, default 8) and `max_lead`
    (px the target may lead the agent, default 30: the human demonstrations' pace; None = no cap).
    """
    name = canonical_env_name(env_name)
    if kind not in POLICY_KINDS[name]:
        raise UserInputError(
            f"unknown policy {kind!r} for env {name!r}; expected one of: {', '.join(POLICY_KINDS[name])}"
        )
    seed = int(seed)
    if name == "wall":
        if kind == "random":
            return WallRandom(seed, **options)
        if kind in ("wander", "box"):
            return WallWander(seed, box=kind == "box", **options)
        if kind == "dash":
            return WallDash(seed, **options)
        return (WallExpert if kind == "expert" else WallGreedy)(seed, **options)
    if kind == "random":
        return PushTRandom(seed, **options)
    if kind == "greedy":
        return PushTGreedy(seed, **options)
    return PushTPusher(seed, **options)
