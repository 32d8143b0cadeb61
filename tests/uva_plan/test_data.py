"""Replay buffers (zarr round trip, foreign v2 buffers, validation) and training windows."""

import numpy as np
import pytest
import torch
import zarr

from uva_plan.data import (
    ReplayBuffer,
    WindowDataset,
    WindowSpec,
    load_replay_buffer,
    save_replay_buffer,
    split_episodes,
)
from uva_plan.errors import UserInputError


def make_buffer(lengths=(10, 7, 12), size=8):
    """Frames whose pixels hold the step index, actions = (step, -step), so windows are easy to read."""
    n = sum(lengths)
    steps = np.arange(n)
    img = np.broadcast_to(steps[:, None, None, None], (n, size, size, 3)).astype(np.uint8)
    action = np.stack([steps, -steps], axis=1).astype(np.float32)
    state = np.stack([steps, steps * 2.0, np.ones(n)], axis=1).astype(np.float32)
    attrs = {"action_low": [0.0, -float(n)], "action_high": [float(n), 0.0], "env_name": "wall"}
    return ReplayBuffer(img=img, action=action, state=state, episode_ends=np.cumsum(lengths), attrs=attrs)


def ids(frames):
    return np.asarray(frames)[..., 0, 0, 0].astype(int).tolist()


# ---------------------------------------------------------------------------------------------- storage


def test_zarr_round_trip_keeps_arrays_and_attrs(tmp_path):
    buf = make_buffer()
    path = tmp_path / "d.zarr"
    save_replay_buffer(buf, path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.zarr"]  # no temp folder left behind
    back = load_replay_buffer(path)
    for key in ("img", "action", "state", "episode_ends"):
        np.testing.assert_array_equal(getattr(back, key), getattr(buf, key))
    assert back.img.dtype == np.uint8 and back.action.dtype == np.float32 and back.episode_ends.dtype == np.int64
    assert back.attrs["action_high"] == [29.0, 0.0] and back.attrs["format_version"] == 1
    group = zarr.open_group(str(path), mode="r")
    assert group.metadata.zarr_format == 3
    assert set(group["data"].array_keys()) == {"img", "action", "state"}


def test_existing_output_is_kept_unless_overwrite(tmp_path):
    path = tmp_path / "d.zarr"
    save_replay_buffer(make_buffer(lengths=(5,)), path)
    with pytest.raises(UserInputError, match="already exists"):
        save_replay_buffer(make_buffer(), path)
    assert load_replay_buffer(path).n_steps == 5
    save_replay_buffer(make_buffer(), path, overwrite=True)
    assert load_replay_buffer(path).n_steps == 29
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.zarr"]
    precious = tmp_path / "notes"
    precious.mkdir()
    (precious / "keep.txt").write_text("x")
    with pytest.raises(UserInputError, match="is a folder but not a zarr store"):
        save_replay_buffer(make_buffer(), precious, overwrite=True)
    assert (precious / "keep.txt").exists()


def write_foreign_v2(path, n=20, float_images=False):
    """A Diffusion-Policy-style buffer: zarr v2, 96x96 images, extra keys, no attributes."""
    root = zarr.open_group(str(path), mode="w", zarr_format=2)
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, size=(n, 96, 96, 3)).astype(np.float32 if float_images else np.uint8)
    root.create_array("data/img", data=img, chunks=(8, 96, 96, 3))
    root.create_array("data/action", data=rng.uniform(0, 512, size=(n, 2)).astype(np.float32))
    root.create_array("data/state", data=rng.uniform(0, 512, size=(n, 5)).astype(np.float32))
    root.create_array("data/keypoint", data=rng.uniform(0, 512, size=(n, 9, 2)).astype(np.float32))
    root.create_array("meta/episode_ends", data=np.array([12, n], dtype=np.int64))
    return img


@pytest.mark.parametrize("float_images", [False, True])
def test_foreign_v2_buffer_loads_and_windows_use_data_limits(tmp_path, float_images):
    img = write_foreign_v2(tmp_path / "dp.zarr", float_images=float_images)
    buf = load_replay_buffer(tmp_path / "dp.zarr")
    assert buf.attrs == {} and buf.img.shape == (20, 96, 96, 3) and buf.img.dtype == np.uint8
    np.testing.assert_array_equal(buf.img, img.astype(np.uint8))
    assert buf.state.shape == (20, 5) and list(buf.episode_ends) == [12, 20]
    ds = WindowDataset(buf, WindowSpec(2, 2, 2))
    acts = np.concatenate([ds[i]["actions"] for i in range(len(ds))])
    assert acts.min() >= -1 - 1e-6 and acts.max() <= 1 + 1e-6 and acts.min() < -0.9 and acts.max() > 0.9


