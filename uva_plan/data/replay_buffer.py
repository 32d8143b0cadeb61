"""Diffusion-Policy replay buffers in zarr: the storage format of UVA's own data.

Layout: `data/img` uint8 `[N, H, W, 3]`, `data/action` float32 `[N, A]`, `data/state` float32 `[N, D]`,
`meta/episode_ends` int64 `[E]` (exclusive end index of each episode), and root attributes (env id, image
size, action bounds, policy, seed, format version, state names). `img[i]` is the observation before
`action[i]`. Written with zarr's v3 format; buffers written by other tools (zarr v2, 96x96 images, float
images, extra keys such as `data/keypoint`, no attributes) load too.

Writing is atomic: everything goes into `<path>.tmp-<random>` next to the target, which is renamed into
place only when complete, so an interrupted run leaves no half-written dataset behind.
"""

from __future__ import annotations

import os
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from uva_plan.errors import UserInputError

FORMAT_VERSION = 1
_EXPECTED = (
    "a zarr replay buffer with data/img (uint8 [N,H,W,3]), data/action ([N,A]), data/state ([N,D]) "
    "and meta/episode_ends (int [E])"
)
_IMG_CHUNK_BYTES = 2 * 2**20


@dataclass
class ReplayBuffer:
    """Episodes held in memory. `img uint8 [N,H,W,3]`, `action float32 [N,A]`, `state float32 [N,D]`,
    `episode_ends int64 [E]`, `attrs` (JSON-able dict; empty for foreign buffers)."""

    img: np.ndarray
    action: np.ndarray
    state: np.ndarray
    episode_ends: np.ndarray
    attrs: dict = field(default_factory=dict)

    def __post_init__(self):
        check_consistency(self.img, self.action, self.state, self.episode_ends, where="replay buffer")

    @property
    def n_steps(self) -> int:
        return int(self.img.shape[0])

    @property
    def n_episodes(self) -> int:
        return int(self.episode_ends.shape[0])

    @property
    def image_size(self) -> int:
        return int(self.img.shape[1])

    @property
    def episode_starts(self) -> np.ndarray:
        return np.concatenate([[0], self.episode_ends[:-1]]).astype(np.int64)

    @property
    def episode_lengths(self) -> np.ndarray:
        return np.diff(np.concatenate([[0], self.episode_ends])).astype(np.int64)

    def episode(self, e: int) -> slice:
        """Step range of episode `e`."""
        if not 0 <= e < self.n_episodes:
            raise UserInputError(f"episode {e} does not exist; expected an index in [0, {self.n_episodes})")
        start = 0 if e == 0 else int(self.episode_ends[e - 1])
        return slice(start, int(self.episode_ends[e]))


def check_consistency(img, action, state, episode_ends, where: str) -> None:
    """Shapes, dtypes and lengths of a buffer's arrays, or one UserInputError naming the first problem."""
    if img.dtype != np.uint8 or img.ndim != 4 or img.shape[-1] != 3:
        raise UserInputError(f"{where}: data/img is {img.dtype} {img.shape}; expected uint8 [N, H, W, 3]")
    n = img.shape[0]
    for name, arr in (("action", action), ("state", state)):
        if arr.ndim != 2 or arr.shape[0] != n:
            raise UserInputError(f"{where}: data/{name} has shape {arr.shape}; expected [{n}, *] (one row per image)")
        if not np.issubdtype(arr.dtype, np.floating):
            raise UserInputError(f"{where}: data/{name} has dtype {arr.dtype}; expected float32")
        if not np.all(np.isfinite(arr)):
            raise UserInputError(f"{where}: data/{name} contains NaN or infinite values; expected finite numbers")
    ends = episode_ends
    if ends.ndim != 1 or not np.issubdtype(ends.dtype, np.integer):
        raise UserInputError(f"{where}: meta/episode_ends is {ends.dtype} {ends.shape}; expected int64 [E]")
    if n == 0 or ends.shape[0] == 0:
        raise UserInputError(f"{where}: holds {n} steps in {ends.shape[0]} episodes; expected at least one step")
    if np.any(np.diff(ends) <= 0) or ends[0] <= 0:
        raise UserInputError(f"{where}: meta/episode_ends is not strictly increasing from > 0; expected episode end indices")
    if int(ends[-1]) != n:
        raise UserInputError(
            f"{where}: meta/episode_ends ends at {int(ends[-1])} but data/img has {n} steps; expected the last end == N"
        )


