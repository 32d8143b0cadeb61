"""Training windows for the world model: history frames, future frames, the action chunk between them,
and a hindsight goal frame from later in the same episode.

Every step t of every selected episode is one item (t is the "current" frame), so the model sees
episode starts and ends too; frames and actions that would fall outside the episode repeat its first or
last step. The goal draw is a pure function of (seed, epoch, index): validation stays fixed while
training can see new goals each epoch (`set_epoch`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch.utils.data

from uva_plan.data.replay_buffer import ReplayBuffer
from uva_plan.errors import UserInputError
from world_model.actions import ActionNormalizer


@dataclass(frozen=True)
class WindowSpec:
    """`n_history` frames up to now and `n_future` frames after it, `frame_stride` env steps apart.

    The action chunk covers `chunk_len = n_future * frame_stride` steps, from now to the last future frame.
    `proprio_indices`: the state entries a proprioceptive model reads (empty: none).
    """

    n_history: int = 4
    n_future: int = 4
    frame_stride: int = 4
    proprio_indices: tuple[int, ...] = ()

    def __post_init__(self):
        for name in ("n_history", "n_future", "frame_stride"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise UserInputError(f"WindowSpec.{name} is {value!r}; expected an integer >= 1")
        object.__setattr__(self, "proprio_indices", tuple(int(i) for i in self.proprio_indices))

    @property
    def chunk_len(self) -> int:
        return self.n_future * self.frame_stride

    @classmethod
    def of(cls, config) -> WindowSpec:
        """The spec of a model config (anything with ``n_history``, ``n_future`` and ``frame_stride``;
        and ``proprio_state_indices`` when it has them)."""
        return cls(int(config.n_history), int(config.n_future), int(config.frame_stride),
                   tuple(getattr(config, "proprio_state_indices", ()) or ()))

    def history_offsets(self) -> np.ndarray:
        """Env-step offsets of the history frames from now, oldest first: ``[-(n_history-1)*stride, ..., 0]``."""
        return self.frame_stride * np.arange(-(self.n_history - 1), 1)

    def future_offsets(self, n_chunks: int = 1) -> np.ndarray:
        """Env-step offsets of the future frames of ``n_chunks`` chunks: ``[stride, 2*stride, ...]``."""
        return self.frame_stride * np.arange(1, n_chunks * self.n_future + 1)


def normalizer_for(buffer: ReplayBuffer) -> ActionNormalizer:
    """Action limits from the buffer's attrs; a foreign buffer without them uses its data's min/max."""
    low, high = buffer.attrs.get("action_low"), buffer.attrs.get("action_high")
    if low is not None and high is not None:
        return ActionNormalizer(low, high)
    return ActionNormalizer.from_data(buffer.action)


def split_episodes(n_episodes: int, val_fraction: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Random train/validation split BY EPISODE (windows of one episode never straddle the split).

    Returns sorted int64 arrays `(train_ids, val_ids)`; with >= 2 episodes and `val_fraction > 0` both
    are non-empty.
    """
    if isinstance(n_episodes, bool) or not isinstance(n_episodes, (int, np.integer)) or n_episodes < 1:
        raise UserInputError(f"n_episodes is {n_episodes!r}; expected an integer >= 1")
    if not 0.0 <= float(val_fraction) < 1.0:
        raise UserInputError(f"val_fraction is {val_fraction}; expected a value in [0, 1)")
    n_val = int(round(n_episodes * val_fraction))
    if val_fraction > 0 and n_episodes >= 2:
        n_val = min(max(n_val, 1), n_episodes - 1)
    order = np.random.default_rng(seed).permutation(n_episodes)
    return np.sort(order[n_val:]).astype(np.int64), np.sort(order[:n_val]).astype(np.int64)


