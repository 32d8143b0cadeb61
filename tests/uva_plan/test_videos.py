"""Video loading: every supported format gives the same model-ready frames, and every bad input fails
with one UserInputError that names the problem."""

from __future__ import annotations

import imageio.v3 as iio
import numpy as np
import pytest

from uva_plan.errors import UserInputError
from uva_plan.videos import load_video, resize_frames


def moving_disc(n: int = 20, h: int = 64, w: int = 64) -> np.ndarray:
    """``uint8 [n, h, w, 3]``: a bright disc moving right on a dark background (few colours, so a GIF
    palette keeps it exactly)."""
    yy, xx = np.mgrid[0:h, 0:w]
    frames = np.full((n, h, w, 3), 30, dtype=np.uint8)
    for t in range(n):
        inside = (xx - (8 + 2 * t)) ** 2 + (yy - h // 2) ** 2 <= 16
        frames[t][inside] = (240, 200, 40)
    return frames


def test_gif_round_trip_is_exact(tmp_path):
    frames = moving_disc()
    path = tmp_path / "demo.gif"
    iio.imwrite(path, frames, extension=".gif", duration=100, loop=0)
    video = load_video(path, 64)
    assert video.frames.shape == (20, 64, 64, 3) and video.frames.dtype == np.uint8
    np.testing.assert_array_equal(video.frames, frames)
    assert video.note is None and video.states is None and video.actions is None


def test_gif_frames_held_still_come_back_one_per_step(tmp_path):
    frames = np.concatenate([moving_disc(8), np.repeat(moving_disc(8)[-1:], 6, axis=0)])  # 6 still steps
    path = tmp_path / "rest.gif"
    iio.imwrite(path, frames, extension=".gif", duration=100, loop=0)
    assert len(iio.imread(path, index=None)) < len(frames)  # the writer merged the still frames
    np.testing.assert_array_equal(load_video(path, 64).frames, frames)


def test_mp4_is_read_and_close_to_the_original(tmp_path):
    frames = moving_disc()
    path = tmp_path / "demo.mp4"
    iio.imwrite(path, frames, fps=10)
    video = load_video(path, 64)
    assert video.frames.shape == (20, 64, 64, 3)
    # Lossy codec: close, not equal.
    assert np.abs(video.frames.astype(float) - frames).mean() < 8.0


def test_png_folder_is_read_in_natural_order(tmp_path):
    frames = moving_disc(12)
    for t, f in enumerate(frames):
        iio.imwrite(tmp_path / f"frame_{t}.png", f)  # frame_10 must come after frame_9, not after frame_1
    video = load_video(tmp_path, 64)
    np.testing.assert_array_equal(video.frames, frames)


def test_non_square_video_is_resized_and_the_aspect_ratio_reported(tmp_path):
    frames = moving_disc(10, h=48, w=96)
    path = tmp_path / "wide.gif"
    iio.imwrite(path, frames, extension=".gif", duration=100, loop=0)
    video = load_video(path, 32)
    assert video.frames.shape == (10, 32, 32, 3)
    assert video.original_size == (48, 96)
    assert "aspect ratio 2.00" in video.note


def test_square_downscale_reports_no_aspect_change():
    out, note = resize_frames(moving_disc(3, 128, 128), 64)
    assert out.shape == (3, 64, 64, 3) and "aspect" not in note


def test_opaque_rgba_frames_lose_their_alpha(tmp_path):
    frames = moving_disc(6)
    rgba = np.concatenate([frames, np.full((*frames.shape[:3], 1), 255, np.uint8)], axis=-1)
    for t, f in enumerate(rgba):
        iio.imwrite(tmp_path / f"{t:03d}.png", f)
    video = load_video(tmp_path, 64)
    np.testing.assert_array_equal(video.frames, frames)
    assert "alpha" in video.note


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


def _mkdir(path):
    path.mkdir()
    return path


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda d: _write(d / "empty.mp4", b""), "empty file"),
        (lambda d: _write(d / "junk.gif", b"not a gif at all"), "cannot read video"),
        (lambda d: _write(d / "junk.mp4", b"\x00" * 64), "cannot read video"),
        (lambda d: _write(d / "notes.txt", b"hello"), "expected one of .mp4"),
        (lambda d: d / "missing.mp4", "does not exist"),
        (lambda d: _mkdir(d / "nothing"), "no PNG frames"),
    ],
)
def test_unreadable_inputs_raise_one_clear_error(tmp_path, make, message):
    path = make(tmp_path)
    with pytest.raises(UserInputError, match=message) as info:
        load_video(path, 64)
    assert "\n" not in str(info.value)


def test_too_short_video_names_the_window(tmp_path):
    path = tmp_path / "short.gif"
    iio.imwrite(path, moving_disc(5), extension=".gif", duration=100, loop=0)
    with pytest.raises(UserInputError, match="has 5 frame.*at least 17"):
        load_video(path, 64, min_frames=17)


def png_folder(root, name, frames):
    """A folder of PNG frames ``0.png``, ``1.png``, ... (the video format of a frame folder)."""
    folder = root / name
    folder.mkdir()
    for t, frame in enumerate(frames):
        iio.imwrite(folder / f"{t}.png", frame)
    return folder


@pytest.mark.parametrize("name, frames, match", [
    ("gray", [np.full((16, 16), 50 * t, np.uint8) for t in range(4)], "grayscale.*expected RGB"),
    ("la", [np.full((16, 16, 2), 255, np.uint8)] * 4, "2 channel.*expected 3"),
    ("alpha", [np.full((16, 16, 4), 100, np.uint8)] * 3, "transparent"),
])
def test_frames_that_are_not_rgb_are_rejected(tmp_path, name, frames, match):
    with pytest.raises(UserInputError, match=match):
        load_video(png_folder(tmp_path, name, frames), 16)


def test_mixed_sizes_are_rejected(tmp_path):
    mixed = png_folder(tmp_path, "mixed", [np.zeros((16, 16, 3), np.uint8), np.zeros((20, 16, 3), np.uint8)])
    with pytest.raises(UserInputError, match="same size"):
        load_video(mixed, 16)


def test_zarr_episode_gives_frames_states_and_true_actions(tmp_path):
    import shutil

    from uva_plan.data import ReplayBuffer, save_replay_buffer

    frames = moving_disc(30)
    states = np.stack([np.arange(30.0), np.zeros(30), np.full(30, 32.0)], axis=1).astype(np.float32)
    actions = np.tile(np.array([[2.0, 0.0]], np.float32), (30, 1))
    path = tmp_path / "demo.zarr"
    save_replay_buffer(ReplayBuffer(img=frames, action=actions, state=states, episode_ends=np.array([12, 30])), path)
    video = load_video(path, 64, episode=1)
    np.testing.assert_array_equal(video.frames, frames[12:30])
    np.testing.assert_allclose(video.states, states[12:30])
    np.testing.assert_allclose(video.actions, actions[12:29])  # the n-1 actions between n frames

    with pytest.raises(UserInputError, match=r"episode 2 is not in .*\[0, 1\]"):
        load_video(path, 64, episode=2)

    shutil.rmtree(path / "data" / "action")  # an action-free video: frames and states only
    video = load_video(path, 32, episode=0)
    assert video.actions is None and video.frames.shape == (12, 32, 32, 3)
    np.testing.assert_allclose(video.states, states[:12])
