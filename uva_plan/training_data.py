"""What a training run reads, and in which order: a stateless per-epoch sample order, the per-step
seeds that make a resumed run see the batches and noise of an uninterrupted one, the data fingerprint
that refuses resuming on other data, and the batch collation."""

from __future__ import annotations

import hashlib

import numpy as np
import torch


class EpochSampler:
    """Sample order without state: a fresh permutation of the items each epoch, derived from
    (seed, epoch), so the batch of any step is known directly. Process `rank` takes slice `rank` of
    each global batch of `batch_size * world` items."""

    def __init__(self, n_items: int, seed: int):
        self.n = n_items
        self.seed = seed
        self._cache: dict[int, np.ndarray] = {}

    def _perm(self, epoch: int) -> np.ndarray:
        if epoch not in self._cache:
            if len(self._cache) > 2:
                self._cache.clear()
            self._cache[epoch] = np.random.default_rng([self.seed, epoch]).permutation(self.n)
        return self._cache[epoch]

    def draw(self, step: int, batch_size: int, rank: int = 0, world: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Item indices `[batch_size]` of this process at `step`, and the epoch each belongs to."""
        start = (step * world + rank) * batch_size
        positions = np.arange(start, start + batch_size)
        epochs = positions // self.n
        ids = np.array([self._perm(int(e))[p % self.n] for p, e in zip(positions, epochs)], dtype=np.int64)
        return ids, epochs

    def indices(self, step: int, batch_size: int, rank: int = 0, world: int = 1) -> np.ndarray:
        return self.draw(step, batch_size, rank, world)[0]


def step_seed(seed: int, stage: int, step: int, rank: int) -> int:
    return int(np.random.SeedSequence([seed, stage, step, rank]).generate_state(1, dtype=np.uint64)[0] >> 1)


def seed_everything(seed: int) -> None:
    """Every generator a library might draw from at construction time, so all processes build the
    same initial weights."""
    import random

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def data_fingerprint(buffer) -> str:
    """Identifies the data a run trained on: resuming on other data is refused."""
    h = hashlib.sha256()
    h.update(np.asarray(buffer.episode_ends, dtype=np.int64).tobytes())
    h.update(str(tuple(buffer.img.shape)).encode())
    h.update(np.ascontiguousarray(np.asarray(buffer.action, dtype=np.float32)).tobytes())
    return h.hexdigest()[:32]


def episode_frame_ids(episode_ends: np.ndarray, episodes) -> np.ndarray:
    starts = np.concatenate([[0], episode_ends[:-1]])
    return np.concatenate([np.arange(starts[e], episode_ends[e]) for e in episodes]).astype(np.int64)


def collate(items: list[dict], device):
    """Dataset items (dicts of numpy arrays) -> one batch of tensors on `device`."""
    return {key: torch.from_numpy(np.stack([it[key] for it in items])).to(device) for key in items[0]}