def test_action_free_buffer_loads_only_when_allowed(tmp_path):
    write_foreign_v2(tmp_path / "v.zarr")
    root = zarr.open_group(str(tmp_path / "v.zarr"), mode="a")
    del root["data/action"]
    with pytest.raises(UserInputError, match="has no data/action"):
        load_replay_buffer(tmp_path / "v.zarr")
    assert load_replay_buffer(tmp_path / "v.zarr", require_actions=False).action.shape == (20, 0)


def test_bad_buffers_raise_one_clear_error(tmp_path):
    with pytest.raises(UserInputError, match="does not exist; expected a zarr replay buffer"):
        load_replay_buffer(tmp_path / "missing.zarr")
    (tmp_path / "plain").mkdir()
    with pytest.raises(UserInputError, match="not a readable zarr group|has no data/img"):
        load_replay_buffer(tmp_path / "plain")

    save_replay_buffer(make_buffer(), tmp_path / "a.zarr")
    root = zarr.open_group(str(tmp_path / "a.zarr"), mode="a")
    root["meta/episode_ends"][-1] = 40
    with pytest.raises(UserInputError, match="ends at 40 but data/img has 29 steps"):
        load_replay_buffer(tmp_path / "a.zarr")

    save_replay_buffer(make_buffer(), tmp_path / "b.zarr")
    root = zarr.open_group(str(tmp_path / "b.zarr"), mode="a")
    del root["data/state"]
    root.create_array("data/state", data=np.zeros((5, 3), np.float32))
    with pytest.raises(UserInputError, match=r"data/state has shape \(5, 3\); expected \[29, \*\]"):
        load_replay_buffer(tmp_path / "b.zarr")

    save_replay_buffer(make_buffer(), tmp_path / "c.zarr")
    chunk = next(p for p in (tmp_path / "c.zarr" / "data" / "img").rglob("*") if p.is_file() and p.name != "zarr.json")
    chunk.write_bytes(b"\x00garbage")
    with pytest.raises(UserInputError, match="data/img cannot be read"):
        load_replay_buffer(tmp_path / "c.zarr")

    with pytest.raises(UserInputError, match=r"data/action has shape \(3, 2\); expected \[4, \*\]"):
        ReplayBuffer(np.zeros((4, 8, 8, 3), np.uint8), np.zeros((3, 2), np.float32), np.zeros((4, 1), np.float32),
                     np.array([4]))


# ---------------------------------------------------------------------------------------------- windows


def test_windows_at_episode_boundaries():
    buf = make_buffer()  # episodes: steps 0-9, 10-16, 17-28
    spec = WindowSpec(n_history=3, n_future=2, frame_stride=2)
    ds = WindowDataset(buf, spec, goal_max_steps=5)
    assert len(ds) == 29 and spec.chunk_len == 4

    first = ds[10]  # first step of episode 1: history clamps to its first frame
    assert ids(first["history"]) == [10, 10, 10]
    assert ids(first["future"]) == [12, 14]
    np.testing.assert_allclose(buf.action[10:14], ds.normalizer.unnormalize(first["actions"]), atol=1e-5)

    near_end = ds[15]  # one before the last step of episode 1 (last = 16)
    assert ids(near_end["history"]) == [11, 13, 15]
    assert ids(near_end["future"]) == [16, 16]
    assert ds.normalizer.unnormalize(near_end["actions"])[:, 0].round().tolist() == [15, 16, 16, 16]

    last = ds[16]
    assert ids(last["future"]) == [16, 16] and ids([last["goal"]]) == [16] and float(last["goal_steps"]) == 0.0

    for i in range(len(ds)):  # goals stay in their episode, 1..goal_max_steps ahead unless clamped
        item = ds[i]
        t = ids(item["history"])[-1]
        g = ids([item["goal"]])[0]
        end = next(e for e in buf.episode_ends if t < e) - 1
        assert float(item["goal_steps"]) == g - t and t <= g <= min(t + 5, end) and (g > t or t == end)
        assert item["history"].shape == (3, 8, 8, 3) and item["actions"].shape == (4, 2)


def test_the_planner_history_pads_at_the_episode_start_as_the_training_windows_do():
    """One stride arithmetic: an EnvBatch's history stack matches the dataset window at every step."""
    from types import SimpleNamespace

    from uva_plan.env_batch import EnvBatch

    spec = WindowSpec.of(SimpleNamespace(n_history=3, n_future=2, frame_stride=2))
    assert spec.history_offsets().tolist() == [-4, -2, 0] and spec.future_offsets(2).tolist() == [2, 4, 6, 8]
    batch = EnvBatch.__new__(EnvBatch)
    for t in range(7):
        batch.frames = [np.arange(t + 1).reshape(-1, 1, 1, 1).repeat(8, 1).repeat(8, 2).repeat(3, 3).astype(np.uint8)]
        batch.steps = t
        got = batch.history(spec.n_history, spec.frame_stride)[0, :, 0, 0, 0].tolist()
        assert got == ids(WindowDataset(make_buffer(), spec)[t]["history"]), t  # episode 0 starts at step 0


