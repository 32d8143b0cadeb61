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
    return _env_class(name).hold_actions(states)


def _env_class(name: str):
    if env_name(name) == "wall":
        from uva_plan.envs.wall import WallEnv

        return WallEnv
    from uva_plan.envs.pusht import PushTEnv

    return PushTEnv


def proprio_config(name: str, object_pose: bool = False) -> dict:
    """The world-model config fields (`UVAConfig.proprio_*`) of the env's proprioception: which state
    entries it is, their bounds, and that the first two are the agent's image (x, y). ``object_pose``:
    the pose of the object the agent pushes follows (PushT's T: x, y, angle), predicted in its own frame
    (`UVAConfig.proprio_object_pose`); an env without one refuses."""
    cls = _env_class(name)
    indices, low, high = list(cls.proprio_indices), list(cls.proprio_low), list(cls.proprio_high)
    out = {"proprio_image_xy": list(cls.proprio_image_xy)}
    if object_pose:
        if not cls.object_pose_indices:
            raise UserInputError(f"the {cls.name} env has no object to push, so no object pose; expected an env "
                                 "with one (pusht)")
        out["proprio_object_pose"] = list(range(len(indices), len(indices) + 3))
        out["actions_image_xy"] = bool(cls.actions_image_xy)
        indices += list(cls.object_pose_indices)
        low, high = low + list(cls.object_pose_low), high + list(cls.object_pose_high)
    return {"proprio_dim": len(indices), "proprio_state_indices": indices, "proprio_low": low, "proprio_high": high,
            **out}


def object_pose_indices(name: str) -> tuple[int, ...]:
    """The state entries (x, y, angle) of the object the env's agent pushes; empty where there is none."""
    return tuple(_env_class(name).object_pose_indices)


def default_max_steps(name: str) -> int:
    return _DEFAULT_MAX_STEPS[env_name(name)]


__all__ = ["ENV_IDS", "ENV_NAMES", "default_max_steps", "env_name", "hold_actions", "make_env", "object_pose_indices", "proprio_config"]