# -------------------------------------------------------------------------------------------------------
# Writing


def _prepare_target(path: Path, overwrite: bool) -> list[Path]:
    """Check the target and create its missing parent folders; returns the folders created."""
    if path.exists() and not overwrite:
        raise UserInputError(f"output {path} already exists; expected a new path (or --overwrite to replace it)")
    if path.is_dir() and not ((path / "zarr.json").exists() or (path / ".zgroup").exists()):
        # overwrite replaces a dataset, never an arbitrary folder (`--out data --overwrite` must not wipe data/)
        raise UserInputError(f"output {path} is a folder but not a zarr store; expected a new path or an existing .zarr")
    created = []
    parent = path.parent
    missing = []
    while not parent.exists():
        missing.append(parent)
        parent = parent.parent
    if not parent.is_dir():
        raise UserInputError(f"cannot write {path}: {parent} is not a folder; expected a path inside a writable folder")
    for folder in reversed(missing):
        try:
            folder.mkdir()
        except OSError as exc:
            _remove_created(created)
            raise UserInputError(f"cannot create folder {folder}: {exc.strerror}; expected a writable location") from None
        created.append(folder)
    return created


def _remove_created(folders: list[Path]) -> None:
    for folder in reversed(folders):
        try:
            folder.rmdir()
        except OSError:
            pass


