"""What Wall and PushT share as gymnasium envs: `uint8 [S, S, 3]` observations, a box of actions, episodes
truncated at `max_episode_steps`, and the goal fields of `info`. Each env keeps its own state, dynamics
and drawing."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from uva_plan.envs.checks import check_image_size, check_max_steps


class PixelGoalEnv(gym.Env):
    """Base of the uva-plan envs. Subclasses call `_set_spaces` in `__init__` and define `check_state`,
    `set_state`, `is_success`, `state_distance`, `render` (the current frame), `_random_start` (a new
    episode's drawn state) and `_info` (the current info dict)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def _set_spaces(
        self, image_size: int, max_episode_steps: int, render_mode: str | None, low: np.ndarray, high: np.ndarray
    ) -> None:
        """Checked sizes, the action box `float32 [A]` and both gymnasium spaces; no goal, no step yet."""
        self.image_size = check_image_size(image_size)
        self.max_episode_steps = check_max_steps(max_episode_steps)
        self.render_mode = render_mode
        self.action_low, self.action_high = low, high
        self.action_space = spaces.Box(low, high, dtype=np.float32)
        self.observation_space = spaces.Box(0, 255, (self.image_size, self.image_size, 3), dtype=np.uint8)
        self._goal: np.ndarray | None = None
        self._steps = 0

    def reset(self, seed: int | None = None, options: dict | None = None):
        """A new episode from `options["state"]` or a drawn start; `options["goal_state"]` adds the goal
        fields to `info`."""
        super().reset(seed=seed)
        options = options or {}
        if options.get("state") is not None:
            self.set_state(options["state"])
        else:
            self._random_start()
        goal = options.get("goal_state")
        self._goal = None if goal is None else self.check_state(goal)
        self._steps = 0
        return self.render(), self._info()

    def _count_step(self) -> bool:
        """One env step taken; True when the episode is now truncated."""
        self._steps += 1
        return self._steps >= self.max_episode_steps

    def _with_goal(self, info: dict) -> dict:
        """`info` plus `is_success` and `distance` of the current state when the episode has a goal."""
        if self._goal is not None:
            info["is_success"] = self.is_success(self._state, self._goal)
            info["distance"] = self.state_distance(self._state, self._goal)
        return info
