"""Wall and PushT: registration, determinism, exact state restore, rendering, success, collisions."""

import math

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.uva_plan.conftest import pusher_states
from uva_plan.envs import ENV_IDS, make_env
from uva_plan.envs import wall_geometry as geo
from uva_plan.envs.policies import make_policy
from uva_plan.envs.pusht import ANGLE_SCALE
from uva_plan.errors import UserInputError


@pytest.fixture(scope="module")
def wall():
    return make_env("wall")


@pytest.fixture(scope="module")
def pusht():
    return make_env("pusht", image_size=64)


def rollout(env, seed, steps, kind):
    obs, info = env.reset(seed=seed)
    policy = make_policy(env.name, kind, seed=seed)
    state = info["state"]
    policy.reset(state)
    frames, states, actions = [obs], [state], []
    for _ in range(steps):
        action = policy(state)
        obs, _, _, _, info = env.step(action)
        state = info["state"]
        frames.append(obs)
        states.append(state)
        actions.append(action)
    return np.array(frames), np.array(states), np.array(actions)


# ---------------------------------------------------------------------------------------------- registry


def test_make_env_names_ids_and_unknown():
    assert make_env("Wall").name == "wall"
    assert make_env(ENV_IDS["wall"], image_size=32).observation_space.shape == (32, 32, 3)
    with pytest.raises(UserInputError, match=r"unknown environment 'maze'; expected one of: wall .*pusht"):
        make_env("maze")
    with pytest.raises(UserInputError, match=r"image_size is 8; expected an integer in \[16, 512\]"):
        make_env("wall", image_size=8)
    env = gym.make(ENV_IDS["wall"], image_size=16)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (16, 16, 3) and obs.dtype == np.uint8


@pytest.mark.filterwarnings("ignore:.*symmetric and normalized space")  # [-2, 2] velocities are the design
def test_wall_passes_gymnasium_checker_and_truncates(wall):
    from gymnasium.utils.env_checker import check_env

    check_env(make_env("wall", image_size=32), skip_render_check=True)
    env = make_env("wall", max_episode_steps=3)
    env.reset(seed=0)
    flags = [env.step(np.zeros(2))[3] for _ in range(3)]
    assert flags == [False, False, True]


# ---------------------------------------------------------------------------------------------- determinism


@pytest.mark.parametrize(("name", "kind", "steps"), [("wall", "random", 30), ("pusht", "pusher", 8)])
def test_same_seed_same_episode(name, kind, steps, wall, pusht):
    env = wall if name == "wall" else pusht
    f1, s1, a1 = rollout(env, 3, steps, kind)
    f2, s2, a2 = rollout(env, 3, steps, kind)
    np.testing.assert_array_equal(s1, s2)
    np.testing.assert_array_equal(f1, f2)
    np.testing.assert_array_equal(a1, a2)
    _, s3, _ = rollout(env, 4, steps, kind)
    assert not np.allclose(s1[0], s3[0])


def test_render_state_equals_observation(wall, pusht):
    for env, kind, steps in ((wall, "expert", 15), (pusht, "pusher", 6)):
        frames, states, _ = rollout(env, 11, steps, kind)
        for frame, state in zip(frames, states):
            np.testing.assert_array_equal(env.render_state(state), frame)
        assert len({f.tobytes() for f in frames}) > 1


def test_pusht_state_round_trip_then_replay_matches_rollout(pusht):
    """Restore a mid-episode state (block in contact) in a FRESH env; 10 replayed actions must give the
    same states to 1e-6 and the same images."""
    frames, states, actions = rollout(pusht, 5, 40, "pusher")
    # windows that start while the block is being pushed (pymunk's contact caches are then warm)
    pushed = [t for t in range(1, 30) if np.abs(states[t + 1, 7:] - states[t, 7:]).max() > 1.0]
    assert len(pushed) >= 4, "the pusher should be pushing the block"
    fresh = make_env("pusht", image_size=64)
    for t in pushed[:6]:
        fresh.reset(seed=999)
        fresh.set_state(states[t])
        np.testing.assert_array_equal(fresh.get_state(), states[t])
        for k in range(10):
            obs, _, _, _, info = fresh.step(actions[t + k])
            np.testing.assert_allclose(info["state"], states[t + k + 1], atol=1e-6, rtol=0)
            np.testing.assert_array_equal(obs, frames[t + k + 1])


