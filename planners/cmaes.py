"""CMA-ES through pycma (`cma`): one strategy per problem, asked in lock-step so that each iteration
is ONE batched objective call over all B problems."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from planners.base import SamplingPlanner
from planners.contract import PlanResult
from planners.errors import PlannerError
from planners.plan_run import PlanRun
from planners.population import Evaluation
from planners.validation import fraction, population_size, positive_float, positive_int


@dataclass
class CMAState:
    strategies: list[Any]  # B cma.CMAEvolutionStrategy
    active: list[bool]  # False once pycma's own termination criteria fire for that problem
    popsize: int
    n_elites: int
    proposals: list[list[np.ndarray]] | None  # per problem, normalised, injected every iteration
    first: list[list[np.ndarray]] | None  # per problem: init_elites, injected in the first iteration
    asked: list[list[np.ndarray]] | None = None
    elites: torch.Tensor | None = None
    converged: bool = False


class CMAES(SamplingPlanner):
    """CMA-ES in the normalised box [-1, 1]^(H*A) (so one sigma suits every action dimension).

    Hyper-parameters (default, where it comes from):
    - population=None: pycma's default 4 + floor(3 ln(H*A)).
    - iterations=30: the same iteration budget as CEM's default (DINO-WM); pycma's own stopping rules
      (tolfun, tolx, ...) can end a problem earlier; it then keeps its best solution.
    - sigma0=0.5: pycma advises the optimum within x0 +- 3 sigma0; 0.5 of the half-range, as CEM.
    - diagonal="auto": separable CMA (pycma's CMA_diagonal) when H*A > diagonal_above=64. Full
      covariance costs O(D^2) per sample plus an eigendecomposition; single-threaded it stays under
      ~2 ms per problem and iteration up to D = 64 here, and multi-threaded BLAS on a loaded 2-core
      machine made it 15 ms at D = 32 (set OPENBLAS_NUM_THREADS=1 there). True / False force it.
    - prior_fraction=0.05: TD-MPC2's share of policy samples; injected with pycma's `inject(force=True)`
      into every iteration, so they are evaluated exactly as proposed.
    - options: extra pycma options (e.g. {"CMA_active": False}); bounds, popsize, seed and verbosity are
      set here.
    Bounds use pycma's BoundTransform (identity inside [-0.9, 0.9] of the normalised box, smooth near
    the faces). Warm start: x0 = init (normalised). Seeds: one numpy Generator per problem, seeded from
    the plan's torch.Generator, passed as pycma's `randn`, so no global numpy state is touched.
    """

    def __init__(
        self,
        population: int | None = None,
        iterations: int = 30,
        sigma0: float = 0.5,
        diagonal: bool | str = "auto",
        diagonal_above: int = 64,
        prior_fraction: float = 0.05,
        options: dict | None = None,
    ) -> None:
        self.population = None if population is None else population_size("CMAES", population)
        self.iterations = positive_int("CMAES.iterations", iterations)
        self.sigma0 = positive_float("CMAES.sigma0", sigma0)
        if diagonal not in (True, False, "auto"):
            raise PlannerError(f"CMAES.diagonal must be True, False or 'auto'; got {diagonal!r}")
        self.diagonal = diagonal
        self.diagonal_above = positive_int("CMAES.diagonal_above", diagonal_above)
        self.prior_fraction = fraction("CMAES.prior_fraction", prior_fraction)
        if options is not None and not isinstance(options, dict):
            raise PlannerError(
                f"CMAES.options must be a dict of pycma options or None; got {type(options).__name__}"
            )
        self.options = dict(options or {})
        # pycma takes ~1.5 s to import here: pay it when the planner is built, not inside the first
        # plan's time budget, and not at `import planners` either.
        import cma  # noqa: F401

    def popsize_for(self, dim: int) -> int:
        return self.population if self.population is not None else 4 + int(3 * math.log(dim))

    @staticmethod
    def _search_dim(run: PlanRun) -> int:
        """pycma cannot run in one dimension: a 1-D problem gets a dummy second coordinate that the
        objective never sees."""
        return max(2, run.H * run.A)

    def _normalise(self, run: PlanRun, actions: torch.Tensor) -> np.ndarray:
        """[B, ..., H, A] actions -> float64 [B, ..., D] in [-1, 1] (D = H*A, or 2 when H*A = 1)."""
        z = ((actions - run.center) / run.half_range).reshape(*actions.shape[:-2], run.H * run.A)
        # clip in float64: float32 rounding can put a point on a face 1e-7 outside, which pycma rejects
        z = np.clip(z.double().cpu().numpy(), -1.0, 1.0)
        if run.H * run.A == 1:
            z = np.concatenate([z, np.zeros_like(z)], axis=-1)
        return z

    def _actions(self, run: PlanRun, z: np.ndarray, shape: tuple[int, ...]) -> torch.Tensor:
        """Inverse of _normalise: float64 [..., D] -> actions [*shape, H, A] in the box."""
        z_t = torch.as_tensor(z[..., : run.H * run.A], device=run.device, dtype=run.dtype)
        return run.center + run.half_range * z_t.reshape(*shape, run.H, run.A)

    def _start(self, run: PlanRun) -> CMAState:
        import cma  # already imported by __init__; instant here

        dim = self._search_dim(run)
        popsize = self.popsize_for(dim)
        diagonal = dim > self.diagonal_above if self.diagonal == "auto" else bool(self.diagonal)
        x0 = self._normalise(run, run.initial_mean())  # [B, D]
        seeds = torch.randint(0, 2**31 - 1, (run.B,), generator=run.generator, device=run.device).tolist()
        strategies = []
        for b in range(run.B):
            rng = np.random.default_rng(seeds[b])
            opts = {
                **self.options,
                "bounds": [-1.0, 1.0],
                "popsize": popsize,
                "CMA_diagonal": diagonal,
                "randn": (lambda r: lambda *shape: r.standard_normal(shape))(rng),
                "seed": np.nan,  # our randn carries the seed; nan stops pycma reseeding numpy globally
                "verbose": -9,
                "verb_log": 0,
                "verb_disp": 0,
            }
            strategies.append(cma.CMAEvolutionStrategy(x0[b], self.sigma0, opts))

        proposals = run.draw_proposals(popsize, self.prior_fraction, reserved=0)
        n_prop = 0 if proposals is None else proposals.shape[1]
        prop_list = None if proposals is None else [list(p) for p in self._normalise(run, proposals)]
        first = None
        room = popsize - 1 - n_prop
        if run.init_elites is not None and room > 0:
            first = [list(e) for e in self._normalise(run, run.init_elites[:, :room])]
        n_elites = max(1, popsize // 2)  # pycma's mu
        return CMAState(strategies, [True] * run.B, popsize, n_elites, prop_list, first)

    def _elite_count(self, state: CMAState) -> int:
        return state.n_elites

    def _propose(self, run: PlanRun, state: CMAState, iteration: int) -> torch.Tensor:
        asked = []
        for b, es in enumerate(state.strategies):
            if not state.active[b]:
                asked.append([es.result.xbest] * state.popsize)
                continue
            if state.proposals is not None:
                es.inject(state.proposals[b], force=True)
            if iteration == 0 and state.first is not None:
                es.inject(state.first[b], force=True)
            asked.append(es.ask())
        state.asked = asked
        return self._actions(run, np.asarray(asked), (run.B, state.popsize))  # asked: [B, P, D]

    def _update(
        self, run: PlanRun, state: CMAState, iteration: int, population: torch.Tensor, evaluation: Evaluation
    ) -> CMAState:
        costs = evaluation.costs.double().cpu().numpy()  # [B, P]
        for b, es in enumerate(state.strategies):
            if state.active[b]:
                es.tell(state.asked[b], costs[b].tolist())
                state.active[b] = not es.stop()
        state.elites = evaluation.elite_actions()
        state.converged = not any(state.active)
        return state

    def _finish(self, run: PlanRun, state: CMAState) -> PlanResult:
        # xfavorite: the distribution mean mapped through the bound transform (phenotype space)
        mean = self._actions(run, np.stack([es.result.xfavorite for es in state.strategies]), (run.B,))
        return run.finish(mean=mean, elites=state.elites)
