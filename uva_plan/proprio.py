"""The history proprioception a proprioceptive world model needs, read from env states.

A model trained with ``uva-plan train --proprio`` records which state entries its proprio is
(``config.proprio_state_indices``); every caller that imagines with it (planning, tracking, the
imagination benchmark) has the true states of the history it shows, and passes them through here.
"""

from __future__ import annotations

import numpy as np
import torch

from uva_plan.errors import UserInputError


def uses_proprio(model) -> bool:
    return int(getattr(model.config, "proprio_dim", 0) or 0) > 0


def places_agent(model) -> bool:
    """Whether the model predicts the agent's image position (what the agent cost reads)."""
    return uses_proprio(model) and bool(getattr(model.config, "proprio_image_xy", None))


def places_object(model) -> bool:
    """Whether the model predicts an object's pose (``train --object-pose``: what the predicted pose cost reads)."""
    return uses_proprio(model) and bool(getattr(model.config, "proprio_object_pose", None))


def history_proprio(model, states) -> torch.Tensor | None:
    """``states [B, Th, D]`` (env states at the history frames) -> ``[B, Th, P]`` float32, or None for
    a model without proprioception (which then needs no states)."""
    if not uses_proprio(model):
        return None
    idx = list(model.config.proprio_state_indices)
    if not idx:
        raise UserInputError("this model's config names no proprio_state_indices, so its proprioception cannot be "
                             "read from env states; expected a model trained with `uva-plan train --proprio`")
    arr = np.asarray(states, dtype=np.float32)
    if arr.ndim != 3 or arr.shape[-1] <= max(idx):
        raise UserInputError(f"history states have shape {arr.shape}; expected [B, {model.config.n_history}, D] with "
                             f"D > {max(idx)} (the model's proprioception reads state entries {idx})")
    return torch.from_numpy(np.ascontiguousarray(arr[..., idx]))


def goal_proprio(model, goal_states) -> torch.Tensor | None:
    """``goal_states [B, D]`` -> the goals' proprio ``[B, P]`` float32 (a goal's state read as a one-frame
    history), or None for a model without proprioception."""
    proprio = history_proprio(model, np.asarray(goal_states, dtype=np.float32)[:, None])
    return None if proprio is None else proprio[:, 0]


def _image_xy(xy_index, low, high, values) -> torch.Tensor:
    """The two entries ``xy_index`` of ``values [..., P]`` (env units; a tensor keeps its device) as
    fractions of the frame in [0, 1], ``low``/``high`` being the env units of the frame's edges."""
    x = values if torch.is_tensor(values) else torch.as_tensor(np.asarray(values, dtype=np.float32))
    x = x[..., list(xy_index)].float()
    lo = torch.tensor([low[i] for i in xy_index], dtype=torch.float32, device=x.device)
    hi = torch.tensor([high[i] for i in xy_index], dtype=torch.float32, device=x.device)
    return (x - lo) / (hi - lo)


def agent_of_states(env_name: str, states) -> torch.Tensor:
    """``states [..., D]`` -> the agent's image position ``[..., 2]`` as a fraction of the frame (the
    env's proprioception: `uva_plan.envs.proprio_config`)."""
    from uva_plan.envs import proprio_config

    spec = proprio_config(env_name)
    proprio = np.asarray(states, dtype=np.float32)[..., spec["proprio_state_indices"]]
    return _image_xy(spec["proprio_image_xy"], spec["proprio_low"], spec["proprio_high"], proprio)


def agent_of_proprio(model, proprio: torch.Tensor | None) -> torch.Tensor | None:
    """A proprio model's predicted proprio ``[..., P]`` (env units) -> the agent's image position
    ``[..., 2]`` as a fraction of the frame, on the proprio's device; None where the model names none."""
    if proprio is None or not places_agent(model):
        return None
    cfg = model.config
    return _image_xy(cfg.proprio_image_xy, cfg.proprio_low, cfg.proprio_high, proprio)


def object_of_proprio(model, proprio: torch.Tensor | None) -> torch.Tensor | None:
    """An object-pose model's proprio ``[..., P]`` (env units) -> the object's pose ``[..., 3]`` (x, y in
    env units, angle in radians), on the proprio's device; None where the model predicts none."""
    if proprio is None or not places_object(model):
        return None
    return proprio[..., list(model.config.proprio_object_pose)].float()


def object_of_states(env_name: str, states) -> torch.Tensor:
    """``states [..., D]`` -> the pose ``[..., 3]`` of the object the env's agent pushes (x, y, angle), as
    an object-pose model predicts it."""
    from uva_plan.envs import object_pose_indices

    idx = list(object_pose_indices(env_name))
    if not idx:
        raise UserInputError(f"the {env_name} env has no object to push; expected an env with one (pusht)")
    return torch.as_tensor(np.asarray(states, dtype=np.float32)[..., idx])


def one_step_transitions(buffer, episodes, state_indices) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The replay buffer's consecutive steps within ``episodes``: the proprio (``state_indices`` of the
    states) ``[N, P]``, the action taken ``[N, A]`` and the proprio after it ``[N, P]``, float32."""
    states = np.asarray(buffer.state, dtype=np.float32)[:, list(state_indices)]
    actions = np.asarray(buffer.action, dtype=np.float32)
    now = np.concatenate([np.arange(buffer.episode_starts[e], buffer.episode_ends[e] - 1) for e in episodes])
    return states[now], actions[now], states[now + 1]
