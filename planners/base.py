"""The planner interface: `Planner.plan` validates the problem into a `PlanRun`, then runs the planner's
`_start` and one `_step` per iteration until a budget stops it; `SamplingPlanner` splits a step into
propose -> evaluate once -> update. A planner file then holds only its update rule."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import torch

from planners.contract import IterationInfo, Objective, PlanResult, ProposalSampler
from planners.plan_run import PlanRun
from planners.population import Evaluation


class Planner(ABC):
    """An optimiser over batched action sequences. Subclasses hold hyper-parameters only; everything
    of one plan lives in the `state` their `_start` returns, so one planner object can serve many
    environments and MPC steps (warm starts travel through `init` / `init_elites`)."""

    iterations: int
    n_elites: int  # how many of each population count as elites (for statistics and updates)
    _mode = staticmethod(torch.no_grad)  # autograd mode of _start (and of _step for sampling planners)

    def plan(
        self,
        objective: Objective,
        *,
        batch_size: int,
        horizon: int,
        action_dim: int,
        low: Any,
        high: Any,
        init: Any = None,
        proposals: ProposalSampler | None = None,
        seed: int | None = None,
        time_budget: float | None = None,
        max_calls: int | None = None,
        init_elites: Any = None,
        callback: Callable[[IterationInfo], Any] | None = None,
        return_populations: bool = False,
    ) -> PlanResult:
        """Minimise `objective(actions [B, N, H, A]) -> costs [B, N]` over `actions` in [low, high].

        init [B, H, A]: warm start (the previous plan already shifted, see `shift_plan`); clamped to the box.
        proposals(B, M) -> [B, M, H, A]: a prior (e.g. a policy); M of each population come from it.
        init_elites [B, K, H, A]: candidates carried from the previous MPC step (shifted `PlanResult.elites`);
            evaluated in the first iteration (iCEM keeps a fraction of them as its carried elites).
        seed: equal seeds give equal plans (for a deterministic objective and proposal sampler).
        time_budget: seconds per plan; the best found so far is returned when the next iteration would
            overrun it. max_calls: cap on objective calls (= iterations).
        callback(IterationInfo): called after every iteration; returning True stops the plan.
        return_populations: keep every evaluated population in `PlanResult.populations` (visualisation).
        """
        run = PlanRun(
            objective, batch_size, horizon, action_dim, low, high, init=init, init_elites=init_elites,
            proposals=proposals, seed=seed, time_budget=time_budget, max_calls=max_calls, callback=callback,
            return_populations=return_populations,
        )
        with self._mode():
            state = self._start(run)
        for iteration in range(self.iterations):
            if iteration > 0 and run.should_stop():
                break
            state = self._step(run, state, iteration)
            if getattr(state, "converged", False):
                run.stop_reason = "converged"
                break
        return self._finish(run, state)

    @abstractmethod
    def _start(self, run: PlanRun) -> Any:
        """Build the planner's state for one plan (sampling distribution, carried candidates)."""

    @abstractmethod
    def _step(self, run: PlanRun, state: Any, iteration: int) -> Any:
        """One iteration with exactly one `run.evaluate` call; return the new state."""

    def _finish(self, run: PlanRun, state: Any) -> PlanResult:
        return run.finish(mean=getattr(state, "mean", None), elites=getattr(state, "elites", None))

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({params})"


class SamplingPlanner(Planner):
    """A planner whose iteration is: propose a population, evaluate it once, update from the costs.

    Its iterations, objective calls included, run under torch.inference_mode (as stable-worldmodel's
    solvers do): the cheapest mode for the many small tensor ops of a rollout objective (~20% faster
    than no_grad on the Pendulum rollout objective of benchmarks/planners_vs_peers.py here). So an
    objective must not keep tensors it creates during a call for later autograd use. Everything a plan
    returns is an ordinary tensor.
    """

    _mode = staticmethod(torch.inference_mode)

    def _elite_count(self, state: Any) -> int:
        """Elites per population (for statistics, and the update of elite-based planners)."""
        return self.n_elites

    def _step(self, run: PlanRun, state: Any, iteration: int) -> Any:
        with torch.inference_mode():
            population = self._propose(run, state, iteration)
            evaluation = run.evaluate(population, self._elite_count(state))
            return self._update(run, state, iteration, population, evaluation)

    @abstractmethod
    def _propose(self, run: PlanRun, state: Any, iteration: int) -> torch.Tensor:
        """Return this iteration's population [B, N, H, A]."""

    @abstractmethod
    def _update(
        self, run: PlanRun, state: Any, iteration: int, population: torch.Tensor, evaluation: Evaluation
    ) -> Any:
        """Refit the state from the evaluated population; return the new state."""
