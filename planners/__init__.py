"""Model-agnostic optimisers over batched action sequences and the receding-horizon MPC loop.
They see an objective `actions [B, N, H, A] -> costs [B, N]` and an optional proposal sampler, never
the world model itself."""

from planners.errors import PlannerError

__all__ = ["PlannerError"]
