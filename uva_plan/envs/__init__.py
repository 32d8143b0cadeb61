"""Environments with pixel observations and exact state access: `wall` and `pusht`.

Importing this package registers the gymnasium ids `uva_plan/Wall-v0` and `uva_plan/PushT-v0` (by entry
point string, so pygame/pymunk load only when PushT is made). `make_env` builds the env object itself
rather than through `gym.make`, whose wrappers would hide `get_state`, `render_state` and friends.
"""

from __future__ import annotations

import gymnasium as gym

from uva_plan.errors import UserInputError

ENV_IDS = {"wall": "uva_plan/Wall-v0", "pusht": "uva_plan/PushT-v0"}
ENV_NAMES = tuple(ENV_IDS)
_ENTRY_POINTS = {"wall": "uva_plan.envs.wall:WallEnv", "pusht": "uva_plan.envs.pusht:PushTEnv"}
_DEFAULT_MAX_STEPS = {"wall": 100, "pusht": 300}

for _name, _id in ENV_IDS.items():
    if _id not in gym.registry:
        # No TimeLimit wrapper: the envs truncate at their own max_episode_steps.
        gym.register(id=_id, entry_point=_ENTRY_POINTS[_name])


def env_name(name: str) -> str:
    """Canonical short name ('wall' or 'pusht') of a short name or gymnasium id, any case."""
    if isinstance(name, str):
        key = name.strip().lower()
        for short, env_id in ENV_IDS.items():
            if key in (short, env_id.lower()):
                return short
    valid = ", ".join(f"{n} ({i})" for n, i in ENV_IDS.items())
    raise UserInputError(f"unknown environment {name!r}; expected one of: {valid}")


def make_env(name: str, image_size: int = 64, **kwargs):
    """Build env `name` ('wall' or 'pusht') with `image_size`x`image_size` RGB observations.

    kwargs go to the env (`max_episode_steps`, defaults: wall 100, pusht 300)."""
    short = env_name(name)
    if short == "wall":
        from uva_plan.envs.wall import WallEnv

        return WallEnv(image_size=image_size, **kwargs)
    from uva_plan.envs.pusht import PushTEnv

    return PushTEnv(image_size=image_size, **kwargs)


def hold_actions(name: str, states):
    """``[N, A]`` env-unit actions that keep the agent still in each of ``states [N, D]``: what a
    goal-reaching policy does once it is at its goal (the policy's hindsight targets past the goal)."""
    short = env_name(name)
    if short == "wall":
        from uva_plan.envs.wall import WallEnv

        return WallEnv.hold_actions(states)
    from uva_plan.envs.pusht import PushTEnv

    return PushTEnv.hold_actions(states)


def default_max_steps(name: str) -> int:
    return _DEFAULT_MAX_STEPS[env_name(name)]


__all__ = ["ENV_IDS", "ENV_NAMES", "default_max_steps", "env_name", "hold_actions", "make_env"]
