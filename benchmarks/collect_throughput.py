"""Data-collection speed, renderer speed and how often the scripted PushT policies move the block.

Targets (issue 2, on the 2-core dev machine): collection Wall >= 1,000 transitions/s and PushT >= 150/s
at 64x64; the Wall renderer >= 2,000 frames/s at 64x64. Collection is measured end to end with
`collect_dataset` (policy, env step, rendering, zarr writing to a temporary folder). The block table
backs the pusher's purpose: REFERENCE says a block-aimed policy moves the block in 83-100% of 5-25 step
windows, while random targets rarely do.

    python benchmarks/collect_throughput.py [--episodes 20] [--max-steps 100] [--sizes 64 96]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from uva_plan.collection import collect_dataset
from uva_plan.envs import make_env
from uva_plan.envs.policies import make_policy

TARGETS = {("wall", 64): 1000.0, ("pusht", 64): 150.0}


def collection_rate(env_name: str, image_size: int, episodes: int, max_steps: int) -> tuple[float, float]:
    """Transitions per wall-clock second, and per CPU-second of this process (what one free core would
    give: the dev machine is shared, so wall-clock rates drop whenever others are busy)."""
    with tempfile.TemporaryDirectory() as tmp:
        cpu = time.process_time()
        summary = collect_dataset(env_name, episodes=episodes, max_steps=max_steps, policy="mixed",
                                  image_size=image_size, seed=0, out=Path(tmp) / "bench.zarr")
        cpu = time.process_time() - cpu
    return summary["steps_per_second"], summary["steps"] / max(cpu, 1e-9)


def render_rate(env_name: str, image_size: int, frames: int = 2000) -> float:
    env = make_env(env_name, image_size=image_size)
    env.reset(seed=0)
    policy = make_policy(env_name, "random", seed=0)
    states = [env.step_state(policy(env.get_state())) for _ in range(200)]
    start = time.perf_counter()
    for i in range(frames):
        env.render_state(states[i % len(states)])
    return frames / (time.perf_counter() - start)


def block_moves(kind: str, episodes: int, steps: int = 150, threshold: float = 2.0) -> dict:
    """Fraction of k-step windows in which the block moved (position px + angle degrees > threshold),
    and how many episodes pushed the block out of the arena."""
    env = make_env("pusht", image_size=16)
    moved = {5: [], 25: []}
    escaped = 0
    for seed in range(episodes):
        env.reset(seed=seed)
        state = env.get_state()
        policy = make_policy("pusht", kind, seed=seed)
        policy.reset(state)
        trajectory = [state]
        for _ in range(steps):
            state = env.step_state(policy(state))
            trajectory.append(state)
        traj = np.array(trajectory)
        escaped += bool(np.any((traj[:, 2:4] < 0) | (traj[:, 2:4] > 512)))
        for k in moved:
            for t in range(0, steps - k + 1, k):
                delta = traj[t + k] - traj[t]
                angle = np.degrees(abs((delta[4] + np.pi) % (2 * np.pi) - np.pi))
                moved[k].append(np.hypot(delta[2], delta[3]) + angle > threshold)
    return {"5": float(np.mean(moved[5])), "25": float(np.mean(moved[25])), "escaped": escaped}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=20, help="Wall episodes per measurement (PushT: a quarter)")
    parser.add_argument("--max-steps", type=int, default=100)
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 96])
    parser.add_argument("--block-episodes", type=int, default=20)
    args = parser.parse_args()
    console = Console()

    table = Table(title="Collection throughput (mixed policy, zarr written)")
    for col in ("env", "image", "transitions/s", "per CPU-second", "render frames/s", "target", "met"):
        table.add_column(col, justify="right" if col not in ("env", "met") else "left")
    for env_name in ("wall", "pusht"):
        episodes = args.episodes if env_name == "wall" else max(2, args.episodes // 4)
        for size in args.sizes:
            rate, cpu_rate = collection_rate(env_name, size, episodes, args.max_steps)
            frames = render_rate(env_name, size, frames=4000 if env_name == "wall" else 500)
            target = TARGETS.get((env_name, size))
            met = "-" if target is None else ("yes" if rate >= target else "NO")
            table.add_row(env_name, f"{size}x{size}", f"{rate:,.0f}", f"{cpu_rate:,.0f}", f"{frames:,.0f}",
                          "-" if target is None else f">= {target:,.0f}", met)
    console.print(table)
    console.print(f"load average while measuring: {', '.join(f'{x:.1f}' for x in os.getloadavg())} "
                  f"on {os.cpu_count()} cores (wall-clock rates fall when the machine is shared)")

    moves = Table(title=f"PushT: share of windows in which the block moves ({args.block_episodes} episodes x 150 steps)")
    for col in ("policy", "5-step windows", "25-step windows", "episodes with block out of arena"):
        moves.add_column(col, justify="right" if col != "policy" else "left")
    for kind in ("pusher", "random"):
        m = block_moves(kind, args.block_episodes)
        moves.add_row(kind, f"{m['5']:.0%}", f"{m['25']:.0%}", str(m["escaped"]))
    console.print(moves)


if __name__ == "__main__":
    main()
