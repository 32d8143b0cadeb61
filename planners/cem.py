"""Cross-entropy method: sample a Gaussian over action sequences, refit it to the elites."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from planners.base import (
    Evaluation,
    PlanRun,
    SamplingPlanner,
    check_population,
    fraction,
    positive_float,
    positive_int,
)


@dataclass
class GaussianState:
    """Sampling distribution of one plan, shared by CEM, iCEM and MPPI."""

    mean: torch.Tensor  # [B, H, A]
    std: torch.Tensor  # [B, H, A] in action units
    proposals: torch.Tensor | None  # [B, M, H, A] drawn once, re-evaluated every iteration
    carried: torch.Tensor | None  # [B, K, H, A] candidates re-evaluated next iteration
    elites: torch.Tensor | None = None  # [B, K, H, A] last elites, best first
    last: Evaluation | None = None  # the last evaluation, for planners that pick elites lazily


def fixed_part(*parts: torch.Tensor | None) -> list[torch.Tensor]:
    return [p for p in parts if p is not None]


def assemble(fixed: list[torch.Tensor], sampled: torch.Tensor) -> torch.Tensor:
    """Population [B, N, H, A]: fixed candidates first, then the planner's own samples."""
    return torch.cat([*fixed, sampled], dim=1) if fixed else sampled


class CEM(SamplingPlanner):
    """CEM as used by DINO-WM / PETS.

    Hyper-parameters (default, where it comes from):
    - population=300, n_elites=30, iterations=30: DINO-WM's PushT planner (300 samples, top 30, 30 iters).
    - init_std=0.5 (x half-range): PETS' initial variance (high - low)^2 / 16.
    - min_std=0.05 (x half-range): TD-MPC2's min_std, keeps the search alive after collapse.
    - momentum=0.0: DINO-WM refits without smoothing; PETS / iCEM use 0.1 (new = m * old + (1 - m) * fit).
    - prior_fraction=0.05: TD-MPC2 draws 24 of 512 samples from its policy.
    Every population holds the current mean as sample 0 (DINO-WM), so the plan never gets worse than
    the warm start; the returned plan is the best evaluated candidate. Samples are clipped to the box
    and the refit uses the clipped samples, so the mean never leaves the box; an optimum on a face is
    then approached from inside (on the bang-bang point mass of benchmarks/planners_vs_peers.py this
    costs 2% against stable-worldmodel's CEM, which refits unclipped samples).
    """

    def __init__(
        self,
        population: int = 300,
        n_elites: int = 30,
        iterations: int = 30,
        init_std: float = 0.5,
        min_std: float = 0.05,
        momentum: float = 0.0,
        prior_fraction: float = 0.05,
    ) -> None:
        self.population, self.n_elites = check_population("CEM", population, n_elites)
        self.iterations = positive_int("CEM.iterations", iterations)
        self.init_std = positive_float("CEM.init_std", init_std)
        self.min_std = fraction("CEM.min_std", min_std, upper_open=False)
        self.momentum = fraction("CEM.momentum", momentum)
        self.prior_fraction = fraction("CEM.prior_fraction", prior_fraction)

    def _start(self, run: PlanRun) -> GaussianState:
        proposals = run.draw_proposals(self.population, self.prior_fraction, reserved=1)
        n_prop = 0 if proposals is None else proposals.shape[1]
        carried = run.init_elites
        room = self.population - 2 - n_prop  # keep the mean and at least one sample of our own
        if carried is not None:
            carried = carried[:, :room] if room > 0 else None
        std = run.spread(self.init_std)
        return GaussianState(run.initial_mean(), std, proposals, carried)

    def _propose(self, run: PlanRun, state: GaussianState, iteration: int) -> torch.Tensor:
        fixed = fixed_part(state.mean[:, None], state.proposals, state.carried)
        n_fixed = sum(p.shape[1] for p in fixed)
        noise = run.randn(run.B, self.population - n_fixed, run.H, run.A)
        sampled = torch.addcmul(state.mean[:, None], state.std[:, None], noise)
        return assemble(fixed, sampled)

    def _update(
        self,
        run: PlanRun,
        state: GaussianState,
        iteration: int,
        population: torch.Tensor,
        evaluation: Evaluation,
    ) -> GaussianState:
        elites = evaluation.elite_actions()  # [B, K, H, A]
        fit_std, fit_mean = torch.std_mean(elites, dim=1, correction=0)
        m = self.momentum
        mean = fit_mean if m == 0 else torch.lerp(fit_mean, state.mean, m)  # m * old + (1 - m) * fit
        std = fit_std if m == 0 else torch.lerp(fit_std, state.std, m)
        std = torch.maximum(std, self.min_std * run.half_range)
        return GaussianState(mean, std, state.proposals, None, elites)
