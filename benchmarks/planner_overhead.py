"""How much time the planners add around the objective, at population 256.

Target (issue 4): planner wall time <= 1.1x the time spent inside objective calls at population 256,
for an objective as costly as a small neural world model. The synthetic objective here is an MLP
over each candidate's flattened actions (B * 256 rows, width 512), about as costly as a light learned
model on this CPU; the table also prints each planner's absolute overhead per iteration, which does
not depend on the objective, so the ratio for any other objective cost can be read off it.

    python benchmarks/planner_overhead.py [--batch 4] [--horizon 16] [--iterations 30] [--width 512]
"""

from __future__ import annotations

import argparse
import statistics

import torch
from rich.console import Console
from rich.table import Table

from planners import CEM, CMAES, ICEM, MPPI, GradientPlanner, RandomShooting

POPULATION = 256


def mlp_objective(horizon: int, action_dim: int, width: int, seed: int = 0):
    """A fixed random MLP: actions [B, N, H, A] -> costs [B, N]; differentiable."""
    g = torch.Generator().manual_seed(seed)
    w1 = torch.randn(horizon * action_dim, width, generator=g) / (horizon * action_dim) ** 0.5
    w2 = torch.randn(width, width, generator=g) / width**0.5
    w3 = torch.randn(width, 1, generator=g) / width**0.5

    def objective(actions: torch.Tensor) -> torch.Tensor:
        x = actions.reshape(*actions.shape[:2], -1)
        h = torch.tanh(x @ w1)
        h = torch.tanh(h @ w2)
        return (h @ w3).squeeze(-1) + (x**2).mean(-1)

    return objective


def planners_at(population: int, iterations: int) -> dict[str, object]:
    return {
        "CEM": CEM(population=population, n_elites=population // 10, iterations=iterations),
        "iCEM": ICEM(
            population=population, n_elites=population // 10, iterations=iterations, population_decay=1.0
        ),
        "MPPI": MPPI(population=population, iterations=iterations),
        "RandomShooting": RandomShooting(population=population, iterations=iterations),
        "CMA-ES (diagonal)": CMAES(population=population, iterations=iterations, diagonal=True),
        "Gradient (256 starts)": GradientPlanner(n_starts=population, iterations=iterations),
    }


def measure(
    batch: int, horizon: int, action_dim: int, iterations: int, width: int, repeats: int = 3
) -> list[dict]:
    """Median over `repeats` plans of: wall and objective seconds per iteration, and their ratio."""
    objective = mlp_objective(horizon, action_dim, width)
    rows = []
    for name, planner in planners_at(POPULATION, iterations).items():
        kwargs = dict(batch_size=batch, horizon=horizon, action_dim=action_dim, low=-1.0, high=1.0)
        planner.plan(objective, seed=0, **kwargs)  # warm-up (lazy imports, allocator)
        walls, objs = [], []
        for r in range(repeats):
            result = planner.plan(objective, seed=r + 1, **kwargs)
            walls.append(result.wall_time / result.n_calls)
            objs.append(result.objective_time / result.n_calls)
        wall, obj = statistics.median(walls), statistics.median(objs)
        rows.append(
            {
                "planner": name,
                "wall_ms": 1e3 * wall,
                "objective_ms": 1e3 * obj,
                "overhead_ms": 1e3 * (wall - obj),
                "ratio": wall / obj,
            }
        )
    return rows


def overhead_table(rows: list[dict], title: str) -> Table:
    table = Table(title=title)
    for col in ("planner", "ms / iteration", "in objective", "overhead", "wall / objective (target <= 1.10)"):
        table.add_column(col, justify="left" if col == "planner" else "right")
    for row in rows:
        ok = "[green]" if row["ratio"] <= 1.10 else "[red]"
        table.add_row(
            row["planner"],
            f"{row['wall_ms']:.2f}",
            f"{row['objective_ms']:.2f}",
            f"{row['overhead_ms']:.3f}",
            f"{ok}{row['ratio']:.3f}",
        )
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--horizon", type=int, default=16)
    parser.add_argument("--action-dim", type=int, default=2)
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (1: steady timings on a shared machine)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = measure(args.batch, args.horizon, args.action_dim, args.iterations, args.width)
    title = (
        f"Planner overhead at population {POPULATION} (B={args.batch}, H={args.horizon}, A={args.action_dim}, "
        f"MLP objective width {args.width}, {args.iterations} iterations, {args.threads} torch thread(s), "
        "median of 3 plans; the gradient planner's backward pass counts as objective time)"
    )
    Console(width=130).print(overhead_table(rows, title))


if __name__ == "__main__":
    main()