def test_pusht_set_state_restores_the_block_pose_exactly(pusht):
    """The block at rest with the agent far away must stay exactly where it was put: setting the angle
    after the position (gym-pusht's order) would shift it, since the T turns about its centre of mass."""
    state = np.array([60.0, 60.0, 300.0, 280.0, 1.1, 0, 0, 0, 0, 0])
    pusht.reset(options={"state": state})
    after = pusht.step_state(state[:2])  # the agent holds still
    np.testing.assert_allclose(after[2:5], state[2:5], atol=1e-9)
    np.testing.assert_allclose(after[7:], 0.0, atol=1e-9)


def test_pusht_coverage_is_the_env_reward(pusht):
    goal_pose = np.array([60.0, 60.0, 256.0, 256.0, math.pi / 4, 0, 0, 0, 0, 0])  # on gym-pusht's goal region
    assert pusht.coverage(goal_pose) == pytest.approx(1.0)
    far = goal_pose.copy()
    far[2:4] = [120.0, 420.0]
    assert pusht.coverage(far) == pytest.approx(0.0)


# ---------------------------------------------------------------------------------------------- success


def test_pusht_success_and_distance_on_hand_made_states(pusht):
    goal = np.array([100.0, 100.0, 300.0, 300.0, 0.05, 0, 0, 0, 0, 0])

    def moved(da, db, dth):
        s = goal.copy()
        s[0] += da
        s[2] += db
        s[4] = (s[4] + dth) % (2 * math.pi)
        return s

    assert pusht.is_success(moved(10, 9, 0), goal)
    assert not pusht.is_success(moved(11, 9.5, 0), goal)  # 20.5 px in total
    assert pusht.is_success(moved(0, 0, -0.1), goal)  # 0.05 - 0.1 wraps to 2 pi - 0.05
    assert pusht.is_success(moved(0, 0, math.pi / 9 - 0.01), goal)
    assert not pusht.is_success(moved(0, 0, math.pi / 9 + 0.01), goal)
    assert pusht.state_distance(moved(3, 4, 0.2), goal) == pytest.approx(7 + 0.2 * ANGLE_SCALE)
    assert ANGLE_SCALE == pytest.approx(180 / math.pi)


def test_wall_success_and_distances(wall):
    door = 32.0
    goal = np.array([50.0, 10.0, door])
    assert wall.is_success([53.9, 10.0, door], goal)
    assert not wall.is_success([54.1, 10.0, door], goal)
    assert wall.state_distance([47.0, 14.0, door], goal) == pytest.approx(5.0)
    assert wall.room([20.0, 10.0, door]) == 0 and wall.room(goal) == 1
    # straight through the door: nothing to go around
    assert wall.routed_distance([20.0, door, door], [44.0, door, door]) == pytest.approx(24.0)
    # same room: the straight line
    assert wall.routed_distance([5.0, 5.0, door], [20.0, 60.0, door]) == pytest.approx(math.hypot(15, 55))
    # across the wall far from the door: much longer than the straight line
    a, b = [20.0, 5.0, door], [44.0, 5.0, door]
    assert wall.routed_distance(a, b) > wall.state_distance(a, b) + 20


