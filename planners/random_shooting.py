"""Random shooting: evaluate uniform random action sequences, keep the best. The baseline every
other planner must beat, and a sanity check of an objective."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from planners.base import SamplingPlanner
from planners.plan_run import PlanRun
from planners.population import Evaluation, assemble, carried_parts, n_candidates
from planners.validation import fraction, population_size, positive_int


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
        self.population = population_size("RandomShooting", population)
        self.iterations = positive_int("RandomShooting.iterations", iterations)
        self.n_elites = min(positive_int("RandomShooting.n_elites", n_elites), self.population)
        self.prior_fraction = fraction("RandomShooting.prior_fraction", prior_fraction)

    def _start(self, run: PlanRun) -> ShootingState:
        proposals = run.draw_proposals(self.population, self.prior_fraction, reserved=0)
        room = self.population - 1 - (0 if proposals is None else proposals.shape[1])
        first = carried_parts(None if run.init is None else run.init[:, None], run.init_elites)
        first_t = torch.cat(first, dim=1)[:, :room] if first and room > 0 else None
        return ShootingState(proposals, first_t)

    def _propose(self, run: PlanRun, state: ShootingState, iteration: int) -> torch.Tensor:
        carried = carried_parts(state.proposals, state.first if iteration == 0 else None)
        return assemble(carried, run.uniform(self.population - n_candidates(carried)))

    def _update(
        self, run: PlanRun, state: ShootingState, iteration: int, population: torch.Tensor, evaluation: Evaluation
    ) -> ShootingState:
        return ShootingState(state.proposals, state.first, evaluation.elite_actions())
