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


def history_proprio(model, states) -> torch.Tensor | None:
    """``states [B, Th, D]`` (env states at the history frames) -> ``[B, Th, P]`` float32, or None for
    a model without proprioception (which then needs no states)."""
    if not uses_proprio(model):
        return None
    idx = list(model.config.proprio_state_indices)
    arr = np.asarray(states, dtype=np.float32)
    if arr.ndim != 3 or arr.shape[-1] <= max(idx):
        raise UserInputError(f"history states have shape {arr.shape}; expected [B, {model.config.n_history}, D] with "
                             f"D > {max(idx)} (the model's proprioception reads state entries {idx})")
    return torch.from_numpy(np.ascontiguousarray(arr[..., idx]))


def image_fraction(xy, low, high) -> torch.Tensor:
    """Image positions in env units ``[..., 2]`` -> fractions of the frame in [0, 1] (``low``/``high``:
    the env units of the frame's edges)."""
    lo = torch.as_tensor(np.asarray(low, dtype=np.float32))
    hi = torch.as_tensor(np.asarray(high, dtype=np.float32))
    xy = torch.as_tensor(np.asarray(xy, dtype=np.float32)) if not torch.is_tensor(xy) else xy.float().cpu()
    return (xy - lo) / (hi - lo)


def agent_of_states(env_name: str, states) -> torch.Tensor:
    """``states [..., D]`` -> the agent's image position ``[..., 2]`` as a fraction of the frame (the
    env's proprioception: `uva_plan.envs.proprio_config`)."""
    from uva_plan.envs import proprio_config

    spec = proprio_config(env_name)
    xy = [spec["proprio_state_indices"][i] for i in spec["proprio_image_xy"]]
    lo = [spec["proprio_low"][i] for i in spec["proprio_image_xy"]]
    hi = [spec["proprio_high"][i] for i in spec["proprio_image_xy"]]
    return image_fraction(np.asarray(states, dtype=np.float32)[..., xy], lo, hi)


def agent_of_proprio(model, proprio: torch.Tensor | None) -> torch.Tensor | None:
    """A proprio model's predicted proprio ``[..., P]`` (env units) -> the agent's image position
    ``[..., 2]`` as a fraction of the frame; None where the model names no image position."""
    xy = list(getattr(model.config, "proprio_image_xy", []) or [])
    if proprio is None or not xy:
        return None
    cfg = model.config
    return image_fraction(proprio[..., xy], [cfg.proprio_low[i] for i in xy], [cfg.proprio_high[i] for i in xy])
