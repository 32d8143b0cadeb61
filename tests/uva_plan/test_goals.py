"""The goal protocol and goal files."""

import json

import numpy as np
import pytest

from tests.uva_plan.conftest import pusher_states
from uva_plan.envs import make_env
from uva_plan.envs.goals import EVAL_SEED_OFFSET, GoalPair, load_goals, protocol_goals, save_goals
from uva_plan.errors import UserInputError


def test_wall_goals_cross_rooms_and_are_reproducible():
    env = make_env("wall", image_size=16)
    pairs = protocol_goals("wall", 20, seed=0)
    assert len(pairs) == 20
    for p in pairs:
        env.check_state(p.start_state)
        env.check_state(p.goal_state)
        assert p.start_state[2] == p.goal_state[2]  # one door per episode
        assert env.room(p.start_state) != env.room(p.goal_state)
    assert {env.room(p.start_state) for p in pairs} == {0, 1}
    assert protocol_goals("wall", 20, seed=0) == pairs
    assert protocol_goals("wall", 3, seed=1)[0] == pairs[1]  # pair i uses seed offset + seed + i
    assert EVAL_SEED_OFFSET == 1_000_000


def test_pusht_goals_are_reachable_25_step_segments():

    pairs = protocol_goals("pusht", 2, seed=3)
    env = make_env("pusht", image_size=16)
    for p in pairs:
        assert len(p.start_state) == len(p.goal_state) == 10
        assert not env.is_success(p.start_state, p.goal_state)
    assert protocol_goals("pusht", 2, seed=3) == pairs
    # Replaying the pusher from the start state reaches the goal state: the goal is reachable by design.
    seed = EVAL_SEED_OFFSET + 3
    trajectory = pusher_states(env, seed, 80)
    hits = np.where(np.all(trajectory == np.array(pairs[0].start_state), axis=1))[0]
    assert hits.size == 1
    np.testing.assert_array_equal(trajectory[hits[0] + 25], pairs[0].goal_state)


def test_goal_file_round_trip_is_atomic(tmp_path):
    pairs = protocol_goals("wall", 4, seed=2)
    path = tmp_path / "goals.json"
    save_goals(path, pairs)
    assert [f.name for f in tmp_path.iterdir()] == ["goals.json"]
    assert load_goals(path, "wall") == pairs
    data = json.loads(path.read_text())
    assert set(data[0]) == {"start_state", "goal_state"}
    assert GoalPair.from_json(data[1]) == pairs[1]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "not valid JSON"),
        ("{}", "expected a non-empty JSON list"),
        ('[{"start_state": [1, 2, 30]}]', "expected an object with 'start_state' and 'goal_state'"),
        ('[{"start_state": [10, 10, 30], "goal_state": [50, 10]}]', r"goal_state is \[50, 10\]; expected 3 finite numbers"),
        ('[{"start_state": [10, NaN, 30], "goal_state": [50, 10, 30]}]', "expected 3 finite numbers"),
        ('[{"start_state": [32, 5, 40], "goal_state": [50, 10, 40]}]', "overlapping the wall"),
        ('[{"start_state": [10, 10, 30], "goal_state": [50, 10, 31]}]', "expected the same door"),
    ],
)
def test_bad_goal_files_raise_one_clear_error(tmp_path, content, message):
    path = tmp_path / "g.json"
    path.write_text(content)
    with pytest.raises(UserInputError, match=message):
        load_goals(path, "wall")


def test_goal_file_for_another_env_or_missing(tmp_path):
    path = tmp_path / "wall.json"
    save_goals(path, protocol_goals("wall", 1))
    with pytest.raises(UserInputError, match=r"expected 10 finite numbers \(pusht state layout\)"):
        load_goals(path, "pusht")
    with pytest.raises(UserInputError, match="does not exist"):
        load_goals(tmp_path / "missing.json", "wall")
    with pytest.raises(UserInputError, match="folder .* does not exist"):
        save_goals(tmp_path / "no" / "g.json", [])
    with pytest.raises(UserInputError, match="expected an integer >= 1"):
        protocol_goals("wall", 0)


def test_goal_files_follow_the_users_umask(tmp_path):
    import os

    old = os.umask(0o022)
    try:
        save_goals(tmp_path / "goals.json", protocol_goals("wall", 2))
    finally:
        os.umask(old)
    assert (tmp_path / "goals.json").stat().st_mode & 0o777 == 0o644