def test_goal_actions_hold_still_from_the_goal_step_on():
    """A near hindsight goal: the policy's targets are the recorded actions up to the goal, then the
    hold action of the goal's state (here its step index, so the test can read which state it was)."""
    buf = make_buffer()
    spec = WindowSpec(n_history=2, n_future=2, frame_stride=2)  # chunks of 4 actions
    hold = np.stack([np.arange(buf.n_steps), -np.arange(buf.n_steps)], axis=1).astype(np.float32) * 0.5
    ds = WindowDataset(buf, spec, goal_max_steps=6, hold_actions=hold)
    assert "goal_actions" not in WindowDataset(buf, spec)[0]
    near = far = 0
    for i in range(len(ds)):
        item = ds[i]
        t, k = ids(item["history"])[-1], int(item["goal_steps"])
        targets = ds.normalizer.unnormalize(item["goal_actions"])[:, 0]
        recorded = ds.normalizer.unnormalize(item["actions"])[:, 0]
        np.testing.assert_allclose(targets[:k], recorded[:k], atol=1e-4)
        np.testing.assert_allclose(targets[k:], 0.5 * (t + k), atol=1e-4)
        near, far = near + (k < 4), far + (k >= 4)
    assert near and far
    with pytest.raises(UserInputError, match="hold_actions have shape"):
        WindowDataset(buf, spec, hold_actions=hold[:-1])


def test_goal_draws_are_deterministic_and_change_with_epoch():
    buf = make_buffer(lengths=(60, 60))
    ds = WindowDataset(buf, WindowSpec(2, 2, 2), goal_max_steps=30, seed=1)
    first = [float(ds[i]["goal_steps"]) for i in range(40)]
    assert first == [float(WindowDataset(buf, WindowSpec(2, 2, 2), goal_max_steps=30, seed=1)[i]["goal_steps"]) for i in range(40)]
    ds.set_epoch(1)
    assert first != [float(ds[i]["goal_steps"]) for i in range(40)]
    ds.set_epoch(0)
    assert first == [float(ds[i]["goal_steps"]) for i in range(40)]


def test_episode_subset_latent_frames_and_default_collate():
    buf = make_buffer()
    latents = np.arange(buf.n_steps, dtype=np.float32)[:, None, None, None] * np.ones((1, 2, 2, 4), np.float32)
    ds = WindowDataset(buf, WindowSpec(2, 2, 3), episodes=[2], frames=latents)
    assert len(ds) == 12
    item = ds[0]
    assert set(item) == {"history_latents", "future_latents", "actions", "goal_latents", "goal_steps"}
    assert item["history_latents"][:, 0, 0, 0].tolist() == [17, 17] and item["future_latents"][:, 0, 0, 0].tolist() == [20, 23]
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=5)))
    assert batch["history_latents"].shape == (5, 2, 2, 2, 4) and batch["goal_steps"].shape == (5,)
    assert batch["actions"].dtype == torch.float32
    with pytest.raises(UserInputError, match=r"frames have shape \(3, 2\); expected \[29, \.\.\.\]"):
        WindowDataset(buf, frames=np.zeros((3, 2)))
    with pytest.raises(UserInputError, match=r"expected ids in \[0, 3\)"):
        WindowDataset(buf, episodes=[3])
    with pytest.raises(UserInputError, match="WindowSpec.frame_stride is 0"):
        WindowSpec(frame_stride=0)
    with pytest.raises(IndexError):
        ds[12]


def test_split_episodes_is_a_seeded_partition():
    train, val = split_episodes(50, val_fraction=0.2, seed=3)
    assert len(val) == 10 and sorted(np.concatenate([train, val]).tolist()) == list(range(50))
    again = split_episodes(50, val_fraction=0.2, seed=3)
    assert np.array_equal(again[0], train) and np.array_equal(again[1], val)
    assert not np.array_equal(split_episodes(50, val_fraction=0.2, seed=4)[1], val)
    assert [len(x) for x in split_episodes(3, val_fraction=0.01)] == [2, 1]
    with pytest.raises(UserInputError, match=r"val_fraction is 1.0; expected a value in \[0, 1\)"):
        split_episodes(10, val_fraction=1.0)