def _reference_route(a, b, door, per_quarter=40):
    """Independent check: Dijkstra over a visibility graph of points sampled on the door-corner circles."""
    from scipy.sparse.csgraph import dijkstra

    r = geo.AGENT_RADIUS
    nodes = [a, b]
    for cx, cy in geo.door_corners(door):
        for th in np.linspace(0, 2 * np.pi, 4 * per_quarter, endpoint=False):
            p = (cx + r * np.cos(th), cy + r * np.sin(th))
            if geo.clearance(*p, door) >= r - 1e-9:
                nodes.append(p)
    nodes = np.array(nodes)
    i, j = np.triu_indices(len(nodes), 1)
    ts = np.linspace(0, 1, 80)[None, :, None]
    pts = nodes[i][:, None] + (nodes[j] - nodes[i])[:, None] * ts
    ok = np.ones(len(i), bool)
    for x0, y0, x1, y1 in geo.wall_pieces(door):
        dx = np.maximum(np.maximum(x0 - pts[..., 0], 0), pts[..., 0] - x1)
        dy = np.maximum(np.maximum(y0 - pts[..., 1], 0), pts[..., 1] - y1)
        ok &= np.hypot(dx, dy).min(axis=1) >= r - 1e-3
    w = np.zeros((len(nodes), len(nodes)))
    length = np.hypot(*(nodes[j] - nodes[i]).T)
    w[i[ok], j[ok]] = length[ok]
    w[j[ok], i[ok]] = length[ok]
    return dijkstra(w, indices=0)[1]


def test_routed_distance_matches_a_visibility_graph():
    rng = np.random.default_rng(0)
    checked = 0
    while checked < 6:
        door = rng.uniform(geo.DOOR_Y_MIN, geo.DOOR_Y_MAX)
        a = (rng.uniform(20, 42), door + rng.uniform(-12, 12)) if checked % 2 else tuple(rng.uniform(3, 61, 2))
        b = tuple(rng.uniform(3, 61, 2))
        if not (geo.is_free(*a, door) and geo.is_free(*b, door)) or geo.segment_is_free(*a, *b, door):
            continue
        assert geo.routed_distance(*a, *b, door) == pytest.approx(_reference_route(a, b, door), abs=5e-3)
        checked += 1


# ---------------------------------------------------------------------------------------------- collisions


def test_wall_blocks_the_agent_outside_the_door(wall):
    wall.reset(options={"state": [24.0, 5.0, 40.0]})  # door spans y 33..47, agent far above it
    for _ in range(40):
        x, y, _ = wall.step_state([2.0, 0.3])  # full speed into the wall, sliding down a bit
        assert x <= geo.LEFT_ROOM_MAX_X + 1e-9
    assert x == pytest.approx(geo.LEFT_ROOM_MAX_X)


def test_wall_lets_the_agent_through_the_door(wall):
    wall.reset(options={"state": [20.0, 40.0, 40.0]})
    for _ in range(12):
        state = wall.step_state([2.0, 0.0])
    assert wall.room(state) == 1 and state[0] == pytest.approx(44.0)


@settings(max_examples=25, deadline=None)
@given(
    door=st.floats(geo.DOOR_Y_MIN, geo.DOOR_Y_MAX),
    start_y=st.floats(geo.ARENA_MIN, geo.ARENA_MAX),
    actions=st.lists(st.tuples(st.floats(-2, 2), st.floats(-2, 2)), min_size=1, max_size=40),
)
def test_wall_agent_never_enters_the_wall(door, start_y, actions):
    env = make_env("wall", image_size=16)
    env.reset(options={"state": [geo.LEFT_ROOM_MAX_X - 0.5, start_y, door]})  # right next to the wall
    start_room = env.room(env.get_state())
    for action in actions:
        x, y, _ = env.step_state(action)
        assert geo.is_free(x, y, door)
        if env.room([x, y, door]) != start_room:  # a crossing must happen through the door
            assert abs(y - door) <= geo.DOOR_HEIGHT / 2 - geo.AGENT_RADIUS + 1e-6


# ---------------------------------------------------------------------------------------------- policies


