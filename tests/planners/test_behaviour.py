"""Shared behaviour of every planner: NaN costs, budgets, proposals, determinism, bookkeeping."""

from __future__ import annotations

import time

import pytest
import torch

from planners import CEM, CMAES, ICEM, MPPI, WORST_COST, GradientPlanner, PlannerError, RandomShooting
from tests.planners.conftest import quadratic, quadratic_targets

B, H, A = 3, 4, 2


def plan(planner, objective, **overrides):
    kwargs = dict(batch_size=B, horizon=H, action_dim=A, low=-1.0, high=1.0, seed=0)
    kwargs.update(overrides)
    return planner.plan(objective, **kwargs)


def test_nan_and_inf_costs_count_as_worst(planner):
    targets = quadratic_targets(B, H, A)
    base = quadratic(targets)

    def poisoned(actions):
        costs = base(actions)
        first = actions[..., 0, 0]
        costs = torch.where(first > 0.5, torch.full_like(costs, float("nan")), costs)
        return torch.where(first < -0.5, torch.full_like(costs, float("inf")), costs)

    result = plan(planner, poisoned)
    assert torch.isfinite(result.actions).all() and torch.isfinite(result.costs).all()
    assert torch.all(result.costs < WORST_COST)
    assert torch.all(result.actions[..., 0, 0].abs() <= 0.5)
    assert torch.isfinite(result.history.mean).all()


def test_an_objective_that_is_all_nan_still_returns_a_plan_in_the_box(planner):
    result = plan(planner, lambda a: (a * float("nan")).sum(dim=(-1, -2)))
    assert torch.all(result.costs == WORST_COST)
    assert torch.isfinite(result.actions).all()
    assert torch.all(result.actions.abs() <= 1.0)


def test_max_calls_caps_objective_calls(planner):
    calls = []

    def counted(actions):
        calls.append(actions.shape)
        return actions.pow(2).sum(dim=(-1, -2))

    result = plan(planner, counted, max_calls=2)
    assert len(calls) == result.n_calls == 2
    assert result.stop_reason == "max_calls"
    assert all(shape[0] == B for shape in calls)  # one call covers every problem


def test_equal_seeds_give_equal_plans_and_other_seeds_differ(planner):
    objective = quadratic(quadratic_targets(B, H, A))
    first = plan(planner, objective, seed=11)
    again = plan(planner, objective, seed=11)
    other = plan(planner, objective, seed=12)
    assert torch.equal(first.actions, again.actions) and torch.equal(first.costs, again.costs)
    # Another seed explores differently (the gradient planner's random starts show it in its elites).
    assert not torch.equal(first.elites, other.elites)


def test_a_proposal_at_the_optimum_is_found_in_the_first_iteration(planner):
    targets = quadratic_targets(B, H, A)
    draws = []

    def sampler(batch, m):
        draws.append(m)
        return targets[:, None].expand(batch, m, H, A).clone()

    result = plan(planner, quadratic(targets), proposals=sampler, max_calls=1)
    assert result.n_calls == 1
    assert torch.allclose(result.costs, torch.zeros(B), atol=1e-9)
    assert torch.allclose(result.actions, targets, atol=1e-5)
    assert len(draws) == 1 and draws[0] >= 1


def test_proposals_are_drawn_once_and_kept_in_every_population():
    targets = quadratic_targets(B, H, A)
    draws = []

    def sampler(batch, m):
        draws.append(m)
        return torch.full((batch, m, H, A), 0.25)

    seen = []
    result = plan(
        CEM(population=40, n_elites=4, iterations=4, prior_fraction=0.1),
        quadratic(targets),
        proposals=sampler,
        callback=lambda info: seen.append(
            bool((info.actions == 0.25).all(dim=(-1, -2)).sum(dim=1).ge(4).all())
        ),
    )
    assert draws == [4]
    assert seen == [True] * result.n_calls


