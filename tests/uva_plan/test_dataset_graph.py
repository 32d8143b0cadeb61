"""Shortest ways over a replay buffer: trajectories join where their frames coincide, never across
layouts, and a lighter way always wins over a recorded detour."""

import numpy as np
import torch

from uva_plan.dataset_graph import UNREACHABLE_STEPS, layout_groups, shortest_way_labels


def _line_world(positions_per_episode, doors):
    """Episodes walking along a line; the latent of a frame is its position (so equal positions
    coincide), the state is [position, door]."""
    pos = np.concatenate(positions_per_episode).astype(np.float32)
    lengths = [len(p) for p in positions_per_episode]
    ends = np.cumsum(lengths)
    starts = ends - lengths
    door = np.concatenate([np.full(n, d, np.float32) for n, d in zip(lengths, doors)])
    latents = torch.from_numpy(np.stack([pos * 10.0, np.zeros_like(pos)], axis=1)).view(-1, 1, 1, 2)
    return latents, np.stack([pos, door], axis=1), starts, ends


def _steps(labels, frame, goal):
    for frames, goals, steps in labels.groups:
        if frame in frames and goal in goals:
            return float(steps[list(goals).index(goal), list(frames).index(frame)])
    return None


def test_two_episodes_that_meet_are_joined_and_layouts_stay_apart():
    # Episode 0 walks 0..5, episode 1 walks 5..10 (they meet at 5), episode 2 (another door) 0..10.
    latents, state, starts, ends = _line_world([np.arange(6), np.arange(5, 11), np.arange(11)], [10.0, 10.2, 40.0])
    labels = shortest_way_labels(latents, state, starts, ends, [0, 1, 2], reversible=True, layout_width=1.0,
                                 rng=np.random.default_rng(0), goals_per_group=100)
    assert len(labels.groups) == 2 and labels.links > 0
    # frame 0 (episode 0, position 0) to frame 11 (episode 1, position 10): 5 + ~0 + 5 steps
    assert abs(_steps(labels, 0, 11) - 10.0) < 0.2
    assert abs(_steps(labels, 11, 0) - 10.0) < 0.2  # reversible: the way back too
    # no pair across layouts is labelled
    assert _steps(labels, 0, 17) is None


def test_irreversible_worlds_only_walk_forward():
    latents, state, starts, ends = _line_world([np.arange(6)], [0.0])
    labels = shortest_way_labels(latents, state, starts, ends, [0], reversible=False, layout_width=1.0,
                                 rng=np.random.default_rng(0), goals_per_group=100)
    assert _steps(labels, 1, 4) == 3.0 and _steps(labels, 4, 1) == UNREACHABLE_STEPS
    f, g, s = labels.sample(np.random.default_rng(1), 500)
    assert np.all((g >= f) | (s == UNREACHABLE_STEPS))


def test_layout_groups_bin_the_fixed_state_only():
    _, state, starts, ends = _line_world([np.arange(3), np.arange(3), np.arange(3)], [10.1, 10.7, 12.5])
    groups = layout_groups(state, starts, ends, [0, 1, 2], width=1.0)
    assert sorted(sorted(g.tolist()) for g in groups) == [[0, 1], [2]]
    state[:, 1] = np.arange(len(state))  # nothing fixed: one group
    assert len(layout_groups(state, starts, ends, [0, 1, 2], width=1.0)) == 1
