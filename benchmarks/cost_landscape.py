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
NEAR_WALL = 8.0  # units from the wall's faces: where sliding along the wall competes with the door
FRAME_COSTS = ("latent_l2", "multiscale", "distance", "latent_distance", "distance+latent")


def sample_pairs(n: int, seed: int, image_size: int):
    """Random agent positions and goals on held-out door positions: ``(frames, goals, routed distances,
    near_wall, cross_room)``, the masks marking starts whose centre lies within ``NEAR_WALL`` units of the
    wall's faces and goals in the other room."""
    from uva_plan.envs import make_env
    from uva_plan.envs import wall_geometry as geo
    from uva_plan.envs.goals import EVAL_SEED_OFFSET
    from uva_plan.envs.wall import sample_position

    env = make_env("wall", image_size=image_size)
    rng = np.random.default_rng(EVAL_SEED_OFFSET + seed)
    frames, goals, dist, near, cross = [], [], [], [], []
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
        near.append(geo.WALL_X0 - NEAR_WALL <= start[0] <= geo.WALL_X1 + NEAR_WALL)
        cross.append(env.room(start) != env.room(goal))
    return np.stack(frames), np.stack(goals), np.asarray(dist), np.asarray(near), np.asarray(cross)


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


def distance_map(model, env, door: float, goal_xy, spacing: float = 2.0):
    """The latent distance from every free agent position (a grid ``spacing`` units apart) to one goal
    image, beside the routed distance: ``(xs, ys, learned [ny, nx], routed [ny, nx])``, NaN inside
    the wall."""
    from uva_plan.envs import wall_geometry as geo

    xs = ys = np.arange(3.0, 62.0, spacing)
    free = [(i, j) for i, y in enumerate(ys) for j, x in enumerate(xs) if geo.is_free(x, y, door)]
    frames = np.stack([env.render_state([xs[j], ys[i], door]) for i, j in free])
    goal = env.render_state([goal_xy[0], goal_xy[1], door])
    learned = score(model, "latent_distance", frames, np.repeat(goal[None], len(frames), axis=0))
    routed = [env.routed_distance([xs[j], ys[i], door], [goal_xy[0], goal_xy[1], door]) for i, j in free]
    maps = np.full((2, len(ys), len(xs)), np.nan)
    for k, (i, j) in enumerate(free):
        maps[0, i, j], maps[1, i, j] = learned[k], routed[k]
    return xs, ys, maps[0], maps[1]


def local_minima(xs, ys, grid, goal_xy, radius: float = 6.0) -> int:
    """Free cells farther than ``radius`` from the goal whose value is at most that of every free
    neighbour: the places where a planner that only looks nearby stops."""
    count = 0
    for i in range(len(ys)):
        for j in range(len(xs)):
            if np.isnan(grid[i, j]) or np.hypot(xs[j] - goal_xy[0], ys[i] - goal_xy[1]) <= radius:
                continue
            if np.nanmin(grid[max(i - 1, 0):i + 2, max(j - 1, 0):j + 2]) >= grid[i, j]:
                count += 1
    return count


