"""What CEM, iCEM and MPPI share: a diagonal Gaussian over action sequences around a mean plan, whose
populations carry the mean, the proposals and the carried elites unchanged before fresh samples."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from planners.base import SamplingPlanner
from planners.plan_run import PlanRun
from planners.population import Evaluation, assemble, carried_parts, n_candidates
from planners.validation import check_population, fraction, positive_float, positive_int


@dataclass
class GaussianState:
    """Sampling distribution of one plan."""

    mean: torch.Tensor  # [B, H, A]
    std: torch.Tensor  # [B, H, A] in action units
    proposals: torch.Tensor | None  # [B, M, H, A] drawn once, re-evaluated every iteration
    carried: torch.Tensor | None  # [B, K, H, A] candidates re-evaluated next iteration
    elites: torch.Tensor | None = None  # [B, K, H, A] last elites, best first
    last: Evaluation | None = None  # the last evaluation, for planners that pick elites lazily


class GaussianPlanner(SamplingPlanner):
    """A sampling planner over a Gaussian. Its default start and proposal (CEM's and MPPI's): the
    population holds the mean as sample 0 (so a plan never gets worse than its warm start), then the
    proposals, then as many `init_elites` as leave room for one sample of its own, then white noise."""

    population: int
    prior_fraction: float

    def _set_elite_refit_settings(
        self, planner: str, population: int, n_elites: int, iterations: int, init_std: float, min_std: float,
        momentum: float, prior_fraction: float,
    ) -> None:
        """Check and keep the settings CEM and iCEM share (their momentum and min_std feed `refit_to_elites`)."""
        self.population, self.n_elites = check_population(planner, population, n_elites)
        self.iterations = positive_int(f"{planner}.iterations", iterations)
        self.init_std = positive_float(f"{planner}.init_std", init_std)
        self.min_std = fraction(f"{planner}.min_std", min_std, upper_open=False)
        self.momentum = fraction(f"{planner}.momentum", momentum)
        self.prior_fraction = fraction(f"{planner}.prior_fraction", prior_fraction)

    def _start_with_spread(self, run: PlanRun, std_fraction: float) -> GaussianState:
        """Mean = the warm start (or the box centre), std = `std_fraction` half-ranges."""
        proposals = run.draw_proposals(self.population, self.prior_fraction, reserved=1)
        room = self.population - 2 - (0 if proposals is None else proposals.shape[1])
        carried = run.init_elites
        if carried is not None:
            carried = carried[:, :room] if room > 0 else None
        return GaussianState(run.initial_mean(), run.spread(std_fraction), proposals, carried)

    def _propose(self, run: PlanRun, state: GaussianState, iteration: int) -> torch.Tensor:
        carried = carried_parts(state.mean[:, None], state.proposals, state.carried)
        noise = run.randn(run.B, self.population - n_candidates(carried), run.H, run.A)
        return assemble(carried, sample_around_mean(state, noise))


def sample_around_mean(state: GaussianState, noise: torch.Tensor) -> torch.Tensor:
    """noise [B, n, H, A] (unit variance) -> samples mean + std * noise [B, n, H, A]."""
    return torch.addcmul(state.mean[:, None], state.std[:, None], noise)


def refit_to_elites(
    run: PlanRun, state: GaussianState, elites: torch.Tensor, momentum: float, min_std: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, std) [B, H, A] of elites [B, K, H, A], smoothed as momentum * old + (1 - momentum) * fit
    (CEM and iCEM), the std kept above `min_std` half-ranges so the search stays alive."""
    fit_std, fit_mean = torch.std_mean(elites, dim=1, correction=0)
    if momentum == 0:
        mean, std = fit_mean, fit_std
    else:
        mean, std = torch.lerp(fit_mean, state.mean, momentum), torch.lerp(fit_std, state.std, momentum)
    return mean, torch.maximum(std, min_std * run.half_range)
