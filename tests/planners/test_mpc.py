"""The MPC loop on a batched point mass with its true dynamics, and warm-start shifting."""

from __future__ import annotations

import pytest
import torch

from planners import CEM, ICEM, MPPI, PlannerError, run_mpc, shift_plan

DT = 0.1
BOX = dict(action_dim=2, low=-1.0, high=1.0)  # the point mass's acceleration box


def rollout_cost(state: torch.Tensor, goal: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """Point mass (x, y, vx, vy) pushed by accelerations: state [B, 4], goal [B, 2], actions [B, N, H, 2]
    -> [B, N] summed squared distance to the goal along the way, plus the final speed."""
    pos = state[:, None, :2].expand(-1, actions.shape[1], -1)
    vel = state[:, None, 2:].expand(-1, actions.shape[1], -1)
    cost = torch.zeros(actions.shape[:2])
    for t in range(actions.shape[2]):
        vel = vel + DT * actions[:, :, t]
        pos = pos + DT * vel
        cost = cost + ((pos - goal[:, None]) ** 2).sum(-1)
    return cost + (vel**2).sum(-1)


class PointMass:
    """B point masses; step() is the true simulator the MPC loop executes actions in."""

    def __init__(self, batch: int):
        self.batch = batch
        self.state = torch.zeros(batch, 4)
        self.goal = torch.tensor([[1.0, 0.5], [-0.8, 0.3], [0.2, -1.0], [-0.5, -0.5]])[:batch]
        self.executed = 0

    def step(self, actions: torch.Tensor) -> None:
        for t in range(actions.shape[1]):
            self.state[:, 2:] += DT * actions[:, t]
            self.state[:, :2] += DT * self.state[:, 2:]
            self.executed += 1

    def make_objective(self):
        state, goal = self.state.clone(), self.goal
        return lambda actions: rollout_cost(state, goal, actions)

    def distance(self) -> torch.Tensor:
        return (self.state[:, :2] - self.goal).norm(dim=-1)

    def mpc(self, planner, step=None, **loop):
        """run_mpc in these point masses; `loop`: horizon, n_execute, budget_steps, seed, ..."""
        return run_mpc(planner, self.make_objective, step or self.step, batch_size=self.batch, **BOX, **loop)


@pytest.mark.parametrize(
    "planner",
    [
        CEM(population=64, n_elites=8, iterations=4),
        ICEM(population=64, n_elites=8, iterations=3),
        MPPI(population=64, iterations=3, temperature=0.5),
    ],
    ids=["cem", "icem", "mppi"],
)
def test_point_mass_reaches_its_goal_under_mpc(planner):
    env = PointMass(batch=4)
    replans = []
    result = env.mpc(
        planner, horizon=16, n_execute=4, budget_steps=50, seed=0, on_replan=lambda i, r: replans.append(i)
    )
    assert env.executed == 50 and result.actions.shape == (4, 50, 2)
    assert result.n_replans == 13 == len(result.plan_seconds) and replans == list(range(13))
    assert torch.all(result.actions.abs() <= 1.0)
    assert torch.all(env.distance() < 0.15), env.distance()


def test_mpc_warm_starts_from_the_shifted_plan_and_carries_elites():
    env = PointMass(batch=2)
    seen_inits = []

    class Spy(ICEM):
        def plan(self, objective, **kwargs):
            seen_inits.append((kwargs["init"], kwargs["init_elites"]))
            return super().plan(objective, **kwargs)

    result = env.mpc(Spy(population=32, n_elites=6, iterations=2), horizon=8, n_execute=3, budget_steps=7, seed=1)
    assert [len(p.history.n_samples) for p in result.plans] == [2, 2, 2]
    assert seen_inits[0] == (None, None)
    previous = result.plans[0]
    init, elites = seen_inits[1]
    assert torch.equal(init, shift_plan(previous.mean, 3))
    assert torch.equal(elites, shift_plan(previous.elites, 3))
    assert result.actions.shape == (2, 7, 2)  # the last chunk is cut to the budget


def test_mpc_starts_the_first_plan_from_the_given_init():
    """A first-plan warm start (e.g. "hold still") reaches the first plan only; later plans shift their own."""
    env = PointMass(batch=2)
    seen = []

    class Spy(CEM):
        def plan(self, objective, **kwargs):
            seen.append(kwargs["init"])
            return super().plan(objective, **kwargs)

    hold = torch.full((2, 8, 2), 0.25)
    result = env.mpc(Spy(population=16, n_elites=4, iterations=1), horizon=8, n_execute=4, budget_steps=8, seed=0,
                     init=hold)
    assert torch.equal(seen[0], hold)
    assert torch.equal(seen[1], shift_plan(result.plans[0].warm_start, 4))


def test_mpc_never_sees_success_and_ignores_step_return_values():
    env = PointMass(batch=1)
    result = env.mpc(
        CEM(population=16, n_elites=4, iterations=2),
        step=lambda a: (env.step(a), {"success": True})[1],  # a "done" signal must not stop the loop
        horizon=4, n_execute=2, budget_steps=6,
    )
    assert env.executed == 6 and result.n_replans == 3


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        (dict(n_execute=9), "n_execute must be <= horizon (8); got 9"),
        (dict(budget_steps=0), "budget_steps must be a positive int; got 0"),
        (dict(fill="repeat"), "fill='repeat'; expected one of ('last', 'zeros', 'mean')"),
        (dict(init=torch.zeros(1, 4, 2)), "init has shape (1, 4, 2)"),
        (dict(init_elites=torch.zeros(1, 2, 8, 2)), "run_mpc sets init_elites itself"),
        (dict(step=None), "step must be callable"),
    ],
)
def test_run_mpc_rejects_bad_arguments(overrides, fragment):
    kwargs = dict(
        planner=CEM(population=8, n_elites=2, iterations=1), make_objective=lambda: lambda a: a.sum(dim=(-1, -2)),
        step=lambda a: None, batch_size=1, horizon=8, n_execute=2, budget_steps=4, **BOX,
    )
    kwargs.update(overrides)
    with pytest.raises(PlannerError, match=None) as excinfo:
        run_mpc(**kwargs)
    assert fragment in str(excinfo.value)


