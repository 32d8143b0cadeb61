"""Random shooting: evaluate uniform random action sequences, keep the best. The baseline every
other planner must beat, and a sanity check of an objective."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from planners.base import Evaluation, PlanRun, SamplingPlanner, fraction, positive_int
from planners.cem import assemble, fixed_part
from planners.errors import PlannerError


@dataclass
class ShootingState:
    proposals: torch.Tensor | None  # [B, M, H, A]
    first: torch.Tensor | None  # [B, K, H, A] warm start and carried candidates, evaluated once
    elites: torch.Tensor | None = None


class RandomShooting(SamplingPlanner):
    """Uniform samples in the box; `iterations` > 1 splits a large budget into several calls.

    Hyper-parameters (default, where it comes from):
    - population=1000, iterations=1: Nagabandi et al. 2018 (random-shooting MPC, ~1000 sequences).
    - n_elites=10: only for statistics and the elites returned for warm starts.
    - prior_fraction=0.05: TD-MPC2's share of policy samples.
    The warm start `init` and `init_elites` are evaluated in the first call.
    """

    def __init__(
        self, population: int = 1000, iterations: int = 1, n_elites: int = 10, prior_fraction: float = 0.05
    ) -> None:
        self.population = positive_int("RandomShooting.population", population)
        if self.population < 2:
            raise PlannerError(f"RandomShooting.population must be >= 2; got {self.population}")
        self.iterations = positive_int("RandomShooting.iterations", iterations)
        self.n_elites = min(positive_int("RandomShooting.n_elites", n_elites), self.population)
        self.prior_fraction = fraction("RandomShooting.prior_fraction", prior_fraction)

    def _start(self, run: PlanRun) -> ShootingState:
        proposals = run.draw_proposals(self.population, self.prior_fraction, reserved=0)
        room = self.population - 1 - (0 if proposals is None else proposals.shape[1])
        first = fixed_part(None if run.init is None else run.init[:, None], run.init_elites)
        first_t = torch.cat(first, dim=1)[:, :room] if first and room > 0 else None
        return ShootingState(proposals, first_t)

    def _propose(self, run: PlanRun, state: ShootingState, iteration: int) -> torch.Tensor:
        fixed = fixed_part(state.proposals, state.first if iteration == 0 else None)
        n_fixed = sum(p.shape[1] for p in fixed)
        return assemble(fixed, run.uniform(self.population - n_fixed))

    def _update(
        self,
        run: PlanRun,
        state: ShootingState,
        iteration: int,
        population: torch.Tensor,
        evaluation: Evaluation,
    ) -> ShootingState:
        return ShootingState(state.proposals, state.first, evaluation.elite_actions())