def test_time_budget_holds_within_twenty_percent():
    """A slow objective (sleeps 25 ms) and far more iterations than fit: the plan stops near the budget."""

    def slow(actions):
        time.sleep(0.025)
        return actions.pow(2).sum(dim=(-1, -2))

    budget = 1.0  # sleeping costs no CPU; a long budget keeps load spikes small against the 20% margin
    for planner in (CEM(population=16, n_elites=4, iterations=10_000), CMAES(iterations=10_000)):
        result = plan(planner, slow, time_budget=budget)
        assert result.stop_reason == "time_budget"
        assert 0.8 * budget <= result.wall_time <= 1.2 * budget, result.wall_time
        assert result.history.elapsed[-1] <= result.wall_time


def test_a_budget_shorter_than_one_call_still_returns_the_first_result():
    def slow(actions):
        time.sleep(0.05)
        return actions.pow(2).sum(dim=(-1, -2))

    result = plan(MPPI(population=8, iterations=50), slow, time_budget=0.01)
    assert result.n_calls == 1 and result.stop_reason == "time_budget"
    assert torch.isfinite(result.costs).all()


def test_callback_sees_every_iteration_and_can_stop():
    infos = []

    def callback(info):
        infos.append(info)
        return info.iteration == 2

    result = plan(
        ICEM(population=16, n_elites=4, iterations=10),
        quadratic(quadratic_targets(B, H, A)),
        callback=callback,
    )
    assert [i.iteration for i in infos] == [0, 1, 2]
    assert result.stop_reason == "callback" and result.n_calls == 3
    assert infos[0].actions.shape[:2] == (B, 16) and infos[0].costs.shape == (B, 16)
    assert torch.equal(infos[-1].best_costs, result.costs)


def test_populations_are_returned_when_asked():
    result = plan(
        ICEM(population=32, n_elites=4, iterations=3),
        quadratic(quadratic_targets(B, H, A)),
        return_populations=True,
    )
    sizes = [actions.shape[1] for actions, _ in result.populations]
    assert sizes == result.history.n_samples == [32, 25, 20]  # population decay 1.25
    for actions, costs in result.populations:
        assert costs.shape == actions.shape[:2]
    assert (
        plan(CEM(population=8, n_elites=2, iterations=1), quadratic(quadratic_targets(B, H, A))).populations
        is None
    )


def test_history_statistics_are_consistent():
    result = plan(CEM(population=32, n_elites=4, iterations=5), quadratic(quadratic_targets(B, H, A)))
    h = result.history
    assert h.best.shape == h.mean.shape == h.elite.shape == (5, B)
    assert torch.all(h.best <= h.elite + 1e-6) and torch.all(h.elite <= h.mean + 1e-6)
    assert torch.allclose(h.best.min(dim=0).values, result.costs)
    assert h.elapsed == sorted(h.elapsed)
    assert 0 < result.objective_time <= result.wall_time


def test_gradient_planner_survives_nan_gradients():
    targets = quadratic_targets(B, H, A)

    def sqrt_cost(actions):
        # sqrt of a negative number: NaN cost AND NaN gradient for candidates with a[..., 0, 0] < 0
        return torch.sqrt(actions[..., 0, 0]) + quadratic(targets)(actions)

    result = plan(GradientPlanner(n_starts=4, iterations=20), sqrt_cost)
    assert torch.isfinite(result.actions).all() and torch.isfinite(result.costs).all()


def test_gradient_planner_works_under_no_grad():
    targets = quadratic_targets(B, H, A)
    with torch.no_grad():
        result = plan(GradientPlanner(n_starts=2, iterations=60), quadratic(targets))
    assert torch.all(result.costs < 1e-2)


def test_mppi_smoothing_yields_smoother_means():
    rough = torch.tensor([1.0, -1.0] * 4).view(1, 8, 1).expand(B, 8, 1)

    def objective(actions):
        return ((actions - rough[:, None]) ** 2).sum(dim=(-1, -2))

    kwargs = dict(horizon=8, action_dim=1)
    plain = plan(MPPI(population=64, iterations=5, temperature=0.05), objective, **kwargs)
    smooth = plan(
        MPPI(population=64, iterations=5, temperature=0.05, smoothing_window=5), objective, **kwargs
    )

    def roughness(x):
        return x.diff(dim=1).abs().mean()

    assert roughness(smooth.mean) < 0.5 * roughness(plain.mean)