def test_shift_plan_fill_modes():
    plan = torch.arange(8.0).view(1, 4, 2)  # actions (0,1) (2,3) (4,5) (6,7)
    assert torch.equal(shift_plan(plan, 1, "last"), torch.tensor([[[2.0, 3], [4, 5], [6, 7], [6, 7]]]))
    assert torch.equal(shift_plan(plan, 2, "zeros"), torch.tensor([[[4.0, 5], [6, 7], [0, 0], [0, 0]]]))
    assert torch.equal(shift_plan(plan, 3, "mean"), torch.tensor([[[6.0, 7], [3, 4], [3, 4], [3, 4]]]))
    assert torch.equal(shift_plan(plan, 0), plan)
    assert torch.equal(shift_plan(plan, 10, "last"), torch.tensor([[[6.0, 7]] * 4]))
    elites = torch.arange(16.0).view(1, 2, 4, 2)  # [B, K, H, A] shifts along H too
    assert torch.equal(shift_plan(elites, 1)[0, 1, 0], torch.tensor([10.0, 11]))


def test_shift_plan_rejects_bad_input():
    with pytest.raises(PlannerError, match="n_executed must be an int >= 0; got -1"):
        shift_plan(torch.zeros(1, 4, 2), -1)
    with pytest.raises(PlannerError, match=r"expected a tensor \[..., H, A\]"):
        shift_plan(torch.zeros(4), 1)
    with pytest.raises(PlannerError, match="fill='edge'"):
        shift_plan(torch.zeros(1, 4, 2), 1, fill="edge")
