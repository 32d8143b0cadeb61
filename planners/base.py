"""Shared machinery of every planner: argument checks, the action box, budgets, proposal priors,
NaN handling and bookkeeping. A planner file then holds only its update rule (`_start`, `_propose`,
`_update`), and every planner gets the same guarantees: bounds hold, equal seeds give equal plans,
budgets are respected, one objective call per iteration covers all B problems.

Conventions shared by all planners:
- an objective maps `actions [B, N, H, A]` to `costs [B, N]` (lower is better); it may run a neural
  world model on a GPU, so everything here stays in torch on the device/dtype of `init`/`low`/`high`;
- spreads (standard deviations) are given in units of the half-range `(high - low) / 2`, so one
  configuration transfers between action boxes such as [-1, 1] and [0, 512];
- the returned plan is always the best candidate actually evaluated, with the cost it was given,
  so `PlanResult.costs` is never an extrapolation.
"""

from __future__ import annotations

import math
import operator
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from planners.errors import PlannerError

# Non-finite costs become this value. Finite (not inf) so that softmax weights, means and momentum
# updates stay finite; far above any cost a real objective returns, so such candidates rank last.
WORST_COST = 1e30

Objective = Callable[[torch.Tensor], torch.Tensor]
ProposalSampler = Callable[[int, int], torch.Tensor]

FILL_MODES = ("last", "zeros", "mean")


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


def gather_candidates(actions: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """actions [B, N, H, A], index [B, K] -> [B, K, H, A] (one gather, no per-problem indexing)."""
    b, _, h, a = actions.shape
    return actions.gather(1, index[:, :, None, None].expand(b, index.shape[1], h, a))


@dataclass
class Evaluation:
    """One evaluated population, with its elites already selected."""

    actions: torch.Tensor  # [B, N, H, A] the population as evaluated (projected onto the box)
    costs: torch.Tensor  # [B, N]; carries gradients when the call asked for them
    elite_costs: torch.Tensor  # [B, K] ascending; when K == N: all costs, unsorted (no sort paid)
    elite_index: torch.Tensor | None  # [B, K] indices into N; None when K == N

    def elite_actions(self, k: int | None = None) -> torch.Tensor:
        """[B, K, H, A] the elites, best first (only the first k if given)."""
        index = self.elite_index
        if index is None:  # every candidate is an elite: sort now, only when someone asks
            index = torch.argsort(self.elite_costs, dim=1)
        return gather_candidates(self.actions, index if k is None else index[:, :k])


def shift_plan(actions: torch.Tensor, n_executed: int, fill: str = "last") -> torch.Tensor:
    """Drop the `n_executed` first steps of `actions [..., H, A]` and pad the end back to H.

    fill: "last" repeats the final action (a plan that ends holding still keeps holding), "zeros" pads
    with 0 (TD-MPC2's choice, for boxes centred on 0), "mean" pads with the plan's mean action.
    Works for plans `[B, H, A]` and elite sets `[B, K, H, A]` alike.
    """
    if not isinstance(actions, torch.Tensor) or actions.dim() < 2:
        shape = tuple(actions.shape) if isinstance(actions, torch.Tensor) else type(actions).__name__
        raise PlannerError(f"shift_plan got actions of shape {shape}; expected a tensor [..., H, A]")
    if fill not in FILL_MODES:
        raise PlannerError(f"shift_plan fill={fill!r}; expected one of {FILL_MODES}")
    n = non_negative_int("n_executed", n_executed)
    horizon = actions.shape[-2]
    if n == 0:
        return actions.clone()
    kept = actions[..., min(n, horizon) :, :]
    if fill == "last":
        pad_row = actions[..., -1:, :]
    elif fill == "zeros":
        pad_row = torch.zeros_like(actions[..., -1:, :])
    else:
        pad_row = actions.mean(dim=-2, keepdim=True)
    n_pad = horizon - kept.shape[-2]
    pad = pad_row.expand(*pad_row.shape[:-2], n_pad, pad_row.shape[-1])
    return torch.cat([kept, pad], dim=-2)


# ----------------------------------------------------------------------------------------------
# argument checks (each raises PlannerError with what was wrong and what was expected)


def positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool):
        raise PlannerError(f"{name} must be a positive int; got {value!r}")
    try:
        as_int = operator.index(value)
    except TypeError:
        raise PlannerError(f"{name} must be a positive int; got {value!r}") from None
    if as_int < 1:
        raise PlannerError(f"{name} must be a positive int; got {as_int}")
    return as_int


