"""Shortest paths over a replay buffer: the labels of `uva-plan fit-distance --method graph`.

Why: hindsight step counts only pair frames of one trajectory, and a TD fit joins trajectories only as
fast as its bootstrap propagates (measured on the Wall: 8,000 TD steps still left the far room a flat,
rough plateau). Here trajectories are joined explicitly, as in Search on the Replay Buffer (Eysenbach
et al. 2019): the nodes are the recorded frames, the edges their recorded transitions (one step each,
both ways when the env is reversible) plus links between frames whose tokenizer latents nearly coincide
(the same place seen in two episodes, weighted by the fraction of a typical step between them). Dijkstra
then gives every frame's shortest way to a goal frame, which the distance head regresses.

Frames are linked only inside a *layout group*: episodes whose fixed state (the Wall's door height) is
in the same bin. Links across groups could chain small door shifts into a passage through the wall.

Measured on data/wall-ship.zarr with the shipped tokenizer (20 goals, frames of the same door): the
graph distance ranks frames by their routed distance with Spearman 0.97, none unreachable, at 0.52
steps per world unit (the agent moves up to 2 units a step).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NEIGHBOURS = 8  # latent nearest neighbours considered per frame
LINK_FRACTION = 0.6  # link frames closer than this fraction of the median one-step latent distance
MIN_LINK_WEIGHT = 0.05  # steps: a link is never free, so chains of links cost something
GOALS_PER_GROUP = 512
UNREACHABLE_STEPS = 400.0  # the label of a goal no recorded way reaches


@dataclass
class GraphLabels:
    """Shortest-way labels: ``steps[k, i]`` env steps from ``frames[i]`` to ``goals[k]`` (float16;
    ``UNREACHABLE_STEPS`` where no recorded way leads), one block per layout group."""

    groups: list[tuple[np.ndarray, np.ndarray, np.ndarray]]  # (frames [n], goals [k], steps [k, n])
    link_threshold: float
    links: int

    def sample(self, rng: np.random.Generator, n: int):
        """``n`` (frame index, goal index, steps) triples, groups drawn by their number of frames."""
        sizes = np.array([len(f) for f, _, _ in self.groups], dtype=np.float64)
        which = rng.choice(len(self.groups), size=n, p=sizes / sizes.sum())
        frames, goals, steps = np.empty(n, np.int64), np.empty(n, np.int64), np.empty(n, np.float32)
        for gi in np.unique(which):
            rows = np.flatnonzero(which == gi)
            f, g, d = self.groups[gi]
            a, b = rng.integers(len(f), size=len(rows)), rng.integers(len(g), size=len(rows))
            frames[rows], goals[rows], steps[rows] = f[a], g[b], d[b, a]
        return frames, goals, steps


def fixed_state_dims(state: np.ndarray, starts: np.ndarray, ends: np.ndarray, episodes) -> np.ndarray:
    """Mask of the state dimensions that never change inside any of ``episodes``: the layout of the
    world (the Wall's door height), which one episode cannot reach from another's."""
    fixed = np.ones(state.shape[1], dtype=bool)
    for e in episodes:
        fixed &= np.ptp(state[starts[e]:ends[e]], axis=0) <= 1e-6
    return fixed


def layout_groups(state: np.ndarray, starts: np.ndarray, ends: np.ndarray, episodes, width: float) -> list[np.ndarray]:
    """Episodes of ``episodes`` grouped by their fixed state in bins of ``width``; one group when
    nothing is fixed."""
    episodes = np.asarray(episodes)
    fixed = fixed_state_dims(state, starts, ends, episodes)
    if not fixed.any():
        return [episodes]
    keys = np.floor(state[starts[episodes]][:, fixed] / width).astype(np.int64)
    _, group = np.unique(keys, axis=0, return_inverse=True)
    return [episodes[group.ravel() == g] for g in range(group.max() + 1)]


def _nearest_links(z, neighbours: int):
    """(i, j, latent distance) of each row's ``neighbours`` nearest other rows of ``z [n, d]``."""
    import torch

    sq = (z * z).sum(1)
    rows, cols, dist = [], [], []
    k = min(neighbours + 1, len(z))
    for i in range(0, len(z), 2048):
        d2 = (sq[i:i + 2048, None] + sq[None] - 2 * z[i:i + 2048] @ z.T).clamp_(min=0)
        v, j = torch.topk(d2, k, largest=False)
        rows.append(np.repeat(np.arange(i, i + len(v)), k))
        cols.append(j.flatten().cpu().numpy())
        dist.append(v.sqrt().flatten().cpu().numpy())
    rows, cols, dist = np.concatenate(rows), np.concatenate(cols), np.concatenate(dist)
    keep = rows != cols
    return rows[keep], cols[keep], dist[keep]


def _shortest_edges(rows, cols, weights, n: int):
    """A CSR graph keeping the lightest of repeated edges (scipy would add them up)."""
    import scipy.sparse as sp

    key = rows.astype(np.int64) * n + cols
    order = np.lexsort((weights, key))
    key, weights = key[order], weights[order]
    first = np.concatenate([[True], key[1:] != key[:-1]])
    key, weights = key[first], weights[first]
    return sp.csr_matrix((weights, (key // n, key % n)), shape=(n, n))


def shortest_way_labels(latents, state: np.ndarray, starts: np.ndarray, ends: np.ndarray, episodes,
                        reversible: bool, layout_width: float, rng: np.random.Generator,
                        goals_per_group: int = GOALS_PER_GROUP) -> GraphLabels:
    """Dijkstra labels over the frames of ``episodes`` (see the module docstring). ``latents [N, ...]``
    are the tokenizer latents of every frame of the buffer."""
    from scipy.sparse.csgraph import dijkstra

    z_all = latents.flatten(1).float()
    steps_of = [np.arange(starts[e], ends[e] - 1) for e in episodes if ends[e] - starts[e] >= 2]
    t = np.concatenate(steps_of) if steps_of else np.zeros(0, np.int64)
    step_latent = float(np.median((z_all[t + 1] - z_all[t]).norm(dim=1).cpu().numpy())) if len(t) else 1.0
    threshold = LINK_FRACTION * step_latent
    groups, links = [], 0
    for members in layout_groups(state, starts, ends, episodes, layout_width):
        lengths = ends[members] - starts[members]
        frames = np.concatenate([np.arange(starts[e], ends[e]) for e in members])
        n = len(frames)
        first = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        src = np.concatenate([f + np.arange(k - 1) for f, k in zip(first, lengths)])  # recorded transitions
        dst = src + 1
        i, j, d = _nearest_links(z_all[frames], NEIGHBOURS)
        close = d < threshold
        i, j, w = i[close], j[close], np.maximum(d[close] / step_latent, MIN_LINK_WEIGHT)
        links += int(close.sum())
        one = np.ones(len(src))
        r = [src, i, j] + ([dst] if reversible else [])
        c = [dst, j, i] + ([src] if reversible else [])
        ws = [one, w, w] + ([one] if reversible else [])
        graph = _shortest_edges(np.concatenate(r), np.concatenate(c), np.concatenate(ws), n)
        goals = rng.choice(n, size=min(goals_per_group, n), replace=False)
        # Distances from every frame TO each goal: Dijkstra from the goal on the reversed graph.
        to_goal = dijkstra(graph.T.tocsr(), directed=True, indices=goals)
        to_goal = np.minimum(np.nan_to_num(to_goal, posinf=UNREACHABLE_STEPS), UNREACHABLE_STEPS).astype(np.float16)
        groups.append((frames, frames[goals], to_goal))
    return GraphLabels(groups, threshold, links)
