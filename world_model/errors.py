"""Errors the world model raises for input a caller can fix (shapes, NaN, checkpoints)."""


class WorldModelError(ValueError):
    """Bad input to the world model: the message says what was wrong and what was expected."""


class CheckpointError(WorldModelError):
    """A checkpoint is missing, truncated, foreign, of another version or of mismatched shapes."""
