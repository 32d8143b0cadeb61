"""Cost landscape: does each goal cost rank frames by their true remaining distance to the goal?

For held-out Wall states (evaluation seeds, disjoint from training), pairs of (frame, goal) are drawn
across the whole range of distances, start and goal often in different rooms. Each cost scores the
frame against the goal image; the table reports Spearman's rank correlation with the true remaining
distance (the shortest path routed through the door) over all pairs and within distance bins. A cost
that stays informative at long range keeps a high correlation in the far bins.

Then what the planner feels: along held-out paths of the door-aware expert to a goal in the other room,
the fraction of steps (1, 4 and 8 env steps apart) on which each cost falls - a cost with local minima
along the wall rises or stalls there, whatever its rank correlation over random pairs.

    python benchmarks/cost_landscape.py [--checkpoint RUN_DIR] [--pairs 600] [--paths 20] [--seed 0]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

BINS = ((0, 10), (10, 20), (20, 40), (40, 200))
FRAME_COSTS = ("latent_l2", "multiscale", "distance", "latent_distance", "distance+latent")


def sample_pairs(n: int, seed: int, image_size: int):
    """Random agent positions and goals on held-out door positions; returns states and routed distances."""
    from uva_plan.envs import make_env
    from uva_plan.envs.goals import EVAL_SEED_OFFSET
    from uva_plan.envs.wall import sample_position

    env = make_env("wall", image_size=image_size)
    rng = np.random.default_rng(EVAL_SEED_OFFSET + seed)
    frames, goals, dist = [], [], []
    for i in range(n):
        _, info = env.reset(seed=EVAL_SEED_OFFSET + seed + i)
        door_state = np.asarray(info["state"], dtype=np.float64)
        start = door_state.copy()
        start[:2] = sample_position(rng, int(rng.integers(2)))
        goal = door_state.copy()
        if rng.random() < 0.35:  # near pairs, so the short-range bins are populated too
            while True:
                goal[:2] = start[:2] + rng.normal(0, 8, size=2)
                if _inside(goal) and env.room(goal) == env.room(start):
                    break
        else:
            goal[:2] = sample_position(rng, int(rng.integers(2)))
        pair = [start, goal]
        frames.append(env.render_state(pair[0]))
        goals.append(env.render_state(pair[1]))
        dist.append(env.routed_distance(pair[0], pair[1]))
    return np.stack(frames), np.stack(goals), np.asarray(dist)


def expert_paths(n: int, seed: int, image_size: int, max_steps: int = 120):
    """Frames of the noise-free door-aware expert walking from a held-out start to a goal in the OTHER
    room: ``[(frames [T, S, S, 3], goal image [S, S, 3]), ...]`` - the way a planner must follow."""
    from uva_plan.envs import make_env
    from uva_plan.envs.goals import EVAL_SEED_OFFSET
    from uva_plan.envs.policies import make_policy
    from uva_plan.envs.wall import sample_position

    env = make_env("wall", image_size=image_size)
    rng = np.random.default_rng(EVAL_SEED_OFFSET + 777 + seed)
    paths = []
    for i in range(n):
        _, info = env.reset(seed=EVAL_SEED_OFFSET + 777 + seed + i)
        state = np.asarray(info["state"], dtype=np.float64)
        goal = state.copy()
        goal[:2] = sample_position(rng, 1 - env.room(state))
        policy = make_policy("wall", "expert", seed=i)
        policy.reset(state, goal)
        frames = [env.render_state(state)]
        for _ in range(max_steps):
            state = env.step_state(policy(state))
            frames.append(env.render_state(state))
            if env.is_success(state, goal) and env.state_distance(state, goal) < 0.5:
                break
        paths.append((np.stack(frames), env.render_state(goal)))
    return paths


def falling_fraction(scores: list[np.ndarray], every: int = 1) -> float:
    """Fraction of the steps (``every`` env steps apart) along the paths on which the cost falls."""
    falls = [np.diff(c[::every]) < 0 for c in scores]
    return float(np.concatenate(falls).mean())


def _inside(state) -> bool:
    from uva_plan.envs import wall_geometry as geo

    return bool(geo.is_free(float(state[0]), float(state[1]), float(state[2])))


def score(model, cost_name: str, frames: np.ndarray, goals: np.ndarray) -> np.ndarray:
    from uva_plan.goal_costs import Trajectory, distances_of, make_cost

    cost = make_cost(cost_name)
    out = []
    with torch.no_grad():
        for i in range(0, len(frames), 256):
            f = torch.from_numpy(frames[i:i + 256]).unsqueeze(1)
            g = torch.from_numpy(goals[i:i + 256]).unsqueeze(1)
            z = model.encode(f)
            zg = model.encode(g)[:, 0]
            out.append(cost(Trajectory(latents=z, goal=zg, **distances_of(model, cost, z, zg))).numpy())
    return np.concatenate(out)


def pixel_l2(frames: np.ndarray, goals: np.ndarray) -> np.ndarray:
    diff = (frames.astype(np.float32) - goals.astype(np.float32)) / 255.0
    return (diff ** 2).reshape(len(frames), -1).mean(1)


def main() -> None:
    from rich.console import Console
    from rich.table import Table
    from scipy.stats import spearmanr

    from uva_plan.planning import load_model_for_env

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None, help="RUN_DIR (default: the shipped Wall checkpoint)")
    parser.add_argument("--pairs", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--paths", type=int, default=20, help="held-out expert paths for the falling-cost measure")
    args = parser.parse_args()

    model = load_model_for_env(args.checkpoint, "wall")
    frames, goals, dist = sample_pairs(args.pairs, args.seed, model.config.image_size)
    scores = {"pixel_l2": pixel_l2(frames, goals)}
    for name in FRAME_COSTS:
        scores[name] = score(model, name, frames, goals)

    table = Table(title=f"Spearman rank correlation with the routed distance ({len(dist)} held-out pairs)")
    table.add_column("cost")
    table.add_column("all", justify="right")
    for lo, hi in BINS:
        table.add_column(f"{lo}-{hi} px (n={int(((dist >= lo) & (dist < hi)).sum())})", justify="right")
    for name, s in scores.items():
        row = [name, f"{spearmanr(s, dist).statistic:.2f}"]
        for lo, hi in BINS:
            m = (dist >= lo) & (dist < hi)
            row.append(f"{spearmanr(s[m], dist[m]).statistic:.2f}" if m.sum() > 5 else "-")
        table.add_row(*row)
    Console().print(table)

    paths = expert_paths(args.paths, args.seed, model.config.image_size)
    table = Table(title=f"Does the cost fall along the way? {len(paths)} held-out expert paths to the other room "
                        f"({sum(len(f) - 1 for f, _ in paths)} steps)")
    for col in ("cost", "falls per step", "falls per 4 steps", "falls per 8 steps"):
        table.add_column(col, justify="right" if col != "cost" else "left")
    for name in ("pixel_l2", *FRAME_COSTS):
        per_path = []
        for path, goal in paths:
            goals_rep = np.repeat(goal[None], len(path), axis=0)
            per_path.append(pixel_l2(path, goals_rep) if name == "pixel_l2" else score(model, name, path, goals_rep))
        table.add_row(name, *(f"{100 * falling_fraction(per_path, k):.0f}%" for k in (1, 4, 8)))
    Console().print(table)


if __name__ == "__main__":
    main()
