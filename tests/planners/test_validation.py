"""Bad arguments raise PlannerError with one message saying what was wrong and what was expected."""

from __future__ import annotations

import math

import pytest
import torch

from planners import CEM, CMAES, ICEM, MPPI, GradientPlanner, PlannerError, RandomShooting

B, H, A = 2, 3, 2


def zero_cost(actions):
    return actions.sum(dim=(-1, -2)) * 0.0


def plan(planner=None, objective=zero_cost, **overrides):
    kwargs = dict(batch_size=B, horizon=H, action_dim=A, low=-1.0, high=1.0, seed=0)
    kwargs.update(overrides)
    return (planner or CEM(population=8, n_elites=2, iterations=2)).plan(objective, **kwargs)


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        (dict(batch_size=0), "batch_size must be a positive int; got 0"),
        (dict(horizon=-1), "horizon must be a positive int; got -1"),
        (dict(action_dim=True), "action_dim must be a positive int; got True"),
        (dict(action_dim=2.5), "action_dim must be a positive int; got 2.5"),
        (dict(low=1.0, high=1.0), "low must be < high in every action dimension; got low[0]=1 >= high[0]=1"),
        (dict(low=torch.tensor([0.0, 2.0]), high=1.0), "got low[1]=2 >= high[1]=1"),
        (dict(low=float("nan")), "low contains NaN; expected finite numbers"),
        (dict(high=torch.tensor([1.0, math.inf])), "high contains inf; expected finite bounds"),
        (dict(low=torch.zeros(3)), "low has shape (3,); expected a scalar or [A] = [2]"),
        (dict(init=torch.zeros(B, H + 1, A)), "init has shape (2, 4, 2); expected [B, H, A] = [2, 3, 2]"),
        (dict(init=torch.full((B, H, A), math.nan)), "init contains NaN or inf"),
        (dict(init_elites=torch.zeros(B, H, A)), "init_elites has shape (2, 3, 2); expected [B, K, H, A]"),
        (dict(time_budget=0), "time_budget must be a finite number > 0; got 0"),
        (dict(time_budget=math.nan), "time_budget must be a finite number > 0"),
        (dict(max_calls=0), "max_calls must be a positive int; got 0"),
        (dict(seed=1.5), "seed must be None or an int; got 1.5"),
        (dict(proposals="policy"), "proposals must be None or callable"),
        (dict(callback=3), "callback must be None or callable"),
    ],
)
def test_bad_plan_arguments(overrides, fragment):
    with pytest.raises(PlannerError) as excinfo:
        plan(**overrides)
    assert fragment in str(excinfo.value)
    assert "\n" not in str(excinfo.value)


def test_objective_returning_the_wrong_shape_is_named():
    with pytest.raises(
        PlannerError, match=r"objective returned costs of shape \(2, 8, 1\); expected \[B, N\] = \[2, 8\]"
    ):
        plan(objective=lambda a: a.sum(dim=(-1, -2))[..., None])


def test_objective_returning_a_non_tensor():
    with pytest.raises(PlannerError, match=r"objective returned str; expected a tensor \[B, N\]"):
        plan(objective=lambda a: "cost")


def test_non_callable_objective():
    with pytest.raises(PlannerError, match="objective must be callable"):
        plan(objective=None)


def test_proposals_of_the_wrong_shape():
    def bad_sampler(b, m):
        return torch.zeros(b, m, H + 2, A)

    with pytest.raises(
        PlannerError,
        match=r"proposals returned shape \(2, 1, 5, 2\); expected \[B, M, H, A\] = \[2, 1, 3, 2\]",
    ):
        plan(proposals=bad_sampler)


def test_gradient_planner_needs_a_differentiable_objective():
    def black_box(actions):
        return actions.detach().pow(2).sum(dim=(-1, -2))

    with pytest.raises(PlannerError, match="costs without a gradient"):
        plan(GradientPlanner(n_starts=2, iterations=2), objective=black_box)


@pytest.mark.parametrize(
    "factory, fragment",
    [
        (lambda: CEM(population=1), "CEM.population must be >= 2"),
        (lambda: CEM(population=8, n_elites=9), "CEM.n_elites must be <= population (8); got 9"),
        (lambda: CEM(iterations=0), "CEM.iterations must be a positive int; got 0"),
        (lambda: CEM(momentum=1.0), "CEM.momentum must be a number in [0, 1); got 1.0"),
        (lambda: CEM(init_std=-1), "CEM.init_std must be a finite number > 0; got -1"),
        (lambda: ICEM(beta=-1), "ICEM.beta must be a finite number >= 0; got -1"),
        (lambda: ICEM(population_decay=0.5), "ICEM.population_decay must be >= 1"),
        (lambda: ICEM(keep_fraction=1.5), "ICEM.keep_fraction must be a number in [0, 1]; got 1.5"),
        (lambda: MPPI(temperature=0), "MPPI.temperature must be a finite number > 0; got 0"),
        (lambda: MPPI(smoothing_window=4), "MPPI.smoothing_window must be an odd int >= 3"),
        (lambda: MPPI(population=8, n_elites=16), "MPPI.n_elites must be <= population (8); got 16"),
        (lambda: CMAES(diagonal="yes"), "CMAES.diagonal must be True, False or 'auto'"),
        (lambda: CMAES(population=1), "CMAES.population must be >= 2"),
        (lambda: GradientPlanner(lr=math.inf), "GradientPlanner.lr must be a finite number > 0"),
        (
            lambda: RandomShooting(prior_fraction=1.0),
            "RandomShooting.prior_fraction must be a number in [0, 1)",
        ),
    ],
)
def test_bad_hyper_parameters(factory, fragment):
    with pytest.raises(PlannerError) as excinfo:
        factory()
    assert fragment in str(excinfo.value)


def test_planner_error_is_a_value_error():
    assert issubclass(PlannerError, ValueError)


def test_dtype_and_device_follow_the_bounds():
    result = plan(low=torch.tensor(-1.0, dtype=torch.float64), high=1.0)
    assert result.actions.dtype == torch.float64
    assert result.costs.dtype == torch.float64
    assert result.actions.device.type == "cpu"


def test_init_outside_the_box_is_clamped():
    init = torch.full((B, H, A), 5.0)
    result = plan(CEM(population=8, n_elites=2, iterations=1), init=init)
    assert torch.all(result.actions <= 1.0)
