"""What a planner receives and what it returns: the objective and proposal-sampler types, WORST_COST and
the result records. Planners, the MPC loop and their callers all speak these, so they live apart from
any one planner's code.

Conventions shared by all planners:
- an objective maps `actions [B, N, H, A]` to `costs [B, N]` (lower is better); it may run a neural
  world model on a GPU, so planners stay in torch on the device/dtype of `init`/`low`/`high`;
- spreads (standard deviations) are given in units of the half-range `(high - low) / 2`, so one
  configuration transfers between action boxes such as [-1, 1] and [0, 512];
- the returned plan is always the best candidate actually evaluated, with the cost it was given,
  so `PlanResult.costs` is never an extrapolation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

# Non-finite costs become this value. Finite (not inf) so that softmax weights, means and momentum
# updates stay finite; far above any cost a real objective returns, so such candidates rank last.
WORST_COST = 1e30

Objective = Callable[[torch.Tensor], torch.Tensor]  # actions [B, N, H, A] -> costs [B, N]
ProposalSampler = Callable[[int, int], torch.Tensor]  # (B, M) -> actions [B, M, H, A]


@dataclass
class PlanHistory:
    """Per-iteration statistics of one plan; rows are iterations, columns the B problems."""

    best: torch.Tensor  # [I, B] lowest cost in each iteration's population
    mean: torch.Tensor  # [I, B] mean cost of the population (non-finite costs count as WORST_COST)
    elite: torch.Tensor  # [I, B] mean cost of the planner's elites (the whole population if it has none)
    n_samples: list[int]  # candidates evaluated per problem in each iteration
    elapsed: list[float]  # seconds since the plan started, at the end of each iteration


@dataclass
class PlanResult:
    """What a plan returns. `actions`/`costs` are the best evaluated candidate of each problem."""

    actions: torch.Tensor  # [B, H, A]
    costs: torch.Tensor  # [B]
    n_calls: int  # objective calls (one per iteration)
    wall_time: float  # seconds for the whole plan() call
    history: PlanHistory
    n_samples: int = 0  # candidates evaluated per problem, all iterations together
    objective_time: float = 0.0  # seconds inside objective calls (and their backward passes), host-side
    stop_reason: str = "iterations"  # iterations | time_budget | max_calls | callback | converged
    mean: torch.Tensor | None = None  # [B, H, A] final sampling mean: the natural warm start
    elites: torch.Tensor | None = None  # [B, K, H, A] final elites, best first (iCEM carries them)
    populations: list[tuple[torch.Tensor, torch.Tensor]] | None = field(default=None, repr=False)
    # populations: per iteration (actions [B, N, H, A], costs [B, N]) when return_populations=True

    @property
    def warm_start(self) -> torch.Tensor:
        """[B, H, A] the plan to shift for the next MPC step: the sampling mean where there is one."""
        return self.mean if self.mean is not None else self.actions


@dataclass
class IterationInfo:
    """Passed to the per-iteration callback; return True from the callback to stop the plan."""

    iteration: int
    actions: torch.Tensor  # [B, N, H, A] the population just evaluated (within bounds)
    costs: torch.Tensor  # [B, N] its costs (non-finite replaced by WORST_COST)
    best_costs: torch.Tensor  # [B] best cost found so far
    best_actions: torch.Tensor  # [B, H, A] best candidate found so far
    elapsed: float  # seconds since the plan started
