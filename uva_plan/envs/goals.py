"""The goal-planning protocol: which (start, goal) pairs an evaluation uses, and goal files.

- Wall: start and goal drawn independently in DIFFERENT rooms (the door must be found), same door.
- PushT: the two ends of a 25-step segment of a pusher trajectory run in the simulator, so every goal
  is reachable (as DINO-WM's protocol); a segment whose start already counts as success is skipped.
Pair i of `protocol_goals(env, n, seed)` uses seed `EVAL_SEED_OFFSET + seed + i`. Collection seeds are
small (episode i of a dataset uses `seed + i`), so evaluation never meets a training episode.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from uva_plan.envs import env_name as canonical_env_name
from uva_plan.envs import make_env
from uva_plan.errors import UserInputError
from world_model.files import atomic_write_bytes

EVAL_SEED_OFFSET = 1_000_000
PUSHT_SEGMENT_STEPS = 25
PUSHT_MAX_WARMUP = 25  # pusher steps before a segment starts, drawn per pair (varied start poses)
_STATE_DIMS = {"wall": 3, "pusht": 10}


@dataclass
class GoalPair:
    """One evaluation task: start in `start_state`, reach `goal_state` (env state layout, plain floats)."""

    start_state: list[float] = field(default_factory=list)
    goal_state: list[float] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"start_state": [float(v) for v in self.start_state], "goal_state": [float(v) for v in self.goal_state]}

    @classmethod
    def from_json(cls, data: dict) -> GoalPair:
        if not isinstance(data, dict) or "start_state" not in data or "goal_state" not in data:
            raise UserInputError(f"goal entry is {data!r:.80}; expected an object with 'start_state' and 'goal_state' lists")
        return cls(list(data["start_state"]), list(data["goal_state"]))


def _wall_pair(eval_seed: int) -> GoalPair:
    from uva_plan.envs.wall import sample_door_y, sample_position

    rng = np.random.default_rng(eval_seed)
    door = sample_door_y(rng)
    start_room = int(rng.integers(2))
    sx, sy = sample_position(rng, start_room)
    gx, gy = sample_position(rng, 1 - start_room)
    return GoalPair([sx, sy, door], [gx, gy, door])


def _pusht_pair(env, eval_seed: int) -> GoalPair:
    from uva_plan.envs.policies import make_policy

    rng = np.random.default_rng(eval_seed)
    env.reset(seed=eval_seed)
    state = env.get_state()
    policy = make_policy("pusht", "pusher", seed=eval_seed)
    policy.reset(state)
    for _ in range(int(rng.integers(0, PUSHT_MAX_WARMUP + 1))):
        state = env.step_state(policy(state))
    for _ in range(20):  # a segment in which nothing moved is no task; take the next one
        start = state.copy()
        for _ in range(PUSHT_SEGMENT_STEPS):
            state = env.step_state(policy(state))
        if not env.is_success(start, state):
            return GoalPair(start.tolist(), state.tolist())
    raise RuntimeError(f"the pusher never moved the block for eval seed {eval_seed}")  # never seen in practice


def protocol_goals(env_name: str, n: int, seed: int = 0) -> list[GoalPair]:
    """The protocol's `n` (start, goal) pairs for `env_name`, reproducible from `seed`."""
    name = canonical_env_name(env_name)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise UserInputError(f"number of goals is {n!r}; expected an integer >= 1")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise UserInputError(f"goal seed is {seed!r}; expected an integer >= 0")
    seeds = [EVAL_SEED_OFFSET + int(seed) + i for i in range(int(n))]
    if name == "wall":
        return [_wall_pair(s) for s in seeds]
    env = make_env("pusht", image_size=16)
    return [_pusht_pair(env, s) for s in seeds]


def save_goals(path, pairs: list[GoalPair]) -> None:
    """Write pairs as a JSON list of {"start_state": [...], "goal_state": [...]}, atomically."""
    path = Path(path)
    if not path.parent.is_dir():
        raise UserInputError(f"cannot write goals to {path}: folder {path.parent} does not exist; expected an existing folder")
    payload = json.dumps([p.to_json() for p in pairs], indent=1)
    try:
        atomic_write_bytes(path, payload.encode("utf-8"))
    except OSError as exc:
        raise UserInputError(f"cannot write goals to {path}: {exc.strerror}; expected a writable folder") from None


def load_goals(path, env_name: str) -> list[GoalPair]:
    """Read and validate a goal file for `env_name`: state lengths, finite values, valid states."""
    name = canonical_env_name(env_name)
    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"goal file {path} does not exist; expected a JSON file written by `uva-plan goals`")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserInputError(f"goal file {path} is not valid JSON ({exc}); expected a JSON list of goal pairs") from None
    if not isinstance(data, list) or not data:
        raise UserInputError(f"goal file {path} holds {type(data).__name__}; expected a non-empty JSON list of goal pairs")
    dim = _STATE_DIMS[name]
    env = make_env(name, image_size=16)
    pairs = []
    for i, entry in enumerate(data):
        pair = GoalPair.from_json(entry)
        for key in ("start_state", "goal_state"):
            values = getattr(pair, key)
            ok = isinstance(values, list) and len(values) == dim
            ok = ok and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values)
            if not ok:
                raise UserInputError(
                    f"goal file {path}, entry {i}: {key} is {values!r:.120}; expected {dim} finite numbers "
                    f"({name} state layout)"
                )
            try:
                env.check_state(values)
            except UserInputError as exc:
                raise UserInputError(f"goal file {path}, entry {i}: {key}: {exc}") from None
        if name == "wall" and pair.start_state[2] != pair.goal_state[2]:
            raise UserInputError(
                f"goal file {path}, entry {i}: start and goal have doors at y={pair.start_state[2]} and "
                f"y={pair.goal_state[2]}; expected the same door (one world per episode)"
            )
        pairs.append(GoalPair([float(v) for v in pair.start_state], [float(v) for v in pair.goal_state]))
    return pairs
