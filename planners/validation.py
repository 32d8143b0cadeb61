"""Argument checks shared by the planners and the MPC loop. Each returns the clean value or raises
PlannerError saying what was wrong and what was expected, so a bad hyper-parameter fails where it is
written rather than deep inside a plan."""

from __future__ import annotations

import math
import operator
from typing import Any

import torch

from planners.contract import WORST_COST
from planners.errors import PlannerError


def _int_at_least(name: str, value: Any, minimum: int, expected: str) -> int:
    if isinstance(value, bool):
        raise PlannerError(f"{name} must be {expected}; got {value!r}")
    try:
        as_int = operator.index(value)
    except TypeError:
        raise PlannerError(f"{name} must be {expected}; got {value!r}") from None
    if as_int < minimum:
        raise PlannerError(f"{name} must be {expected}; got {as_int}")
    return as_int


def positive_int(name: str, value: Any) -> int:
    return _int_at_least(name, value, 1, "a positive int")


def non_negative_int(name: str, value: Any) -> int:
    return _int_at_least(name, value, 0, "an int >= 0")


def _finite_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def positive_float(name: str, value: Any) -> float:
    if not _finite_number(value) or value <= 0:
        raise PlannerError(f"{name} must be a finite number > 0; got {value!r}")
    return float(value)


def non_negative_float(name: str, value: Any) -> float:
    if not _finite_number(value) or value < 0:
        raise PlannerError(f"{name} must be a finite number >= 0; got {value!r}")
    return float(value)


def fraction(name: str, value: Any, *, upper_open: bool = True) -> float:
    if not _finite_number(value) or value < 0 or (value >= 1 if upper_open else value > 1):
        expected = "in [0, 1)" if upper_open else "in [0, 1]"
        raise PlannerError(f"{name} must be a number {expected}; got {value!r}")
    return float(value)


def population_size(planner: str, population: Any) -> int:
    """A population needs two candidates at least: the planner's mean or incumbent and one sample."""
    population = positive_int(f"{planner}.population", population)
    if population < 2:
        raise PlannerError(f"{planner}.population must be >= 2; got {population}")
    return population


def elite_count(planner: str, n_elites: Any, population: int) -> int:
    n_elites = positive_int(f"{planner}.n_elites", n_elites)
    if n_elites > population:
        raise PlannerError(f"{planner}.n_elites must be <= population ({population}); got {n_elites}")
    return n_elites


def check_population(planner: str, population: Any, n_elites: Any) -> tuple[int, int]:
    """Validate a population size and its elite count (shared by the elite-based planners)."""
    population = population_size(planner, population)
    return population, elite_count(planner, n_elites, population)


def optional_seed(seed: Any) -> int | None:
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise PlannerError(f"seed must be None or an int; got {seed!r}")
    return seed


def callable_argument(name: str, value: Any, signature: str = "", *, optional: bool = False) -> Any:
    """`value` if it is callable (or None where `optional`); the message shows the expected signature."""
    if (value is None and optional) or callable(value):
        return value
    allowed = "None or callable" if optional else "callable"
    raise PlannerError(f"{name} must be {allowed}{signature}; got {type(value).__name__}")


def checked_costs(costs: Any, batch: int, n: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """The objective's answer as a [B, N] tensor on the planners' device and dtype, non-finite costs
    replaced by WORST_COST (a NaN must rank last, not poison means and softmax weights)."""
    if not isinstance(costs, torch.Tensor):
        try:
            costs = torch.as_tensor(costs)
        except (TypeError, ValueError, RuntimeError):
            raise PlannerError(
                f"objective returned {type(costs).__name__}; expected a tensor [B, N] = [{batch}, {n}]"
            ) from None
    if tuple(costs.shape) != (batch, n):
        raise PlannerError(
            f"objective returned costs of shape {tuple(costs.shape)}; expected [B, N] = [{batch}, {n}] "
            "(one cost per candidate)"
        )
    if costs.dtype != dtype or costs.device != device:
        costs = costs.to(device, dtype)
    return torch.nan_to_num(costs, nan=WORST_COST, posinf=WORST_COST, neginf=WORST_COST)
