"""Input checks shared by the environments: every bad value becomes one clear UserInputError."""

from __future__ import annotations

import numpy as np

from uva_plan.errors import UserInputError

MIN_IMAGE_SIZE, MAX_IMAGE_SIZE = 16, 512


def check_image_size(image_size) -> int:
    if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)):
        raise UserInputError(f"image_size is {image_size!r}; expected an integer in [{MIN_IMAGE_SIZE}, {MAX_IMAGE_SIZE}]")
    if not MIN_IMAGE_SIZE <= int(image_size) <= MAX_IMAGE_SIZE:
        raise UserInputError(f"image_size is {image_size}; expected an integer in [{MIN_IMAGE_SIZE}, {MAX_IMAGE_SIZE}]")
    return int(image_size)


def check_max_steps(max_episode_steps) -> int:
    if isinstance(max_episode_steps, bool) or not isinstance(max_episode_steps, (int, np.integer)) or max_episode_steps < 1:
        raise UserInputError(f"max_episode_steps is {max_episode_steps!r}; expected an integer >= 1")
    return int(max_episode_steps)


def as_vector(value, size: int, what: str, layout: str) -> np.ndarray:
    """`value` as a finite float64 `[size]` vector, or a UserInputError naming the expected layout."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise UserInputError(f"{what} is {value!r}; expected {size} numbers {layout}") from None
    if arr.shape != (size,):
        raise UserInputError(f"{what} has shape {arr.shape}; expected ({size},) {layout}")
    if not np.all(np.isfinite(arr)):
        raise UserInputError(f"{what} contains NaN or infinite values: {arr.tolist()}; expected finite numbers {layout}")
    return arr


def as_action(action, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """A finite action of the right shape, clipped into `[low, high]` (the env's action bounds)."""
    layout = f"in [{low.tolist()}, {high.tolist()}]"
    return np.clip(as_vector(action, low.shape[0], "action", layout), low, high)
