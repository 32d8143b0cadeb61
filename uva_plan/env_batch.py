"""B environments stepped in lock-step, each keeping the frame log that UVA's history windows need.

Planners solve all B problems in one objective call, so evaluation runs episodes side by side; this
class is the executor that the MPC loop's ``step`` callable drives.
"""

from __future__ import annotations

import numpy as np
import torch

from uva_plan.data.windows import WindowSpec


class EnvBatch:
    """Episodes started from given states. ``frames[b]`` holds every observation of episode ``b``
    (step 0 = the start), so history stacks and GIFs come from one place."""

    def __init__(self, env_name: str, start_states, image_size: int = 64):
        from uva_plan.envs import make_env

        self.env_name = env_name
        self.envs = [make_env(env_name, image_size=image_size) for _ in start_states]
        self.frames: list[list[np.ndarray]] = []
        # Every state visited, for judging after the episode (e.g. "passed the goal but did not stay").
        self.state_log: list[list[np.ndarray]] = []
        for env, state in zip(self.envs, start_states):
            obs, _ = env.reset(options={"state": np.asarray(state, dtype=np.float64)})
            self.frames.append([obs])
            self.state_log.append([env.get_state()])
        self.steps = 0
        env = self.envs[0]
        self.action_low = np.asarray(env.action_low, dtype=np.float32)
        self.action_high = np.asarray(env.action_high, dtype=np.float32)

    def __len__(self) -> int:
        return len(self.envs)

    def history(self, n_history: int, frame_stride: int) -> torch.Tensor:
        """``[B, n_history, H, W, 3]`` uint8: frames at ``t - (n_history-1)*stride, ..., t``, the first
        frame repeated before the episode's start (as the training windows pad)."""
        idx = self._history_steps(n_history, frame_stride)
        return torch.from_numpy(np.stack([np.stack([f[i] for i in idx]) for f in self.frames]))

    def _history_steps(self, n_history: int, frame_stride: int) -> np.ndarray:
        return np.maximum(self.steps + WindowSpec(n_history, 1, frame_stride).history_offsets(), 0)

    def history_states(self, n_history: int, frame_stride: int) -> np.ndarray:
        """``[B, n_history, D]``: the states at the frames `history` returns (for a world model's
        proprioception: what the agent knows of itself, never the block)."""
        idx = self._history_steps(n_history, frame_stride)
        return np.stack([np.stack([log[i] for i in idx]) for log in self.state_log])

    def current_frames(self) -> np.ndarray:
        """``[B, H, W, 3]`` uint8, the latest observation of each episode."""
        return np.stack([f[-1] for f in self.frames])

    def step(self, actions) -> None:
        """Execute ``actions [B, n, A]`` (env units), clipped to the action box."""
        actions = np.asarray(actions.detach().cpu() if torch.is_tensor(actions) else actions, dtype=np.float32)
        actions = np.clip(actions, self.action_low, self.action_high)
        for b, env in enumerate(self.envs):
            for a in actions[b]:
                obs, *_ = env.step(a)
                self.frames[b].append(obs)
                self.state_log[b].append(env.get_state())
        self.steps += actions.shape[1]

    def states(self) -> np.ndarray:
        """``[B, D]`` the true simulator states (for judging after the episode, never during)."""
        return np.stack([env.get_state() for env in self.envs])
