"""Receding-horizon control: plan, execute the first actions, shift the plan, replan.

The loop runs for a fixed number of environment steps and never looks at ground-truth success:
the caller judges success after the loop (peers that stop early on true success inflate their
figures). It also keeps no growing history of its own besides what it returns.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from planners.base import Planner
from planners.contract import Objective, PlanResult, ProposalSampler
from planners.errors import PlannerError
from planners.validation import callable_argument, non_negative_int, optional_seed, positive_int

FILL_MODES = ("last", "zeros", "mean")


def _fill_mode(caller: str, fill: Any) -> str:
    if fill not in FILL_MODES:
        raise PlannerError(f"{caller} fill={fill!r}; expected one of {FILL_MODES}")
    return fill


def shift_plan(actions: torch.Tensor, n_executed: int, fill: str = "last") -> torch.Tensor:
    """Drop the `n_executed` first steps of `actions [..., H, A]` and pad the end back to H.

    fill: "last" repeats the final action (a plan that ends holding still keeps holding), "zeros" pads
    with 0 (TD-MPC2's choice, for boxes centred on 0), "mean" pads with the plan's mean action.
    Works for plans `[B, H, A]` and elite sets `[B, K, H, A]` alike.
    """
    if not isinstance(actions, torch.Tensor) or actions.dim() < 2:
        shape = tuple(actions.shape) if isinstance(actions, torch.Tensor) else type(actions).__name__
        raise PlannerError(f"shift_plan got actions of shape {shape}; expected a tensor [..., H, A]")
    _fill_mode("shift_plan", fill)
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


@dataclass
class MPCResult:
    """What the loop did: the executed actions and each replan's result and time."""

    actions: torch.Tensor  # [B, T, A] every executed action, T = budget_steps
    plans: list[PlanResult]  # one per replan
    plan_seconds: list[float]  # wall time of each replan (plan() only, not step())

    @property
    def n_replans(self) -> int:
        return len(self.plans)


def run_mpc(
    planner: Planner,
    make_objective: Callable[[], Objective],
    step: Callable[[torch.Tensor], Any],
    *,
    batch_size: int,
    horizon: int,
    action_dim: int,
    low: Any,
    high: Any,
    n_execute: int,
    budget_steps: int,
    proposals_fn: Callable[[], ProposalSampler | None] | None = None,
    seed: int | None = None,
    on_replan: Callable[[int, PlanResult], Any] | None = None,
    fill: str = "last",
    init: Any = None,
    **plan_kwargs: Any,
) -> MPCResult:
    """Plan, execute `n_execute` actions, shift, replan, until `budget_steps` actions are executed.

    make_objective(): called before each replan; the caller closes over the current observation.
    step(actions [B, n, A]): the user's executor (n = n_execute, or fewer for the last chunk); its
        return value is ignored. Problems that finished early are the executor's business.
    proposals_fn(): called before each replan; returns the proposal sampler for the current
        observation (or None).
    seed: replan i uses seed + i (distinct noise per replan, reproducible loop); None = unseeded.
    on_replan(i, result): called after each replan, before executing (logging, visualisation).
    fill: how shifted plans are padded at the end, see `shift_plan`.
    init [B, H, A]: the first plan's warm start (e.g. "hold still"); None = the planner's own (the box
        centre). Later plans start from the previous plan, shifted.
    plan_kwargs: passed to every plan() call (time_budget, max_calls, callback, return_populations).
    Warm starts: each replan gets init = the previous `PlanResult.warm_start` shifted by the executed
    steps, and init_elites = its shifted elites (iCEM keeps a fraction of them).
    """
    if not isinstance(planner, Planner):
        raise PlannerError(
            f"planner must be a planners.Planner (CEM, ICEM, MPPI, ...); got {type(planner).__name__}"
        )
    callable_argument("make_objective", make_objective)
    callable_argument("step", step)
    callable_argument("proposals_fn", proposals_fn, "() -> proposal sampler", optional=True)
    horizon = positive_int("horizon", horizon)
    n_execute = positive_int("n_execute", n_execute)
    budget_steps = positive_int("budget_steps", budget_steps)
    if n_execute > horizon:
        raise PlannerError(f"n_execute must be <= horizon ({horizon}); got {n_execute}")
    _fill_mode("run_mpc", fill)
    optional_seed(seed)
    for reserved in ("init_elites", "proposals", "seed"):
        if reserved in plan_kwargs:
            raise PlannerError(f"run_mpc sets {reserved} itself; remove it from the keyword arguments")

    problem = dict(batch_size=batch_size, horizon=horizon, action_dim=action_dim, low=low, high=high)
    executed: list[torch.Tensor] = []
    plans: list[PlanResult] = []
    seconds: list[float] = []
    init_elites = None
    done = 0
    while done < budget_steps:
        i = len(plans)
        objective = make_objective()
        proposals = proposals_fn() if proposals_fn is not None else None
        t0 = time.perf_counter()
        result = planner.plan(
            objective, **problem, init=init, init_elites=init_elites, proposals=proposals,
            seed=None if seed is None else seed + i, **plan_kwargs,
        )
        seconds.append(time.perf_counter() - t0)
        plans.append(result)
        if on_replan is not None:
            on_replan(i, result)
        n = min(n_execute, budget_steps - done)
        chunk = result.actions[:, :n].detach()
        step(chunk)
        executed.append(chunk)
        done += n
        init = shift_plan(result.warm_start.detach(), n, fill)
        init_elites = None if result.elites is None else shift_plan(result.elites.detach(), n, fill)
    return MPCResult(torch.cat(executed, dim=1), plans, seconds)