class ReplayBufferWriter:
    """Streams episodes into a new replay buffer at `path` (atomically, see the module docstring).

    Images are written chunk by chunk as they arrive (a dataset may not fit in memory); actions and
    states are small and written at `commit`. Use as a context manager: an exception aborts and removes
    the temporary folder.
    """

    def __init__(self, path, image_size: int, action_dim: int, state_dim: int, attrs: dict | None = None,
                 overwrite: bool = False):
        import zarr

        self.path = Path(path)
        self.overwrite = overwrite
        self._created = _prepare_target(self.path, overwrite)
        self.tmp_path = self.path.with_name(f"{self.path.name}.tmp-{secrets.token_hex(4)}")
        try:
            self._root = zarr.open_group(str(self.tmp_path), mode="w")
            frame_bytes = image_size * image_size * 3
            self._chunk = max(1, _IMG_CHUNK_BYTES // frame_bytes)
            # Blosc-lz4 rather than zarr's default zstd: 1.7x faster to write and 4x faster to load (training
            # start-up) on rendered frames, for files about twice as large (still ~40x smaller than raw).
            self._img = self._root.create_array(
                "data/img", shape=(0, image_size, image_size, 3), chunks=(self._chunk, image_size, image_size, 3),
                dtype="uint8", compressors=zarr.codecs.BloscCodec(cname="lz4", clevel=5, shuffle="noshuffle"),
            )
        except OSError as exc:
            self.abort()
            raise UserInputError(f"cannot write {self.path}: {exc.strerror or exc}; expected a writable location") from None
        self.image_size = image_size
        self.action_dim, self.state_dim = action_dim, state_dim
        self.attrs = dict(attrs or {})
        self._pending: list[np.ndarray] = []
        self._pending_steps = 0
        self._written = 0
        self._actions: list[np.ndarray] = []
        self._states: list[np.ndarray] = []
        self._ends: list[int] = []
        self._done = False

    @property
    def n_steps(self) -> int:
        return self._written + self._pending_steps

    def add_episode(self, img, action, state) -> None:
        """Append one episode: `img uint8 [T,S,S,3]`, `action [T,A]`, `state [T,D]`."""
        # Copies: callers (collection) refill the same arrays for the next episode.
        img = np.array(img, copy=True)
        action = np.array(action, dtype=np.float32, copy=True)
        state = np.array(state, dtype=np.float32, copy=True)
        t = img.shape[0]
        if img.shape[1:] != (self.image_size, self.image_size, 3) or img.dtype != np.uint8 or t == 0:
            raise UserInputError(
                f"episode images are {img.dtype} {img.shape}; expected uint8 [T, {self.image_size}, {self.image_size}, 3]"
            )
        if action.shape != (t, self.action_dim) or state.shape != (t, self.state_dim):
            raise UserInputError(
                f"episode has actions {action.shape} and states {state.shape}; expected [{t}, {self.action_dim}] "
                f"and [{t}, {self.state_dim}]"
            )
        self._pending.append(img)
        self._pending_steps += t
        self._actions.append(action)
        self._states.append(state)
        self._ends.append(self.n_steps)
        if self._pending_steps >= self._chunk:
            self._flush(final=False)

    def _flush(self, final: bool) -> None:
        if not self._pending:
            return
        data = np.concatenate(self._pending) if len(self._pending) > 1 else self._pending[0]
        n = data.shape[0] if final else (data.shape[0] // self._chunk) * self._chunk
        if n == 0:
            return
        start = self._written
        self._img.resize((start + n, self.image_size, self.image_size, 3))
        self._img[start : start + n] = data[:n]  # chunk-aligned: every chunk is compressed once
        self._written += n
        rest = data[n:]
        self._pending = [rest] if rest.shape[0] else []
        self._pending_steps = rest.shape[0]

    def commit(self) -> Path:
        """Write the remaining data and attributes, then move the buffer into place."""
        if self._done:
            raise RuntimeError("replay buffer writer already finished")
        if not self._ends:
            self.abort()
            raise UserInputError(f"no episodes were added to {self.path}; expected at least one")
        self._flush(final=True)
        action = np.concatenate(self._actions)
        state = np.concatenate(self._states)
        n = action.shape[0]
        rows = max(1, min(n, 65536))
        self._root.create_array("data/action", data=action, chunks=(rows, self.action_dim))
        self._root.create_array("data/state", data=state, chunks=(rows, self.state_dim))
        self._root.create_array("meta/episode_ends", data=np.asarray(self._ends, dtype=np.int64))
        attrs = {"format_version": FORMAT_VERSION, **self.attrs}
        self._root.attrs.update(_jsonable(attrs))
        _move_into_place(self.tmp_path, self.path, self.overwrite)
        self._done = True
        return self.path

    def abort(self) -> None:
        """Remove everything this writer created."""
        self._done = True
        shutil.rmtree(self.tmp_path, ignore_errors=True)
        _remove_created(self._created)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None and not self._done:
            self.abort()
        return False


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    return value


def _move_into_place(tmp: Path, path: Path, overwrite: bool) -> None:
    """Rename the finished temp folder to `path`; an existing `path` (overwrite) is first renamed aside
    and deleted only after the new one is in place, so a failure never loses both."""
    old = None
    if path.exists() or path.is_symlink():
        if not overwrite:
            shutil.rmtree(tmp, ignore_errors=True)
            raise UserInputError(f"output {path} appeared while writing; expected a new path (or --overwrite)")
        old = path.with_name(f"{path.name}.old-{secrets.token_hex(4)}")
        os.rename(path, old)
    try:
        os.rename(tmp, path)
    except OSError:
        if old is not None:
            os.rename(old, path)
        raise
    if old is not None:
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink(missing_ok=True)


def save_replay_buffer(buffer: ReplayBuffer, path, overwrite: bool = False) -> Path:
    """Write `buffer` to `path` atomically (same layout and attributes as collection writes)."""
    with ReplayBufferWriter(path, buffer.image_size, buffer.action.shape[1], buffer.state.shape[1], buffer.attrs,
                            overwrite=overwrite) as writer:
        for start, end in zip(buffer.episode_starts, buffer.episode_ends):
            writer.add_episode(buffer.img[start:end], buffer.action[start:end], buffer.state[start:end])
        return writer.commit()


# -------------------------------------------------------------------------------------------------------
# Reading


def _read(group, key: str, path: Path) -> np.ndarray:
    try:
        node = group[key]
    except KeyError:
        raise UserInputError(f"replay buffer {path} has no {key}; expected {_EXPECTED}") from None
    if not hasattr(node, "shape"):
        raise UserInputError(f"replay buffer {path}: {key} is a group, not an array; expected {_EXPECTED}")
    try:
        return np.asarray(node[...])
    except Exception as exc:  # zarr and its codecs raise many types for damaged chunks
        raise UserInputError(f"replay buffer {path}: {key} cannot be read ({type(exc).__name__}: {exc}); expected intact data") from None


def _as_uint8_images(img: np.ndarray, path: Path) -> np.ndarray:
    """Foreign buffers may store float images (0..1 or 0..255); bring them to uint8."""
    if img.dtype == np.uint8:
        return img
    if np.issubdtype(img.dtype, np.floating) and img.size:
        lo, hi = float(np.nanmin(img)), float(np.nanmax(img))
        if np.all(np.isfinite(img)) and lo >= 0:
            if hi <= 1.0:
                return np.rint(img * 255).astype(np.uint8)
            if hi <= 255.0:
                return np.rint(img).astype(np.uint8)
    raise UserInputError(
        f"replay buffer {path}: data/img has dtype {img.dtype}; expected uint8 images (or float images in [0, 1] or [0, 255])"
    )


def load_replay_buffer(path, require_actions: bool = True) -> ReplayBuffer:
    """Load a replay buffer into memory and validate it.

    `require_actions=False` accepts action-free videos: a missing `data/action` becomes `[N, 0]`. A
    missing `data/state` always becomes `[N, 0]` (foreign video data). Problems raise one UserInputError.
    """
    import zarr

    path = Path(path)
    if not path.exists():
        raise UserInputError(f"replay buffer {path} does not exist; expected {_EXPECTED}")
    try:
        group = zarr.open_group(str(path), mode="r")
    except Exception as exc:  # not a zarr store, unreadable metadata, ...
        raise UserInputError(f"{path} is not a readable zarr group ({type(exc).__name__}); expected {_EXPECTED}") from None
    try:
        attrs = dict(group.attrs)
    except Exception:
        raise UserInputError(f"replay buffer {path} has unreadable attributes; expected JSON attributes") from None
    img = _as_uint8_images(_read(group, "data/img", path), path)
    ends = _read(group, "meta/episode_ends", path)
    n = img.shape[0] if img.ndim else 0
    if require_actions or _has(group, "data/action"):
        action = _read(group, "data/action", path)
    else:
        action = np.zeros((n, 0), dtype=np.float32)
    state = _read(group, "data/state", path) if _has(group, "data/state") else np.zeros((n, 0), dtype=np.float32)
    if action.ndim == 1:
        action = action[:, None]
    if state.ndim == 1:
        state = state[:, None]
    where = f"replay buffer {path}"
    if np.issubdtype(action.dtype, np.floating):
        action = action.astype(np.float32, copy=False)
    if np.issubdtype(state.dtype, np.floating):
        state = state.astype(np.float32, copy=False)
    check_consistency(img, action, state, ends, where=where)
    return ReplayBuffer(img=img, action=action, state=state, episode_ends=ends.astype(np.int64), attrs=attrs)


def _has(group, key: str) -> bool:
    try:
        group[key]
    except KeyError:
        return False
    return True