def test_random_shooting_evaluates_the_warm_start():
    init = quadratic_targets(B, H, A)
    result = plan(RandomShooting(population=16), quadratic(init), init=init)
    assert torch.allclose(result.costs, torch.zeros(B), atol=1e-9)


def test_cmaes_diagonal_auto_switch(monkeypatch):
    """The mode reaches pycma: separable above ``diagonal_above`` dimensions (H*A = 8 here), full below or
    when asked."""
    import cma

    seen = []
    real = cma.CMAEvolutionStrategy

    def spy(x0, sigma0, opts):
        seen.append(opts["CMA_diagonal"])
        return real(x0, sigma0, opts)

    monkeypatch.setattr(cma, "CMAEvolutionStrategy", spy)
    objective = quadratic(quadratic_targets(B, H, A))
    for planner, expected in ((CMAES(iterations=3, diagonal_above=4), True), (CMAES(iterations=3, diagonal_above=64), False),
                              (CMAES(iterations=3, diagonal=False, diagonal_above=4), False), (CMAES(iterations=3, diagonal=True), True)):
        seen.clear()
        result = plan(planner, objective)
        assert seen == [expected] * B
        assert result.n_calls == 3 and torch.isfinite(result.costs).all()


@pytest.mark.parametrize(
    "planner",
    [
        CEM(population=16, n_elites=4, iterations=1),
        ICEM(population=16, n_elites=4, iterations=1),
        MPPI(population=16, iterations=1),
        CMAES(population=8, iterations=1),
        GradientPlanner(n_starts=8, iterations=1),
        RandomShooting(population=16),
    ],
    ids=lambda p: type(p).__name__,
)
def test_init_elites_are_evaluated_in_the_first_iteration(planner):
    targets = quadratic_targets(B, H, A)
    carried = torch.cat([targets[:, None], torch.zeros(B, 4, H, A)], dim=1)  # best first
    result = plan(planner, quadratic(targets), init_elites=carried)
    assert torch.allclose(result.costs, torch.zeros(B), atol=1e-9)


def test_cmaes_handles_a_one_dimensional_problem():
    """pycma refuses 1-D problems; the planner pads a dummy coordinate the objective never sees."""
    def objective(actions):
        return ((actions - 0.3) ** 2).sum(dim=(-1, -2))

    result = plan(CMAES(iterations=40), objective, batch_size=2, horizon=1, action_dim=1)
    assert result.actions.shape == (2, 1, 1)
    assert torch.allclose(result.actions, torch.full((2, 1, 1), 0.3), atol=0.02)


def test_gradient_planner_refuses_inference_mode():
    with torch.inference_mode(), pytest.raises(PlannerError, match="inside torch.inference_mode"):
        plan(GradientPlanner(n_starts=2, iterations=2), lambda a: a.pow(2).sum(dim=(-1, -2)))


def test_cmaes_stops_when_pycma_converges():
    result = plan(CMAES(iterations=500), lambda a: a.sum(dim=(-1, -2)) * 0 + 1.0)  # flat: nothing to learn
    assert result.stop_reason == "converged" and result.n_calls < 500


def test_returned_tensors_are_ordinary_and_editable(planner):
    """Sampling planners run in inference mode; what they return must still be usable with autograd."""
    result = plan(planner, quadratic(quadratic_targets(B, H, A)))
    for tensor in (result.actions, result.costs, result.mean, result.elites, result.history.best):
        if tensor is not None:
            assert not tensor.is_inference()
    result.actions.add_(0.0)  # in-place edits work
    init = result.actions.clone().requires_grad_(True)
    (init**2).sum().backward()  # and they can feed a graph