def map_figure(model, image_size: int, seed: int, n_maps: int, out: str):
    """Distance maps to ``n_maps`` held-out cross-room goals (door heights of evaluation seeds): the
    learned latent distance beside the routed one; writes ``out`` and returns the minima counts."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from uva_plan.envs import make_env
    from uva_plan.envs.goals import EVAL_SEED_OFFSET
    from uva_plan.envs.wall import sample_position
    from uva_plan.viz import save_figure

    env = make_env("wall", image_size=image_size)
    rng = np.random.default_rng(EVAL_SEED_OFFSET + 555 + seed)
    fig, axes = plt.subplots(2, n_maps, figsize=(2.6 * n_maps, 5.4), squeeze=False)
    minima = []
    for k in range(n_maps):
        _, info = env.reset(seed=EVAL_SEED_OFFSET + 555 + seed + k)
        door = float(info["state"][2])
        goal_xy = sample_position(rng, int(rng.integers(2)))
        xs, ys, learned, routed = distance_map(model, env, door, goal_xy)
        minima.append((local_minima(xs, ys, learned, goal_xy), local_minima(xs, ys, routed, goal_xy)))
        for row, (name, grid) in enumerate((("learned", learned), ("routed", routed))):
            ax = axes[row, k]
            cmap = plt.get_cmap("viridis").copy()
            cmap.set_bad("0.45")  # the wall (no free agent centre): grey, apart from the white contours
            ax.imshow(grid, extent=(xs[0] - 1, xs[-1] + 1, ys[-1] + 1, ys[0] - 1), cmap=cmap)
            ax.contour(xs, ys, grid, levels=12, colors="w", linewidths=0.5)
            ax.plot(*goal_xy, "r*", ms=10)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{name}, door y={door:.0f}: local minima {minima[-1][row]}", fontsize=8)
    fig.suptitle("distance to the goal (red star) from every agent position; white: contours; grey: the wall",
                 fontsize=9)
    fig.tight_layout()
    save_figure(fig, out)
    return minima


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

    from uva_plan.model_loading import load_model_for_env

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None, help="RUN_DIR (default: the shipped Wall checkpoint)")
    parser.add_argument("--pairs", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--paths", type=int, default=20, help="held-out expert paths for the falling-cost measure")
    parser.add_argument("--maps", type=int, default=4, help="held-out goals of the distance-map figure (0: none)")
    parser.add_argument("--map-png", default="out/cost_landscape_maps.png", help="where the distance-map figure goes")
    args = parser.parse_args()

    model = load_model_for_env(args.checkpoint, "wall")
    frames, goals, dist, near, cross = sample_pairs(args.pairs, args.seed, model.config.image_size)
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

    table = Table(title=f"The same near the wall (start centre within {NEAR_WALL:g} units of a wall face)")
    table.add_column("cost")
    subsets = {"near the wall": near, "near, goal in the other room": near & cross, "near, goal in the same room": near & ~cross}
    subsets.update({f"near, {lo}-{hi} px": near & (dist >= lo) & (dist < hi) for lo, hi in BINS})
    for title, m in subsets.items():
        table.add_column(f"{title} (n={int(m.sum())})", justify="right")
    for name, s in scores.items():
        table.add_row(name, *(f"{spearmanr(s[m], dist[m]).statistic:.2f}" if m.sum() > 5 else "-" for m in subsets.values()))
    Console(width=max(Console().width, 150)).print(table)  # eight columns: narrower cuts the cost names

    # A frame without the agent should read as far from every goal; where it reads as close, a planner
    # prefers the candidates whose imagined agent vanished.
    # (the empty scene: the tokenizer's median background, as an imagined future that lost the agent)
    lost = np.repeat(model.tokenizer.empty_frame().cpu().numpy()[None], len(goals), axis=0)
    empty = {"pixel_l2": pixel_l2(lost, goals)}
    empty.update({name: score(model, name, lost, goals) for name in FRAME_COSTS})
    table = Table(title="A frame that lost the agent (the empty scene) scored against each pair's goal: how often "
                        "it reads as farther than the pair's real frame (100% = never read as progress)")
    table.add_column("cost")
    table.add_column(f"all pairs (n={len(dist)})", justify="right")
    far = dist >= BINS[-1][0]
    table.add_column(f"pairs {BINS[-1][0]}+ px apart (n={int(far.sum())})", justify="right")
    for name, s in scores.items():
        farther = empty[name] > s
        table.add_row(name, f"{100 * farther.mean():.0f}%", f"{100 * farther[far].mean():.0f}%")
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

    if args.maps > 0:
        minima = map_figure(model, model.config.image_size, args.seed, args.maps, args.map_png)
        print(f"local minima of the latent distance over {args.maps} held-out goal maps (2-unit grid, > 6 units "
              f"from the goal): {' '.join(str(m) for m, _ in minima)} (routed distance: "
              f"{' '.join(str(r) for _, r in minima)}); figure: {args.map_png}")


if __name__ == "__main__":
    main()
