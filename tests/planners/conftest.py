"""Small objectives with known optima, shared by the planner tests."""

from __future__ import annotations

import pytest
import torch

from planners import CEM, CMAES, ICEM, MPPI, GradientPlanner, RandomShooting


def quadratic_targets(batch: int, horizon: int, action_dim: int) -> torch.Tensor:
    """[B, H, A] a different optimum per problem, inside the box [-1, 1] (away from its faces)."""
    grid = torch.linspace(-0.6, 0.6, horizon * action_dim).view(horizon, action_dim)
    scale = torch.linspace(0.5, 1.0, batch).view(batch, 1, 1)
    return grid * scale


def quadratic(targets: torch.Tensor):
    """objective(actions [B, N, H, A]) -> [B, N] = weighted squared distance to targets [B, H, A]."""
    weights = torch.linspace(1.0, 2.0, targets.shape[-1])

    def objective(actions: torch.Tensor) -> torch.Tensor:
        return (((actions - targets[:, None]) ** 2) * weights).sum(dim=(-1, -2))

    return objective


def small_planners() -> dict[str, object]:
    """Cheap configurations of every planner (populations of 16-64, a few iterations)."""
    return {
        "cem": CEM(population=32, n_elites=6, iterations=4),
        "icem": ICEM(population=32, n_elites=6, iterations=4),
        "mppi": MPPI(population=32, iterations=4, temperature=0.1),
        "cmaes": CMAES(population=12, iterations=4),
        "gradient": GradientPlanner(n_starts=4, iterations=4),
        "random": RandomShooting(population=32, iterations=3),
    }


@pytest.fixture(params=list(small_planners()))
def planner(request):
    return small_planners()[request.param]
