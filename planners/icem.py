"""iCEM (Pinneri et al. 2020): CEM made sample-efficient for real-time MPC."""

from __future__ import annotations

import torch

from planners.errors import PlannerError
from planners.gaussian import GaussianPlanner, GaussianState, refit_to_elites, sample_around_mean
from planners.noise import powerlaw_noise
from planners.plan_run import PlanRun
from planners.population import Evaluation, assemble, carried_parts, n_candidates
from planners.validation import fraction, non_negative_float, positive_float


class ICEM(GaussianPlanner):
    """iCEM: colored noise, elites kept across iterations and MPC steps, population decay, the mean
    added at the last iteration, best sample executed.

    Hyper-parameters (default, where it comes from; all from the iCEM paper unless said):
    - population=100, n_elites=10, iterations=3: the paper's budget setting (N ~ 100, K = 10, 3 iters).
    - beta=2.0: noise exponent; the paper used 2-3 for manipulation (0 = white noise = CEM).
    - keep_fraction=0.3: fraction of the elites re-evaluated in the next iteration.
    - population_decay=1.25: iteration i samples population / 1.25^i (never below 2 * n_elites).
    - momentum=0.1: new = 0.1 * old + 0.9 * fit for mean and std.
    - init_std=0.5 (x half-range): PETS' initial spread, as CEM. min_std=0.05 (x half-range): TD-MPC2.
    - prior_fraction=0.05: TD-MPC2 (24 of 512 samples from the policy).

    Keeping elites across MPC steps: `PlanResult.elites [B, K, H, A]` holds the final elites; pass
    `init_elites=shift_plan(result.elites, n_executed)` to the next plan (run_mpc does) and the first
    iteration re-evaluates `keep_fraction` of them. The planner object itself stays stateless.
    """

    def __init__(
        self, population: int = 100, n_elites: int = 10, iterations: int = 3, beta: float = 2.0,
        keep_fraction: float = 0.3, population_decay: float = 1.25, momentum: float = 0.1,
        init_std: float = 0.5, min_std: float = 0.05, prior_fraction: float = 0.05,
    ) -> None:
        self._set_elite_refit_settings(
            "ICEM", population, n_elites, iterations, init_std, min_std, momentum, prior_fraction
        )
        self.beta = non_negative_float("ICEM.beta", beta)
        self.keep_fraction = fraction("ICEM.keep_fraction", keep_fraction, upper_open=False)
        self.population_decay = positive_float("ICEM.population_decay", population_decay)
        if self.population_decay < 1:
            raise PlannerError(
                f"ICEM.population_decay must be >= 1 (populations shrink); got {population_decay!r}"
            )

    @property
    def n_keep(self) -> int:
        return int(round(self.keep_fraction * self.n_elites))

    def population_at(self, iteration: int) -> int:
        """Candidates evaluated in iteration i: population / decay^i, at least 2 * n_elites."""
        decayed = int(self.population / self.population_decay**iteration)
        return max(decayed, min(2 * self.n_elites, self.population))

    def _start(self, run: PlanRun) -> GaussianState:
        proposals = run.draw_proposals(
            self.population_at(self.iterations - 1), self.prior_fraction, reserved=2
        )
        carried = None
        if run.init_elites is not None and self.n_keep > 0:
            carried = run.init_elites[:, : self.n_keep]
        std = run.spread(self.init_std)
        return GaussianState(run.initial_mean(), std, proposals, carried)

    def _propose(self, run: PlanRun, state: GaussianState, iteration: int) -> torch.Tensor:
        n_total = self.population_at(iteration)
        last = iteration == self.iterations - 1
        # The warm start is evaluated in the first iteration, the final mean in the last (the paper).
        with_mean = last or (iteration == 0 and run.init is not None)
        carried = carried_parts(state.mean[:, None] if with_mean else None, state.proposals, state.carried)
        n_new = max(1, n_total - n_candidates(carried))
        noise = powerlaw_noise((run.B, n_new, run.A), run.H, self.beta, run.generator, run.device, run.dtype)
        return assemble(carried, sample_around_mean(state, noise.transpose(-1, -2)))

    def _update(
        self, run: PlanRun, state: GaussianState, iteration: int, population: torch.Tensor, evaluation: Evaluation
    ) -> GaussianState:
        elites = evaluation.elite_actions()  # [B, K, H, A], best first
        mean, std = refit_to_elites(run, state, elites, self.momentum, self.min_std)
        carried = elites[:, : self.n_keep] if self.n_keep > 0 else None
        return GaussianState(mean, std, state.proposals, carried, elites)
