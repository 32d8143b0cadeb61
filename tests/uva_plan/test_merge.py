"""`uva-plan merge-data`: one buffer from several, a run's held-out episodes kept out, bad input refused."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from uva_plan.cli import main
from uva_plan.collection import collect_dataset
from uva_plan.data import load_replay_buffer
from uva_plan.data.merge import merge_replay_buffers
from uva_plan.errors import UserInputError


@pytest.fixture(scope="module")
def buffers(tmp_path_factory):
    d = tmp_path_factory.mktemp("merge")
    collect_dataset("wall", 4, max_steps=6, policy="expert", seed=0, out=d / "a.zarr")
    collect_dataset("wall", 2, max_steps=5, policy="box", seed=50, out=d / "b.zarr")
    return d


def test_merge_keeps_every_episode_in_order_with_its_policy(buffers, tmp_path):
    r = merge_replay_buffers([buffers / "a.zarr", buffers / "b.zarr"], tmp_path / "m.zarr")
    a, b, m = (load_replay_buffer(p) for p in (buffers / "a.zarr", buffers / "b.zarr", tmp_path / "m.zarr"))
    assert r["episodes"] == 6 and r["steps"] == a.n_steps + b.n_steps
    assert np.array_equal(m.img, np.concatenate([a.img, b.img])) and np.array_equal(m.state, np.concatenate([a.state, b.state]))
    assert list(m.episode_lengths) == [6] * 4 + [5] * 2
    assert m.attrs["episode_policies"] == ["expert"] * 4 + ["box"] * 2


def test_a_runs_held_out_episodes_stay_out(buffers, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    from uva_plan.training import RUN_FILE

    (run / RUN_FILE).write_text(json.dumps({"train_config": {"data": str(buffers / "a.zarr")},
                                            "train_episodes": [0, 2, 3], "val_episodes": [1]}))
    r = merge_replay_buffers([buffers / "a.zarr", buffers / "b.zarr"], tmp_path / "m.zarr", held_out_of=run)
    assert r["per_input"] == {str(buffers / "a.zarr"): 3, str(buffers / "b.zarr"): 2}
    a, m = load_replay_buffer(buffers / "a.zarr"), load_replay_buffer(tmp_path / "m.zarr")
    assert np.array_equal(m.img[6:12], a.img[12:18])  # episode 1 of a was skipped


def test_box_wandering_draws_its_velocities_uniformly_from_the_whole_action_box():
    from uva_plan.envs.policies import make_policy

    pol = make_policy("wall", "box", seed=3, min_hold=1, max_hold=1)
    pol.reset(np.array([10.0, 10.0, 30.0]))
    acts = np.stack([pol(None) for _ in range(4000)])
    assert np.all(np.abs(acts) <= 2.0)
    assert abs(np.abs(acts).mean() - 1.0) < 0.05  # E|U(-2, 2)| = 1 per axis
    assert (np.abs(acts).min(axis=1) > 1.6).mean() > 0.03  # both axes fast: the box's corners (4% expected)


def test_bad_merges_are_one_line_and_write_nothing(buffers, tmp_path):
    collect_dataset("pusht", 1, max_steps=3, policy="random", seed=0, out=tmp_path / "p.zarr")
    with pytest.raises(UserInputError, match="env"):
        merge_replay_buffers([buffers / "a.zarr", tmp_path / "p.zarr"], tmp_path / "m.zarr")
    res = CliRunner().invoke(main, ["merge-data", "--data", str(buffers / "a.zarr"), "--data", str(buffers / "a.zarr"),
                                    "--out", str(buffers / "a.zarr")])
    assert res.exit_code == 2 and "one of the inputs" in res.output and len(res.output.strip().splitlines()) == 1
    assert not (tmp_path / "m.zarr").exists()
