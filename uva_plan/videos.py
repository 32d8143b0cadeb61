"""Action-free demonstration videos as model-ready frames: MP4 / GIF (imageio), a folder of PNG frames,
or one episode of a zarr replay buffer (which may lack `data/action`).

Every reader ends in the same checks, so a bad file fails here with one clear `UserInputError` and never
deep inside the model: unreadable or empty files, too few frames for the model's window, frames that are
not RGB. Frames are resized to the model's square size; a video of another aspect ratio is stretched
(never cropped: cropping could cut the agent out) and the loader says so in `Video.note`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from uva_plan.errors import UserInputError

VIDEO_SUFFIXES = (".mp4", ".gif", ".webm", ".avi", ".mov", ".mkv")
FRAME_SUFFIXES = (".png",)
# A relative aspect-ratio difference below this is rounding (e.g. 97x96), not a different shape.
ASPECT_TOLERANCE = 0.02


@dataclass
class Video:
    """A demonstration as the model sees it.

    frames: ``uint8 [T, S, S, 3]``, one frame per env step, ``S`` the model's image size.
    states: ``float64 [T, D]`` true env states (zarr episodes only): the start state for replay, the
        demo's final state for judging success; never shown to the labeller.
    actions: ``float32 [T-1, A]`` true actions between consecutive frames when the file holds them
        (zarr with `data/action`): for scoring the inferred actions only.
    note: what the loader changed (resize, aspect ratio, dropped alpha), for the user; None if nothing.
    """

    frames: np.ndarray
    source: str
    original_size: tuple[int, int]  # (height, width) before resizing
    states: np.ndarray | None = None
    actions: np.ndarray | None = None
    note: str | None = None

    def __len__(self) -> int:
        return len(self.frames)


def load_video(path: str | Path, image_size: int, *, min_frames: int = 2, episode: int = 0) -> Video:
    """Read ``path`` (video file, PNG folder or ``*.zarr`` replay buffer) into a ``Video`` of
    ``image_size`` square RGB frames with at least ``min_frames`` frames (the caller passes the
    model's window: fewer frames cannot be labelled). ``episode`` picks the zarr episode."""
    if not isinstance(image_size, int) or isinstance(image_size, bool) or image_size < 1:
        raise UserInputError(f"image_size is {image_size!r}; expected a positive integer (the model's frame size)")
    p = Path(path)
    if not p.exists():
        raise UserInputError(f"video {p} does not exist; expected an MP4/GIF file, a folder of PNG frames or a .zarr episode")
    states = actions = None
    if _is_zarr(p):
        raw, states, actions = _read_zarr_episode(p, episode)
    elif p.is_dir():
        raw = _read_frame_folder(p)
    else:
        raw = _read_video_file(p)
    frames, notes = _as_rgb(raw, p)
    if len(frames) < min_frames:
        raise UserInputError(
            f"video {p} has {len(frames)} frame(s); expected at least {min_frames} (the model's window: one frame "
            "per env step over one action chunk)"
        )
    original = (int(frames.shape[1]), int(frames.shape[2]))
    resized, note = resize_frames(frames, image_size)
    if note:
        notes.append(note)
    return Video(frames=resized, source=str(p), original_size=original, states=states, actions=actions,
                 note="; ".join(notes) or None)


def resize_frames(frames: np.ndarray, size: int) -> tuple[np.ndarray, str | None]:
    """``uint8 [T, H, W, 3] -> [T, size, size, 3]`` and a note when the shape changed. Area averaging
    for shrinking, as the envs render their observations (PushT downsizes with OpenCV's INTER_AREA),
    so a resized demo looks like the frames the model was trained on."""
    import cv2

    t, h, w = frames.shape[:3]
    if (h, w) == (size, size):
        return frames, None
    interp = cv2.INTER_AREA if h * w > size * size else cv2.INTER_LINEAR
    out = np.stack([cv2.resize(f, (size, size), interpolation=interp) for f in frames])
    note = f"frames resized from {w}x{h} to {size}x{size}"
    if abs(w / h - 1.0) > ASPECT_TOLERANCE:
        note += f" (aspect ratio {w / h:.2f} stretched to 1.00; the model expects square frames)"
    return out, note


# -------------------------------------------------------------------------------------------- readers


def _is_zarr(p: Path) -> bool:
    return p.suffix == ".zarr" or (p.is_dir() and any((p / m).exists() for m in ("zarr.json", ".zgroup")))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _read_video_file(p: Path) -> np.ndarray:
    if p.suffix.lower() not in VIDEO_SUFFIXES:
        raise UserInputError(
            f"video {p} has suffix {p.suffix or '(none)'!r}; expected one of {', '.join(VIDEO_SUFFIXES)}, a folder "
            "of PNG frames or a .zarr replay buffer"
        )
    if p.stat().st_size == 0:
        raise UserInputError(f"video {p} is an empty file (0 bytes); expected an {p.suffix.lower()[1:].upper()} video")
    import imageio.v3 as iio

    try:
        frames = iio.imread(p, index=None)
    except Exception as exc:  # imageio/ffmpeg/Pillow raise many types for a corrupt file
        raise UserInputError(f"cannot read video {p} ({_first_line(exc)}); expected a readable MP4 or GIF") from None
    frames = np.asarray(frames)
    if p.suffix.lower() == ".gif":
        if frames.ndim in (2, 3):
            frames = frames[None]  # a one-frame GIF reads as a single image
        frames = _expand_held_frames(frames, p)
    return frames


def _expand_held_frames(frames: np.ndarray, p: Path) -> np.ndarray:
    """GIF writers (Pillow, so imageio too) store a run of identical frames ONCE with a longer display
    time: a demo whose agent rests for 20 steps comes back 19 frames short. Each frame is repeated by
    its duration in units of the shortest one, restoring one frame per env step."""
    from PIL import Image, ImageSequence

    try:
        with Image.open(p) as img:
            durations = [int(f.info.get("duration") or 0) for f in ImageSequence.Iterator(img)]
    except Exception:
        return frames
    if len(durations) != len(frames) or min(durations) <= 0:
        return frames
    unit = min(durations)
    counts = np.maximum(1, np.rint(np.asarray(durations) / unit).astype(int))
    return np.repeat(frames, counts, axis=0) if np.any(counts > 1) else frames


def _natural_key(name: str):
    """frame_2.png before frame_10.png."""
    return [int(s) if s.isdigit() else s.lower() for s in re.split(r"(\d+)", name)]


def _read_frame_folder(p: Path) -> np.ndarray:
    files = sorted((f for f in p.iterdir() if f.is_file() and f.suffix.lower() in FRAME_SUFFIXES),
                   key=lambda f: _natural_key(f.name))
    if not files:
        raise UserInputError(f"folder {p} holds no PNG frames; expected frame images named in time order (e.g. 000.png, 001.png)")
    import imageio.v3 as iio

    frames = []
    for f in files:
        try:
            frame = np.asarray(iio.imread(f))
        except Exception as exc:
            raise UserInputError(f"cannot read frame {f} ({_first_line(exc)}); expected a readable PNG image") from None
        if frames and frame.shape != frames[0].shape:
            raise UserInputError(
                f"frame {f.name} has shape {frame.shape} but {files[0].name} has {frames[0].shape}; expected every "
                "frame of the folder to have the same size and channels"
            )
        frames.append(frame)
    return np.stack(frames)


def _read_zarr_episode(p: Path, episode: int):
    """Frames, states and (if stored) actions of one episode. The buffer stores ``img[i]`` before
    ``action[i]``, so an episode of n steps gives n frames and the n-1 actions between them."""
    from uva_plan.data import load_replay_buffer

    try:
        buffer = load_replay_buffer(p, require_actions=False)
    except UserInputError:
        raise
    except Exception as exc:
        raise UserInputError(f"cannot read replay buffer {p} ({_first_line(exc)}); expected a zarr written by `uva-plan collect`") from None
    n = buffer.n_episodes
    if isinstance(episode, bool) or not isinstance(episode, (int, np.integer)) or not 0 <= episode < n:
        raise UserInputError(f"episode {episode!r} is not in {p}; expected an index in [0, {n - 1}]")
    steps = buffer.episode(int(episode))
    frames = np.asarray(buffer.img[steps])
    # The loader gives [N, 0] arrays for a buffer without data/state or data/action.
    states = np.asarray(buffer.state[steps], dtype=np.float64) if buffer.state.shape[1] else None
    actions = np.asarray(buffer.action[steps][:-1], dtype=np.float32) if buffer.action.shape[1] else None
    return frames, states, actions


def _as_rgb(frames: np.ndarray, p: Path) -> tuple[np.ndarray, list[str]]:
    """``[T, H, W, 3]`` uint8 or a UserInputError saying what the frames are instead."""
    notes: list[str] = []
    if frames.size == 0 or frames.ndim == 0 or len(frames) == 0:
        raise UserInputError(f"video {p} has no frames; expected a video with at least one frame per env step")
    if frames.ndim == 3:
        raise UserInputError(
            f"video {p} has frames of shape {frames.shape[1:]} (one channel, grayscale); expected RGB frames [H, W, 3]"
        )
    if frames.ndim != 4:
        raise UserInputError(f"video {p} has an array of shape {frames.shape}; expected frames [T, H, W, 3]")
    channels = frames.shape[-1]
    if channels == 4:
        alpha = frames[..., 3]
        opaque = np.iinfo(frames.dtype).max if np.issubdtype(frames.dtype, np.integer) else 1.0
        if np.any(alpha != opaque):
            raise UserInputError(
                f"video {p} has RGBA frames with transparent pixels; expected opaque RGB frames (3 channels)"
            )
        frames = frames[..., :3]
        notes.append("opaque alpha channel dropped")
    elif channels != 3:
        raise UserInputError(f"video {p} has frames with {channels} channel(s); expected 3 (RGB)")
    if frames.dtype == np.uint16:
        frames = (frames >> 8).astype(np.uint8)
        notes.append("16-bit frames reduced to 8 bits")
    elif frames.dtype != np.uint8:
        raise UserInputError(f"video {p} has {frames.dtype} pixels; expected 8-bit RGB (uint8)")
    if frames.shape[1] < 1 or frames.shape[2] < 1:
        raise UserInputError(f"video {p} has empty frames of shape {frames.shape[1:]}; expected [H, W, 3] with H, W >= 1")
    return np.ascontiguousarray(frames), notes


__all__ = ["Video", "load_video", "resize_frames"]
