"""The action box [low, high] of one plan: the bounds parsed and checked once, and the projection onto
the box that every evaluated candidate goes through (so it is written for speed)."""

from __future__ import annotations

import math
from typing import Any

import torch

from planners.errors import PlannerError


def device_and_dtype(*candidates: Any) -> tuple[torch.device, torch.dtype]:
    """The first tensor among init/low/high decides where and in which float type a plan works."""
    for value in candidates:
        if isinstance(value, torch.Tensor):
            dtype = value.dtype if value.is_floating_point() else torch.float32
            return value.device, dtype
    return torch.device("cpu"), torch.float32


def _bound(name: str, value: Any, action_dim: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """One bound as a finite [A] tensor: a number or a scalar tensor is repeated for every dimension."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        # fast path (the common case): no tensor ops to validate a plain number
        if math.isnan(value):
            raise PlannerError(f"{name} contains NaN; expected finite numbers")
        if math.isinf(value):
            raise PlannerError(
                f"{name} contains inf; expected finite bounds (planners sample inside the box)"
            )
        return torch.full((action_dim,), float(value), device=device, dtype=dtype)
    try:
        tensor = torch.as_tensor(value, device=device).to(dtype)
    except (TypeError, ValueError, RuntimeError):
        raise PlannerError(f"{name} must be a number or a tensor [A]; got {type(value).__name__}") from None
    if tensor.dim() == 0:
        tensor = tensor.expand(action_dim)
    if tuple(tensor.shape) != (action_dim,):
        raise PlannerError(
            f"{name} has shape {tuple(tensor.shape)}; expected a scalar or [A] = [{action_dim}]"
        )
    if not torch.isfinite(tensor).all():
        if torch.isnan(tensor).any():
            raise PlannerError(f"{name} contains NaN; expected finite numbers")
        raise PlannerError(f"{name} contains inf; expected finite bounds (planners sample inside the box)")
    return tensor.contiguous()


class ActionBox:
    """`low`, `high`, `center` and `half_range` as [A] tensors, and `clamp` onto the box."""

    def __init__(
        self, low: Any, high: Any, horizon: int, action_dim: int, device: torch.device, dtype: torch.dtype
    ) -> None:
        self.low = _bound("low", low, action_dim, device, dtype)
        self.high = _bound("high", high, action_dim, device, dtype)
        if (self.low >= self.high).any():
            i = int((self.low >= self.high).nonzero()[0, 0])
            raise PlannerError(
                f"low must be < high in every action dimension; got low[{i}]={float(self.low[i]):g} >= "
                f"high[{i}]={float(self.high[i]):g}"
            )
        self.center = (self.low + self.high) / 2  # [A]
        self.half_range = (self.high - self.low) / 2  # [A]
        # contiguous [H, A] corner and extent, for uniform draws (a stride-0 expand is slower to fill)
        self.low_grid = self.low.expand(horizon, action_dim).contiguous()
        self.range_grid = (self.high - self.low).expand(horizon, action_dim).contiguous()
        # Clamping [B, N, H, A] against [A]-shaped bounds broadcasts over an inner loop of length A,
        # which is 7-9x slower here than clamping against python scalars (equal bounds in every
        # dimension, the common case) or against contiguous [H, A] bounds.
        uniform = bool((self.low == self.low[0]).all() and (self.high == self.high[0]).all())
        if uniform:
            self._clamp_low, self._clamp_high = float(self.low[0]), float(self.high[0])
        else:
            self._clamp_low = self.low.expand(horizon, action_dim).contiguous()
            self._clamp_high = self.high.expand(horizon, action_dim).contiguous()

    def clamp(self, actions: torch.Tensor) -> torch.Tensor:
        """Project actions [..., H, A] onto the box."""
        return torch.clamp(actions, self._clamp_low, self._clamp_high)