@pytest.mark.parametrize("noise", [0.0, 0.3])
def test_expert_reaches_cross_room_goals(wall, noise):
    from uva_plan.envs.goals import protocol_goals

    for pair in protocol_goals("wall", 8, seed=int(noise > 0) * 8):
        policy = make_policy("wall", "expert", seed=1, noise=noise)
        wall.reset(options={"state": pair.start_state})
        state = wall.get_state()
        policy.reset(state, pair.goal_state)
        for _ in range(100):
            state = wall.step_state(policy(state))
            if wall.is_success(state, pair.goal_state):
                break
        assert wall.is_success(state, pair.goal_state), (pair, state)


def test_greedy_gets_stuck_behind_the_wall(wall):
    start, goal = [15.0, 58.0, 16.0], [50.0, 58.0, 16.0]
    policy = make_policy("wall", "greedy", seed=0)
    wall.reset(options={"state": start})
    state = wall.get_state()
    policy.reset(state, goal)
    for _ in range(60):
        state = wall.step_state(policy(state))
    assert wall.room(state) == 0 and not wall.is_success(state, goal)


@pytest.mark.parametrize("lead", [0.0, 600.0, float("nan")])
def test_a_pusher_lead_out_of_range_is_one_clear_error(lead):
    with pytest.raises(UserInputError, match="max_lead"):
        make_policy("pusht", "pusher", seed=0, max_lead=lead)


def test_pusher_moves_the_block_in_most_chunks_at_the_human_demos_pace(pusht):
    """Most 16-step windows (the model's action chunk) move the block, at the pace of human PushT demos:
    the target leads the agent by at most 30 px (uncapped, the pusher ran 3x faster than the demos)."""
    moved, windows, leads = 0, 0, []
    for seed in range(2):
        states = pusher_states(pusht, seed, 60)
        assert np.all((states[:, :4] >= 0) & (states[:, :4] <= 512))  # the block stays in the arena
        for t in range(0, 45, 4):
            change = np.hypot(*(states[t + 16, 2:4] - states[t, 2:4])) + np.degrees(abs(states[t + 16, 4] - states[t, 4]))
            moved += change > 2.0
            windows += 1
    assert moved / windows >= 0.8
    policy = make_policy("pusht", "pusher", seed=0)
    pusht.reset(seed=0)
    state = pusht.get_state()
    policy.reset(state)
    for _ in range(40):
        target = policy(state)
        leads.append(np.hypot(*(target - state[0:2])))
        state = pusht.step_state(target)
    assert max(leads) <= 30.0 + 1e-3 and np.mean(leads) > 10.0


# ---------------------------------------------------------------------------------------------- bad input


def test_bad_actions_and_states_raise_clear_errors(wall, pusht):
    wall.reset(seed=0)
    with pytest.raises(UserInputError, match=r"action contains NaN"):
        wall.step([np.nan, 0.0])
    with pytest.raises(UserInputError, match=r"action has shape \(3,\); expected \(2,\)"):
        wall.step([0.0, 0.0, 0.0])
    with pytest.raises(UserInputError, match="overlapping the wall"):
        wall.set_state([32.0, 5.0, 40.0])
    with pytest.raises(UserInputError, match=r"door_center_y=60; expected a value in \[16, 48\]"):
        wall.set_state([10.0, 5.0, 60.0])
    with pytest.raises(UserInputError, match=r"PushT state has shape \(5,\); expected \(10,\)"):
        pusht.set_state([1.0, 2.0, 3.0, 4.0, 0.0])
    with pytest.raises(UserInputError, match=r"positions in px, within \[-512, 1024\]"):
        pusht.render_state([6000.0, 2.0, 3.0, 4.0, 0.0, 0, 0, 0, 0, 0])
    with pytest.raises(UserInputError, match="unknown policy 'expert' for env 'pusht'"):
        make_policy("pusht", "expert")
    pusht.reset(seed=0)
    before = pusht.get_state()
    pusht.step([1e6, -5.0])  # out-of-range targets are clipped into the workspace
    assert np.all(np.isfinite(pusht.get_state())) and not np.array_equal(before, pusht.get_state())


