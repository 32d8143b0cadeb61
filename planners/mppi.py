"""MPPI (Williams et al.): move the mean to the softmin-weighted average of noisy samples."""

from __future__ import annotations

import torch

from planners.contract import PlanResult
from planners.errors import PlannerError
from planners.gaussian import GaussianPlanner, GaussianState
from planners.plan_run import PlanRun
from planners.population import Evaluation
from planners.validation import elite_count, fraction, population_size, positive_float, positive_int


class MPPI(GaussianPlanner):
    """MPPI with a fixed noise spread, a temperature-weighted mean update and optional smoothing.

    Hyper-parameters (default, where it comes from):
    - population=512, iterations=6: TD-MPC2's planner.
    - n_elites=None: weight every sample, as Williams et al. and pytorch-mppi do (TD-MPC2 weights only
      its 64 best of 512; pass n_elites=64 for that).
    - temperature=1.0: weights softmax(-(cost - min cost) / temperature); pytorch-mppi's lambda_ default.
      It is in cost units: rescale it with the objective.
    - noise_std=0.5 (x half-range): the same initial spread as CEM (PETS' (high - low)^2 / 16).
    - smoothing_window=None: odd window of a Savitzky-Golay filter (order 2, scipy's coefficients)
      applied to the updated mean along time, the usual MPPI remedy for jittery plans.
    - prior_fraction=0.05: TD-MPC2 (24 of 512 samples from the policy).
    The mean is evaluated as sample 0 of each population; the returned plan is the best evaluated
    candidate, `PlanResult.mean` the final weighted mean (the warm start run_mpc shifts).
    """

    def __init__(
        self, population: int = 512, iterations: int = 6, n_elites: int | None = None, temperature: float = 1.0,
        noise_std: float = 0.5, smoothing_window: int | None = None, prior_fraction: float = 0.05,
    ) -> None:
        self.population = population_size("MPPI", population)
        self.iterations = positive_int("MPPI.iterations", iterations)
        self.n_elites = self.population if n_elites is None else elite_count("MPPI", n_elites, self.population)
        self.temperature = positive_float("MPPI.temperature", temperature)
        self.noise_std = positive_float("MPPI.noise_std", noise_std)
        if smoothing_window is not None:
            window = positive_int("MPPI.smoothing_window", smoothing_window)
            if window % 2 == 0 or window < 3:
                raise PlannerError(
                    f"MPPI.smoothing_window must be an odd int >= 3 or None; got {smoothing_window!r}"
                )
        self.smoothing_window = smoothing_window
        self.prior_fraction = fraction("MPPI.prior_fraction", prior_fraction)
        self._kernels: dict[tuple, torch.Tensor | None] = {}

    def _smoothing_kernel(self, run: PlanRun) -> torch.Tensor | None:
        """Savitzky-Golay weights [1, 1, W] for horizon H (window shrunk to fit), or None."""
        if self.smoothing_window is None:
            return None
        key = (run.H, run.device, run.dtype)
        if key not in self._kernels:
            window = min(self.smoothing_window, run.H if run.H % 2 else run.H - 1)
            kernel = None
            if window > 2:
                from scipy.signal import savgol_coeffs  # lazy: scipy.signal costs ~0.3 s to import

                coeffs = savgol_coeffs(window, polyorder=2, use="dot")
                kernel = torch.as_tensor(coeffs, device=run.device, dtype=run.dtype).view(1, 1, -1)
            self._kernels[key] = kernel
        return self._kernels[key]

    def _start(self, run: PlanRun) -> GaussianState:
        return self._start_with_spread(run, self.noise_std)

    def _update(
        self, run: PlanRun, state: GaussianState, iteration: int, population: torch.Tensor, evaluation: Evaluation
    ) -> GaussianState:
        if self.n_elites < self.population:
            costs, candidates = evaluation.elite_costs, evaluation.elite_actions()
        else:
            costs, candidates = evaluation.costs, evaluation.actions
        shifted = costs - costs.min(dim=1, keepdim=True).values
        weights = torch.softmax(-shifted / self.temperature, dim=1)  # [B, K]
        mean = torch.einsum("bk,bkha->bha", weights, candidates)
        kernel = self._smoothing_kernel(run)
        if kernel is not None:
            half = kernel.shape[-1] // 2
            series = mean.transpose(1, 2).reshape(run.B * run.A, 1, run.H)
            padded = torch.nn.functional.pad(series, (half, half), mode="replicate")
            mean = torch.nn.functional.conv1d(padded, kernel).view(run.B, run.A, run.H).transpose(1, 2)
        return GaussianState(run.clamp(mean), state.std, state.proposals, None, last=evaluation)

    def _finish(self, run: PlanRun, state: GaussianState) -> PlanResult:
        # Elites are only needed for the next warm start: gather them once here, not every iteration.
        elites = None
        if state.last is not None:
            k = min(self.n_elites, max(1, self.population // 10))
            elites = state.last.elite_actions(k)
        return run.finish(mean=state.mean, elites=elites)