class WindowDataset(torch.utils.data.Dataset):
    """Windows over a replay buffer; items are dicts of numpy arrays (a plain collate works).

    - `history uint8 [Th,H,W,3]`: frames at t-(Th-1)s, ..., t-s, t (clamped to the episode's first step)
    - `future uint8 [Tf,H,W,3]`: frames at t+s, ..., t+Tf*s (clamped to the episode's last step)
    - `actions float32 [Tf*s, A]`: a_t ... a_{t+Tf*s-1} normalised to [-1, 1] (last action repeated)
    - `goal uint8 [H,W,3]`: the frame `goal_steps` after t, drawn in 1..goal_max_steps and clamped to the
      episode's last step
    - `goal_steps float32 []`: env steps from t to the goal frame (0 only when t is the last step)
    - `history_proprio float32 [Th, P]`, `future_proprio float32 [Tf, P]`, `goal_proprio float32 [P]`
      (only when the spec names `proprio_indices`): those state entries at the history, future and goal
      frames, env units; with them `future_valid bool [Tf]`: whether each future frame lies within the
      episode (a clamped one repeats the last state while the repeated action would move it: not dynamics)

    - `goal_actions float32 [Tf*s, A]` (only with `hold_actions`): the chunk as a goal-reaching policy
      would act: actions from the goal step on replaced by the hold action of the goal's state (the
      recorded episode moved on past its hindsight goal; a policy asked for that goal should stop there)

    `hold_actions`: optional `[N, A]` env-unit actions, one per buffer step, that keep the agent still
    there (`uva_plan.envs.hold_actions`).
    `frames`: optional `[N, ...]` array aligned with the buffer's steps (e.g. pre-encoded latents
    `float32 [N,h,w,c]`) used instead of `buffer.img`; the keys are then `history_latents`,
    `future_latents` and `goal_latents`. This lets training run a frozen tokenizer once per frame
    instead of once per window.
    """

    def __init__(self, buffer: ReplayBuffer, spec: WindowSpec | None = None, episodes=None, goal_max_steps: int = 64,
                 seed: int = 0, frames=None, hold_actions=None):
        self.buffer = buffer
        self.spec = spec if spec is not None else WindowSpec()
        if isinstance(goal_max_steps, bool) or not isinstance(goal_max_steps, (int, np.integer)) or goal_max_steps < 1:
            raise UserInputError(f"goal_max_steps is {goal_max_steps!r}; expected an integer >= 1")
        self.goal_max_steps = int(goal_max_steps)
        self.seed = int(seed)
        self.epoch = 0
        self._offsets_epoch: int | None = None
        self._offsets = np.zeros(0, dtype=np.int64)
        if frames is None:
            self._frames, self._keys = buffer.img, ("history", "future", "goal")
        else:
            if not hasattr(frames, "shape") or len(frames.shape) < 1 or frames.shape[0] != buffer.n_steps:
                shape = getattr(frames, "shape", type(frames).__name__)
                raise UserInputError(f"frames have shape {shape}; expected [{buffer.n_steps}, ...] (one per buffer step)")
            self._frames, self._keys = frames, ("history_latents", "future_latents", "goal_latents")
        if buffer.action.shape[1] == 0:
            raise UserInputError("replay buffer has no actions; expected data/action [N, A] to build training windows")
        self.normalizer = normalizer_for(buffer)
        self._actions = np.asarray(self.normalizer.normalize(buffer.action), dtype=np.float32)
        self._hold = None
        if hold_actions is not None:
            hold = np.asarray(hold_actions, dtype=np.float32)
            if hold.shape != buffer.action.shape:
                raise UserInputError(f"hold_actions have shape {hold.shape}; expected {buffer.action.shape} (one per buffer step)")
            self._hold = np.asarray(self.normalizer.normalize(hold), dtype=np.float32)

        if episodes is None:
            ids = np.arange(buffer.n_episodes)
        else:
            ids = np.asarray(list(episodes), dtype=np.int64).reshape(-1)
            if ids.size and (ids.min() < 0 or ids.max() >= buffer.n_episodes):
                raise UserInputError(
                    f"episode ids {ids.min()}..{ids.max()} out of range; expected ids in [0, {buffer.n_episodes})"
                )
        self.episodes = ids
        self._proprio = None
        if self.spec.proprio_indices:
            idx = np.asarray(self.spec.proprio_indices)
            if buffer.state.shape[1] <= idx.max():
                raise UserInputError(f"the replay buffer's states have {buffer.state.shape[1]} entries; the model's "
                                     f"proprioception reads entries {idx.tolist()} (data without states cannot train it)")
            self._proprio = np.asarray(buffer.state[:, idx], dtype=np.float32)
        starts, ends = buffer.episode_starts[ids], buffer.episode_ends[ids]
        lengths = ends - starts
        self._step = np.concatenate([np.arange(s, e) for s, e in zip(starts, ends)]) if ids.size else np.zeros(0, np.int64)
        self._first = np.repeat(starts, lengths)
        self._last = np.repeat(ends - 1, lengths)
        spec = self.spec
        self._hist_offsets = spec.history_offsets()
        self._fut_offsets = spec.future_offsets()
        self._act_offsets = np.arange(spec.chunk_len)

    def set_epoch(self, epoch: int) -> None:
        """Draw different hindsight goals in each training epoch (same epoch, same draws)."""
        self.epoch = int(epoch)

    def _goal_offsets(self) -> np.ndarray:
        """Goal offsets of all windows for the current epoch, drawn at once from (seed, epoch): the
        same draws whatever the access order or the DataLoader worker."""
        if self._offsets_epoch != self.epoch:
            rng = np.random.default_rng((self.seed, self.epoch))
            self._offsets = rng.integers(1, self.goal_max_steps + 1, size=len(self))
            self._offsets_epoch = self.epoch
        return self._offsets

    def episode_of(self, indices) -> np.ndarray:
        """The buffer episode id of each window index."""
        steps = self._step[np.asarray(indices, dtype=np.int64)]
        return np.searchsorted(np.asarray(self.buffer.episode_ends), steps, side="right")

    def __len__(self) -> int:
        return int(self._step.shape[0])

    def __getitem__(self, index: int) -> dict:
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"window {index} out of range for {n} windows")
        index = int(index) % n
        t, first, last = int(self._step[index]), int(self._first[index]), int(self._last[index])
        hist = np.clip(t + self._hist_offsets, first, last)
        fut = np.clip(t + self._fut_offsets, first, last)
        act = np.clip(t + self._act_offsets, first, last)
        goal = min(t + int(self._goal_offsets()[index]), last)
        k_hist, k_fut, k_goal = self._keys
        item = {
            k_hist: np.asarray(self._frames[hist]),
            k_fut: np.asarray(self._frames[fut]),
            "actions": self._actions[act],
            k_goal: np.asarray(self._frames[goal]),
            "goal_steps": np.array(goal - t, dtype=np.float32),
        }
        if self._proprio is not None:
            item["history_proprio"], item["future_proprio"] = self._proprio[hist], self._proprio[fut]
            item["future_valid"] = t + self._fut_offsets <= last
            item["goal_proprio"] = self._proprio[goal]
        if self._hold is not None:
            reached = np.arange(self.spec.chunk_len) >= goal - t
            item["goal_actions"] = np.where(reached[:, None], self._hold[goal], item["actions"])
        return item