def _roll_out(wall, kind: str, seed: int, steps: int):
    """A Wall policy's actions [steps, 2] from a seeded start, and how many moves a wall or edge halved."""
    policy = make_policy("wall", kind, seed=seed)
    _, info = wall.reset(seed=seed)
    state = info["state"]
    policy.reset(state)
    actions, blocked = [], 0
    for _ in range(steps):
        a = policy(state)
        new = wall.step_state(a)
        blocked += np.hypot(*a) > 0 and np.hypot(*(new[:2] - state[:2])) < 0.5 * np.hypot(*a)
        actions.append(a)
        state = new
    return np.stack(actions), blocked


def test_wander_holds_fast_headings_and_bumps_into_walls(wall):
    """The wander policy covers what planners ask the world model about: long straight moves at speed,
    turns, and blocked moves (which per-step uniform noise and the expert rarely show)."""
    actions, blocked = _roll_out(wall, "wander", seed=1, steps=200)
    assert np.all(np.abs(actions) <= 2.0 + 1e-6)
    assert np.abs(actions).max(axis=1).mean() > 1.0  # fast, unlike uniform per-step noise's net motion
    same = np.all(actions[1:] == actions[:-1], axis=1)
    assert same.mean() > 0.7  # headings are held for several steps ...
    assert (~same).sum() >= 10  # ... and change
    assert blocked > 0


def _run_lengths(mask: np.ndarray) -> np.ndarray:
    """Lengths of the runs of True in a 1-D mask."""
    edges = np.flatnonzero(np.diff(np.r_[0, mask.astype(int), 0]))
    return edges[1::2] - edges[::2]


def test_dash_rests_then_runs_at_full_speed_into_walls(wall):
    """The dash policy makes what the still-start direction test asks about: still histories (rests of
    12 or more steps) followed by full-speed straight chunks, many of them blocked by a wall."""
    actions, blocked = _roll_out(wall, "dash", seed=3, steps=400)
    assert np.all(np.abs(actions) <= 2.0 + 1e-6)
    moving = np.abs(actions).max(axis=1) > 0
    dashes, rests = _run_lengths(moving[:-24]), _run_lengths(~moving)  # the last dash may be cut off
    assert dashes.min() >= 8  # two dashes may follow each other without a rest
    assert (np.abs(actions[moving]).max(axis=1) == 2.0).mean() > 0.5  # mostly full speed on some axis
    assert (rests >= 12).sum() >= 3 and rests.max() <= 16
    assert blocked > 20


@pytest.mark.parametrize("name", ["wall", "pusht"])
def test_hold_actions_keep_the_agent_still(name):
    """What a goal-reaching policy does at its goal: the agent stays (PushT: within a pixel, the PD
    controller's residual motion)."""
    from uva_plan.envs import hold_actions

    env = make_env(name, image_size=16)
    env.reset(seed=3)
    state = env.get_state()
    if name == "pusht":
        state[5:] = 0.0  # at rest
        env.set_state(state)
    for _ in range(5):
        after = env.step_state(hold_actions(name, state[None])[0])
    assert np.hypot(*(after[:2] - state[:2])) < 1.0


def test_pusht_greedy_drives_the_agent_to_the_goals_agent_position():
    env = make_env("pusht", image_size=16)
    env.reset(seed=5)
    start = env.get_state()
    goal = start.copy()
    goal[0:2] = [150.0, 380.0]
    greedy = make_policy("pusht", "greedy")
    with pytest.raises(UserInputError, match="goal"):
        greedy(start)
    greedy.reset(start, goal_state=goal)
    state = start
    for _ in range(30):
        state = env.step_state(greedy(state))
    assert np.hypot(*(state[0:2] - goal[0:2])) < 5.0