def non_negative_int(name: str, value: Any) -> int:
    if isinstance(value, bool):
        raise PlannerError(f"{name} must be an int >= 0; got {value!r}")
    try:
        as_int = operator.index(value)
    except TypeError:
        raise PlannerError(f"{name} must be an int >= 0; got {value!r}") from None
    if as_int < 0:
        raise PlannerError(f"{name} must be an int >= 0; got {as_int}")
    return as_int


def positive_float(name: str, value: Any) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        raise PlannerError(f"{name} must be a finite number > 0; got {value!r}")
    return float(value)


def fraction(name: str, value: Any, *, upper_open: bool = True) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (value >= 1 if upper_open else value > 1):
        expected = "in [0, 1)" if upper_open else "in [0, 1]"
        raise PlannerError(f"{name} must be a number {expected}; got {value!r}")
    return float(value)


def _pick_device_dtype(*candidates: Any) -> tuple[torch.device, torch.dtype]:
    """The first tensor among init/low/high decides where and in which float type we work."""
    for value in candidates:
        if isinstance(value, torch.Tensor):
            dtype = value.dtype if value.is_floating_point() else torch.float32
            return value.device, dtype
    return torch.device("cpu"), torch.float32


def _bound(name: str, value: Any, action_dim: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        # fast path (the common case): no tensor ops to validate a plain number
        if math.isnan(value):
            raise PlannerError(f"{name} contains NaN; expected finite numbers")
        if math.isinf(value):
            raise PlannerError(
                f"{name} contains inf; expected finite bounds (planners sample inside the box)"
            )
        return torch.full((action_dim,), float(value), device=device, dtype=dtype)
    try:
        tensor = torch.as_tensor(value, device=device).to(dtype)
    except (TypeError, ValueError, RuntimeError):
        raise PlannerError(f"{name} must be a number or a tensor [A]; got {type(value).__name__}") from None
    if tensor.dim() == 0:
        tensor = tensor.expand(action_dim)
    if tuple(tensor.shape) != (action_dim,):
        raise PlannerError(
            f"{name} has shape {tuple(tensor.shape)}; expected a scalar or [A] = [{action_dim}]"
        )
    if not torch.isfinite(tensor).all():
        if torch.isnan(tensor).any():
            raise PlannerError(f"{name} contains NaN; expected finite numbers")
        raise PlannerError(f"{name} contains inf; expected finite bounds (planners sample inside the box)")
    return tensor.contiguous()


# ----------------------------------------------------------------------------------------------
# one plan() call


class PlanRun:
    """The state of one plan() call: the validated problem, the budgets, the best candidate so far and
    the per-iteration statistics. Planners sample through it and evaluate through `evaluate`."""

    def __init__(
        self,
        objective: Objective,
        *,
        batch_size: int,
        horizon: int,
        action_dim: int,
        low: Any,
        high: Any,
        init: Any,
        init_elites: Any,
        proposals: ProposalSampler | None,
        seed: int | None,
        time_budget: float | None,
        max_calls: int | None,
        callback: Callable[[IterationInfo], Any] | None,
        return_populations: bool,
    ) -> None:
        self.start = time.perf_counter()
        if not callable(objective):
            raise PlannerError(
                f"objective must be callable actions [B, N, H, A] -> costs [B, N]; got {type(objective).__name__}"
            )
        if proposals is not None and not callable(proposals):
            raise PlannerError(
                f"proposals must be None or callable (B, M) -> [B, M, H, A]; got {type(proposals).__name__}"
            )
        if callback is not None and not callable(callback):
            raise PlannerError(
                f"callback must be None or callable(IterationInfo); got {type(callback).__name__}"
            )
        self.objective = objective
        self.proposal_sampler = proposals
        self.callback = callback
        self.B = positive_int("batch_size", batch_size)
        self.H = positive_int("horizon", horizon)
        self.A = positive_int("action_dim", action_dim)
        self.time_budget = None if time_budget is None else positive_float("time_budget", time_budget)
        self.max_calls = None if max_calls is None else positive_int("max_calls", max_calls)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise PlannerError(f"seed must be None or an int; got {seed!r}")

        self.device, self.dtype = _pick_device_dtype(init, low, high)
        self.low = _bound("low", low, self.A, self.device, self.dtype)
        self.high = _bound("high", high, self.A, self.device, self.dtype)
        if (self.low >= self.high).any():
            i = int((self.low >= self.high).nonzero()[0, 0])
            raise PlannerError(
                f"low must be < high in every action dimension; got low[{i}]={float(self.low[i]):g} >= "
                f"high[{i}]={float(self.high[i]):g}"
            )
        self.center = (self.low + self.high) / 2  # [A]
        self.half_range = (self.high - self.low) / 2  # [A]
        # Clamping [B, N, H, A] against [A]-shaped bounds broadcasts over an inner loop of length A,
        # which is 7-9x slower here than clamping against python scalars (equal bounds in every
        # dimension, the common case) or against contiguous [H, A] bounds.
        uniform = bool((self.low == self.low[0]).all() and (self.high == self.high[0]).all())
        if uniform:
            self._clamp_low, self._clamp_high = float(self.low[0]), float(self.high[0])
        else:
            self._clamp_low = self.low.expand(self.H, self.A).contiguous()
            self._clamp_high = self.high.expand(self.H, self.A).contiguous()
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

    def clamp(self, actions: torch.Tensor) -> torch.Tensor:
        """Project actions [..., H, A] onto the box."""
        return torch.clamp(actions, self._clamp_low, self._clamp_high)

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
        low = self.low.expand(self.H, self.A).contiguous()  # contiguous [H, A]: see the note on clamping
        return torch.addcmul(low, u, (self.high - self.low).expand(self.H, self.A).contiguous())

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
        if not isinstance(costs, torch.Tensor):
            try:
                costs = torch.as_tensor(costs)
            except (TypeError, ValueError, RuntimeError):
                raise PlannerError(
                    f"objective returned {type(costs).__name__}; expected a tensor [B, N] = [{self.B}, {n}]"
                ) from None
        if tuple(costs.shape) != (self.B, n):
            raise PlannerError(
                f"objective returned costs of shape {tuple(costs.shape)}; expected [B, N] = [{self.B}, {n}] "
                "(one cost per candidate)"
            )
        if costs.dtype != self.dtype or costs.device != self.device:
            costs = costs.to(self.device, self.dtype)
        costs = torch.nan_to_num(costs, nan=WORST_COST, posinf=WORST_COST, neginf=WORST_COST)

        flat = costs.detach()
        if n_elites < n:
            elite_costs, elite_index = torch.topk(flat, n_elites, dim=1, largest=False, sorted=True)
            best_cost, best_index = elite_costs[:, 0], elite_index[:, 0]
        else:  # every candidate is an elite (MPPI's default): a min is enough, no sort
            elite_costs, elite_index = flat, None
            best_cost, best_index = flat.min(dim=1)
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
        same_n = len(set(self._n_samples)) == 1
        same_k = len({e.shape[1] for e in self._elite}) == 1
        history = PlanHistory(
            best=torch.stack(self._best),
            mean=torch.stack(self._costs).mean(dim=-1)
            if same_n
            else torch.stack([c.mean(dim=1) for c in self._costs]),
            elite=torch.stack(self._elite).mean(dim=-1)
            if same_k
            else torch.stack([e.mean(dim=1) for e in self._elite]),
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


# ----------------------------------------------------------------------------------------------
# the planner interface


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
            objective,
            batch_size=batch_size,
            horizon=horizon,
            action_dim=action_dim,
            low=low,
            high=high,
            init=init,
            init_elites=init_elites,
            proposals=proposals,
            seed=seed,
            time_budget=time_budget,
            max_calls=max_calls,
            callback=callback,
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
    than no_grad on the Pendulum rollout objective of benchmarks/planners_vs_peers.py here). So an objective must not keep tensors it creates
    during a call for later autograd use. Everything a plan returns is an ordinary tensor.
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


def check_population(name: str, population: int, n_elites: int) -> tuple[int, int]:
    """Validate a population size and its elite count (shared by the sampling planners)."""
    population = positive_int(f"{name}.population", population)
    n_elites = positive_int(f"{name}.n_elites", n_elites)
    if population < 2:
        raise PlannerError(f"{name}.population must be >= 2; got {population}")
    if n_elites > population:
        raise PlannerError(f"{name}.n_elites must be <= population ({population}); got {n_elites}")
    return population, n_elites
