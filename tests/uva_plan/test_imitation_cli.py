"""`uva-plan imitate`: what a run writes, and bad input answered with one line, exit code 2 and nothing
written."""

from __future__ import annotations

import json

import imageio.v3 as iio
import numpy as np
import pytest
from click.testing import CliRunner

from tests.uva_plan.test_imitation import expert_demo, tiny_wall_model
from uva_plan.cli import main

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A tiny Wall checkpoint, a zarr demo (with states and its true actions) and its GIF."""
    from uva_plan.data import ReplayBuffer, save_replay_buffer
    from world_model import save_checkpoint

    root = tmp_path_factory.mktemp("imitate")
    save_checkpoint(tiny_wall_model(), root / "run")
    frames, actions, states = expert_demo(steps=20, seed=7)
    # A buffer row per frame: img[i] is the frame before action[i]; the final frame's action is unused.
    rows = np.concatenate([actions, actions[-1:]])
    save_replay_buffer(ReplayBuffer(img=frames, action=rows, state=states.astype(np.float32),
                                    episode_ends=np.array([len(frames)])), root / "demo.zarr")
    iio.imwrite(root / "demo.gif", frames, extension=".gif", duration=100, loop=0)
    iio.imwrite(root / "short.gif", frames[:5], extension=".gif", duration=100, loop=0)
    gray = root / "gray"
    gray.mkdir()
    for t in range(20):
        iio.imwrite(gray / f"{t:03d}.png", frames[t, :, :, 0])
    return root, frames, actions, states


def imitate(*args):
    return CliRunner().invoke(main, ["imitate", *map(str, args)])


def imitate_ok(root, video, mode, out) -> dict:
    """Run `uva-plan imitate` on the fixture's run (one label sample) and return its results.json."""
    result = imitate("--checkpoint", root / "run", "--video", video, "--mode", mode, "--env", "wall", "--out", out,
                     "--samples", "1")
    assert result.exit_code == 0, result.output
    return json.loads((out / "results.json").read_text())


def test_replay_of_a_zarr_episode_writes_labels_results_and_gif(files, tmp_path):
    root, frames, actions, _ = files
    out = tmp_path / "out"
    result = imitate("--checkpoint", root / "run", "--video", root / "demo.zarr", "--mode", "replay", "--env", "wall",
                     "--out", out, "--samples", "1")
    assert result.exit_code == 0, result.output
    payload = json.loads((out / "results.json").read_text())
    assert payload["n_frames"] == len(frames) and payload["mode"] == "replay"
    assert isinstance(payload["action_r2"], float) and payload["action_mse"] >= 0
    methods = payload["methods"]
    assert set(methods) == {"replay", "replay (true actions)"}
    assert methods["replay (true actions)"]["success_rate"] == 1.0  # the harness reproduces the demo
    assert methods["replay"]["mean_final_distance"] is not None
    labels = np.load(out / "actions.npz")
    assert labels["actions"].shape == actions.shape
    np.testing.assert_allclose(labels["true_actions"], actions)
    gif = iio.imread(out / "imitation.gif", index=None)
    assert len(gif) == len(frames) and gif.shape[2] > gif.shape[1]  # two panels side by side
    assert "Imitation on wall" in result.output


@pytest.mark.parametrize("mode, extra, expected", [
    ("track", ["--subgoal-every", "8"], {"track", "replay (true actions)"}),
    ("bc", ["--bc-steps", "2"], {"bc (pseudo labels)", "bc (true labels)", "replay (true actions)"}),
])
def test_track_and_bc_modes_report_every_method(files, tmp_path, mode, extra, expected):
    root = files[0]
    out = tmp_path / mode
    result = imitate("--checkpoint", root / "run", "--video", root / "demo.zarr", "--mode", mode, "--env", "wall",
                     "--out", out, "--samples", "1", *extra)
    assert result.exit_code == 0, result.output
    payload = json.loads((out / "results.json").read_text())
    methods = payload["methods"]
    assert set(methods) == expected
    if mode == "track":  # the cost that ran, resolved from the default, and its population
        assert payload["options"]["track_cost"] == "subgoal" and payload["track_population"] == [64, 3]
    true = methods["replay (true actions)"]
    assert true["success_rate"] == 1.0 and true["mean_final_distance"] == pytest.approx(0.0, abs=1e-4)
    for res in methods.values():  # one demo: each method reached its end or did not, at a real distance
        assert res["success_rate"] in (0.0, 1.0) and np.isfinite(res["mean_final_distance"])
    assert (out / "imitation.gif").is_file()


def test_labelling_a_gif_needs_no_state_and_knows_no_true_actions(files, tmp_path):
    root, frames, _, _ = files
    out = tmp_path / "labels"
    payload = imitate_ok(root, root / "demo.gif", "label", out)
    assert payload["action_r2"] is None and payload["methods"] == {}
    assert sorted(p.name for p in out.iterdir()) == ["actions.csv", "actions.npz", "results.json"]
    assert len((out / "actions.csv").read_text().splitlines()) == len(frames)  # header + T-1 steps


@pytest.mark.parametrize(
    "video, extra, message",
    [
        ("missing.mp4", [], "does not exist"),
        ("short.gif", [], "has 5 frame"),
        ("gray", [], "grayscale"),
        ("demo.gif", ["--mode", "replay"], "expected --start-state"),
        ("demo.gif", ["--mode", "replay", "--start-state", "1,2"], "Wall state has shape"),
        ("demo.gif", ["--mode", "replay", "--start-state", "1,x,3"], "not a comma-separated list"),
        ("demo.zarr", ["--episode", "3"], "episode 3 is not in"),
        ("demo.gif", ["--checkpoint", "nowhere"], "nowhere"),
        ("demo.gif", ["--track-cost", "latent_l2"], "'latent_l2' is not one of 'subgoal', 'subgoal_pose_steps'"),
        ("demo.gif", ["--track-cost", "subgoal"], "applies to --mode track"),
        ("demo.zarr", ["--mode", "track", "--track-cost", "subgoal_pose_steps"], "reads PushT's agent and T"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(files, tmp_path, video, extra, message):
    root = files[0]
    out = tmp_path / "out"
    args = ["--checkpoint", root / "run", "--video", root / video, "--mode", "label", "--env", "wall", "--out", out]
    result = imitate(*args, *extra)  # later options win in click, so extra can override the defaults
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], result.output
    assert not out.exists()
