"""The state of one `Planner.plan` call: the validated problem, the seeded generator, the budgets, every
objective call with its bookkeeping, and the best candidate so far. Planners sample through it and
evaluate through `PlanRun.evaluate`, so each planner file holds only its update rule and all planners
share the same guarantees (bounds hold, equal seeds give equal plans, budgets are respected, one
objective call per iteration covers all B problems)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch

from planners.action_box import ActionBox, device_and_dtype
from planners.contract import IterationInfo, Objective, PlanHistory, PlanResult, ProposalSampler
from planners.errors import PlannerError
from planners.population import Evaluation, gather_candidates, select_elites
from planners.validation import (
    callable_argument,
    checked_costs,
    optional_seed,
    positive_float,
    positive_int,
)


class PlanRun:
    """One plan() call. Planners read `B, H, A`, `low, high, center, half_range` ([A]), `device, dtype`,
    `generator`, `init` and `init_elites`; sample with `randn`, `uniform`, `spread`, `initial_mean`,
    `draw_proposals`; project with `clamp`; and call `evaluate` exactly once per iteration."""

    def __init__(
        self, objective: Objective, batch_size: int, horizon: int, action_dim: int, low: Any, high: Any, *,
        init: Any, init_elites: Any, proposals: ProposalSampler | None, seed: int | None,
        time_budget: float | None, max_calls: int | None, callback: Callable[[IterationInfo], Any] | None,
        return_populations: bool,
    ) -> None:
        self.start = time.perf_counter()
        self.objective = callable_argument("objective", objective, " actions [B, N, H, A] -> costs [B, N]")
        self.proposal_sampler = callable_argument("proposals", proposals, " (B, M) -> [B, M, H, A]", optional=True)
        self.callback = callable_argument("callback", callback, "(IterationInfo)", optional=True)
        self.B = positive_int("batch_size", batch_size)
        self.H = positive_int("horizon", horizon)
        self.A = positive_int("action_dim", action_dim)
        self.time_budget = None if time_budget is None else positive_float("time_budget", time_budget)
        self.max_calls = None if max_calls is None else positive_int("max_calls", max_calls)
        seed = optional_seed(seed)  # checked before the bounds, as every scalar argument

        self.device, self.dtype = device_and_dtype(init, low, high)
        self.box = ActionBox(low, high, self.H, self.A, self.device, self.dtype)
        # the box's tensors [A] and its projection, under the names planners use: run.low, run.clamp(...)
        box = self.box
        self.low, self.high, self.center, self.half_range = box.low, box.high, box.center, box.half_range
        self.clamp = box.clamp
        self.init = None if init is None else self._check_actions("init", init, leading=(self.B,))
        self.init_elites = None
        if init_elites is not None:
            self.init_elites = self._check_actions("init_elites", init_elites, leading=(self.B, None))

        self.generator = torch.Generator(device=self.device)
        if seed is None:
            self.generator.seed()
        else:
            self.generator.manual_seed(seed)

        self.n_calls = 0
        self.n_samples = 0
        self.objective_time = 0.0
        self._durations: list[float] = []  # seconds per iteration, for the time-budget forecast
        self._last_mark = self.start
        self.stop_reason = "iterations"
        self._stop_requested = False
        self._sync = self.device.type == "cuda" and self.time_budget is not None
        self._batch_index = torch.arange(self.B, device=self.device)
        # Per iteration: the best cost [B] and its candidate [B, H, A], all costs [B, N] and the elite
        # costs [B, K]. Reduced once in finish() rather than every iteration: fewer small tensor ops in
        # the loop (they dominate the planner's own time at populations of a few hundred).
        self._best: list[torch.Tensor] = []
        self._winners: list[torch.Tensor] = []
        self._costs: list[torch.Tensor] = []
        self._elite: list[torch.Tensor] = []
        self._n_samples: list[int] = []
        self._elapsed: list[float] = []
        self.populations: list[tuple[torch.Tensor, torch.Tensor]] | None = [] if return_populations else None

    # --- checks -----------------------------------------------------------------------------

    def _check_actions(self, name: str, value: Any, *, leading: tuple) -> torch.Tensor:
        """Validate a tensor [*leading, H, A] (None in leading = any size >= 1) and clamp it to the box."""
        try:
            tensor = torch.as_tensor(value, device=self.device).to(self.dtype)
        except (TypeError, ValueError, RuntimeError):
            raise PlannerError(f"{name} must be a tensor; got {type(value).__name__}") from None
        want = (*leading, self.H, self.A)
        shape = tuple(tensor.shape)
        ok = len(shape) == len(want) and all(w is None and s >= 1 or w == s for s, w in zip(shape, want))
        if not ok:
            names = {"init": "[B, H, A]", "init_elites": "[B, K, H, A]", "proposals": "[B, M, H, A]"}[name]
            expected = ", ".join("K" if w is None else str(w) for w in want)
            raise PlannerError(f"{name} has shape {shape}; expected {names} = [{expected}]")
        if not torch.isfinite(tensor).all():
            raise PlannerError(f"{name} contains NaN or inf; expected finite actions")
        return self.clamp(tensor)

    # --- sampling helpers -----------------------------------------------------------------------

    def spread(self, fraction: float) -> torch.Tensor:
        """[B, H, A] contiguous standard deviations of `fraction` half-ranges (contiguous: sampling with
        a stride-0 expanded std is ~8x slower)."""
        return (fraction * self.half_range).expand(self.B, self.H, self.A).contiguous()

    def randn(self, *shape: int) -> torch.Tensor:
        return torch.randn(shape, generator=self.generator, device=self.device, dtype=self.dtype)

    def uniform(self, n: int) -> torch.Tensor:
        """[B, n, H, A] uniform in the box."""
        u = torch.rand(
            (self.B, n, self.H, self.A), generator=self.generator, device=self.device, dtype=self.dtype
        )
        return torch.addcmul(self.box.low_grid, u, self.box.range_grid)

    def initial_mean(self) -> torch.Tensor:
        """[B, H, A] the warm start if given, else the centre of the box."""
        return (
            self.init.clone() if self.init is not None else self.center.expand(self.B, self.H, self.A).clone()
        )

    def draw_proposals(self, population: int, fraction: float, reserved: int) -> torch.Tensor | None:
        """[B, M, H, A] drawn ONCE per plan from the proposal sampler (kept across iterations, as
        TD-MPC2 keeps its policy samples). M = round(fraction * population), at least 1 when a sampler
        is given, at most population - reserved - 1 so the planner keeps one sample of its own."""
        if self.proposal_sampler is None:
            return None
        m = max(1, round(fraction * population))
        m = min(m, population - reserved - 1)
        if m < 1:
            return None
        with torch.no_grad():
            drawn = self.proposal_sampler(self.B, m)
        if not isinstance(drawn, torch.Tensor):
            raise PlannerError(
                f"proposals returned {type(drawn).__name__}; expected a tensor [B, M, H, A] = [{self.B}, {m}, {self.H}, {self.A}]"
            )
        if tuple(drawn.shape) != (self.B, m, self.H, self.A):
            raise PlannerError(
                f"proposals returned shape {tuple(drawn.shape)}; expected [B, M, H, A] = [{self.B}, {m}, {self.H}, {self.A}]"
            )
        return self._check_actions("proposals", drawn.detach(), leading=(self.B, m))

    # --- evaluation and budgets ------------------------------------------------------------------

    def evaluate(self, actions: torch.Tensor, n_elites: int, *, grad: bool = False) -> Evaluation:
        """Call the objective once on `actions [B, N, H, A]` (projected onto the box first), turn NaN/inf
        costs into WORST_COST, keep this iteration's best candidate and statistics, run the callback."""
        actions = self.clamp(actions)
        n = actions.shape[1]
        t0 = time.perf_counter()
        if grad or not torch.is_grad_enabled():  # sampling planners already run in inference mode
            costs = self.objective(actions)
        else:
            with torch.no_grad():
                costs = self.objective(actions)
        if self._sync:
            torch.cuda.synchronize(self.device)
        self.objective_time += time.perf_counter() - t0
        self.n_calls += 1
        self.n_samples += n
        costs = checked_costs(costs, self.B, n, self.device, self.dtype)

        flat = costs.detach()
        elite_costs, elite_index, best_cost, best_index = select_elites(flat, n_elites)
        self._best.append(best_cost)
        self._winners.append(gather_candidates(actions.detach(), best_index[:, None])[:, 0])
        self._costs.append(flat)
        self._elite.append(elite_costs)
        self._n_samples.append(n)
        now = time.perf_counter()
        self._durations.append(now - self._last_mark)
        self._last_mark = now
        self._elapsed.append(now - self.start)
        if self.populations is not None:
            self.populations.append((actions.detach(), flat))
        if self.callback is not None:
            best_costs, best_actions = self.best_so_far()
            info = IterationInfo(
                self.n_calls - 1, actions.detach(), flat, best_costs, best_actions, now - self.start
            )
            if self.callback(info) is True:
                self._stop_requested = True
        return Evaluation(actions, costs, elite_costs, elite_index)

    def best_so_far(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(costs [B], actions [B, H, A]) of the best candidate evaluated so far, per problem."""
        best = torch.stack(self._best)  # [I, B]
        costs, iteration = best.min(dim=0)
        actions = torch.stack(self._winners)[iteration, self._batch_index]
        return costs, actions

    def should_stop(self) -> bool:
        """True when the next iteration would break a budget. The time budget is kept by predicting
        the next iteration to last as long as the slowest of the last three, so a plan ends at or just
        under it."""
        if self._stop_requested:
            self.stop_reason = "callback"
            return True
        if self.max_calls is not None and self.n_calls >= self.max_calls:
            self.stop_reason = "max_calls"
            return True
        if self.time_budget is not None:
            elapsed = time.perf_counter() - self.start
            # the slowest of the last three iterations: robust to jitter on a loaded machine
            if elapsed + max(self._durations[-3:]) > self.time_budget:
                self.stop_reason = "time_budget"
                return True
        return False

    def finish(self, *, mean: torch.Tensor | None = None, elites: torch.Tensor | None = None) -> PlanResult:
        best_costs, best_actions = self.best_so_far()
        history = PlanHistory(
            best=torch.stack(self._best),
            mean=_row_means(self._costs),
            elite=_row_means(self._elite),
            n_samples=self._n_samples,
            elapsed=self._elapsed,
        )
        return PlanResult(
            actions=best_actions,
            costs=best_costs,
            n_calls=self.n_calls,
            wall_time=time.perf_counter() - self.start,
            history=history,
            n_samples=self.n_samples,
            objective_time=self.objective_time,
            stop_reason=self.stop_reason,
            # clone/clamp outside inference mode: the caller gets ordinary tensors it may edit in place
            mean=None if mean is None else self.clamp(mean.detach()),
            elites=None if elites is None else elites.detach().clone(),
            populations=None
            if self.populations is None
            else [(a.clone(), c.clone()) for a, c in self.populations],
        )


def _row_means(rows: list[torch.Tensor]) -> torch.Tensor:
    """[I, B] the mean of each iteration's row [B, n_i]: one stacked mean when every n_i agrees."""
    if len({row.shape[1] for row in rows}) == 1:
        return torch.stack(rows).mean(dim=-1)
    return torch.stack([row.mean(dim=1) for row in rows])
