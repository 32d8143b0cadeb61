"""Scripted collection into replay buffers, and the `uva-plan collect` command's bad-input handling."""

import numpy as np
import pytest
from click.testing import CliRunner

from uva_plan.cli import main
from uva_plan.collection import collect_dataset
from uva_plan.data import load_replay_buffer
from uva_plan.envs import make_env
from uva_plan.errors import UserInputError


def test_collect_wall_writes_a_consistent_buffer(tmp_path):
    out = tmp_path / "nested" / "wall.zarr"  # missing parent folders are created
    summary = collect_dataset("wall", episodes=3, max_steps=12, policy="mixed", image_size=32, seed=5, out=out)
    assert summary["episodes"] == 3 and summary["steps"] == 36 and summary["path"] == str(out)
    assert summary["steps_per_second"] > 0
    buf = load_replay_buffer(out)
    assert buf.img.shape == (36, 32, 32, 3) and buf.action.shape == (36, 2) and buf.state.shape == (36, 3)
    assert buf.episode_ends.tolist() == [12, 24, 36]
    attrs = buf.attrs
    assert attrs["env_id"] == "uva_plan/Wall-v0" and attrs["env_name"] == "wall" and attrs["image_size"] == 32
    assert attrs["action_low"] == [-2.0, -2.0] and attrs["action_high"] == [2.0, 2.0]
    assert attrs["policy"] == "mixed" and attrs["seed"] == 5 and attrs["format_version"] == 1
    assert attrs["state_names"] == ["agent_x", "agent_y", "door_center_y"]
    assert len(attrs["episode_policies"]) == 3 and set(attrs["episode_policies"]) <= {"expert", "random"}
    assert np.all(np.abs(buf.action) <= 2.0)
    env = make_env("wall", image_size=32)
    for start in (0, 12, 24):  # each episode starts from env.reset(seed=seed + i), and frames show the states
        env.reset(seed=5 + start // 12)
        np.testing.assert_allclose(buf.state[start], env.get_state(), rtol=1e-6)
        np.testing.assert_array_equal(buf.img[start], env.render_state(env.get_state()))
    # img[t+1] is the observation after action[t]
    env.reset(options={"state": buf.state[3].astype(np.float64)})
    np.testing.assert_allclose(env.step_state(buf.action[3]), buf.state[4], atol=1e-4)


def test_episode_content_depends_only_on_its_seed(tmp_path):
    collect_dataset("wall", episodes=2, max_steps=10, policy="expert", seed=0, out=tmp_path / "a.zarr")
    collect_dataset("wall", episodes=1, max_steps=10, policy="expert", seed=1, out=tmp_path / "b.zarr")
    a, b = load_replay_buffer(tmp_path / "a.zarr"), load_replay_buffer(tmp_path / "b.zarr")
    np.testing.assert_array_equal(a.img[10:], b.img)
    np.testing.assert_array_equal(a.action[10:], b.action)
    assert not np.array_equal(a.state[:10], a.state[10:])  # and episodes differ from each other


def test_collect_pusht_with_the_pusher(tmp_path):
    collect_dataset("pusht", episodes=1, max_steps=6, policy="pusher", image_size=16, out=tmp_path / "p.zarr")
    buf = load_replay_buffer(tmp_path / "p.zarr")
    assert buf.state.shape == (6, 10) and buf.img.shape == (6, 16, 16, 3)
    assert buf.attrs["action_high"] == [512.0, 512.0] and np.all((buf.action >= 0) & (buf.action <= 512))


def test_failed_collection_leaves_nothing_behind(tmp_path, monkeypatch):
    import uva_plan.envs.policies as policies

    calls = {"n": 0}
    original = policies.WallRandom.__call__

    def breaks_later(self, state):
        calls["n"] += 1
        if calls["n"] > 15:
            raise KeyboardInterrupt
        return original(self, state)

    monkeypatch.setattr(policies.WallRandom, "__call__", breaks_later)
    with pytest.raises(KeyboardInterrupt):
        collect_dataset("wall", episodes=3, max_steps=10, policy="random", out=tmp_path / "sub" / "x.zarr")
    assert list(tmp_path.iterdir()) == []


def test_collect_rejects_bad_arguments(tmp_path):
    with pytest.raises(UserInputError, match="policy 'pusher' is not available for wall; expected one of: random, expert, wander, box, dash, mixed"):
        collect_dataset("wall", 1, 10, policy="pusher", out=tmp_path / "x.zarr")
    with pytest.raises(UserInputError, match=r"max_steps is 1; expected an integer >= 2"):
        collect_dataset("wall", 1, 1, out=tmp_path / "x.zarr")
    with pytest.raises(UserInputError, match="unknown environment 'maze'"):
        collect_dataset("maze", 1, 10, out=tmp_path / "x.zarr")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------------- CLI


def run_cli(*args):
    result = CliRunner().invoke(main, ["collect", *args])
    return result, [line for line in result.output.splitlines() if line.strip()]


def assert_user_error(result, lines, message):
    """Exit code 2, no traceback, and the problem stated on exactly one `Error:` line."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    errors = [line for line in lines if line.startswith("Error:")]
    assert len(errors) == 1 and message in errors[0], result.output


def test_cli_collects(tmp_path):
    out = tmp_path / "w.zarr"
    result, lines = run_cli("--env", "wall", "--episodes", "2", "--max-steps", "5", "--image-size", "16", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert f"Wrote 2 episodes, 10 steps to {out}" in result.output
    assert load_replay_buffer(out).n_steps == 10


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--env", "maze", "--episodes", "1"], "'maze' is not one of 'wall', 'pusht'"),
        (["--env", "wall", "--episodes", "0"], "0 is not in the range x>=1"),
        (["--env", "wall", "--episodes", "1", "--image-size", "8"], "8 is not in the range 16<=x<=512"),
        (["--env", "wall", "--episodes", "1", "--max-steps", "1"], "1 is not in the range x>=2"),
        (["--env", "wall", "--episodes", "1", "--policy", "pusher"], "policy 'pusher' is not available for wall"),
    ],
)
def test_cli_bad_values(tmp_path, args, message):
    result, lines = run_cli(*args, "--out", str(tmp_path / "x.zarr"))
    assert_user_error(result, lines, message)
    assert list(tmp_path.iterdir()) == []


def test_cli_existing_output_needs_overwrite(tmp_path):
    out = tmp_path / "w.zarr"
    base = ["--env", "wall", "--episodes", "1", "--max-steps", "4", "--image-size", "16", "--out", str(out)]
    assert run_cli(*base)[0].exit_code == 0
    result, lines = run_cli(*base[:3], "2", *base[4:])
    assert_user_error(result, lines, f"output {out} already exists")
    assert lines == [lines[0]]  # library errors are exactly one line
    assert load_replay_buffer(out).n_episodes == 1
    result, _ = run_cli(*base[:3], "2", *base[4:], "--overwrite")
    assert result.exit_code == 0 and load_replay_buffer(out).n_episodes == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.zarr"]


def test_cli_unwritable_output(tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder")
    result, lines = run_cli("--env", "wall", "--episodes", "1", "--out", str(blocker / "x.zarr"))
    assert_user_error(result, lines, "is not a folder")
    assert len(lines) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt"]
