"""The UVA world model: frame tokenizer, joint video-action transformer, diffusion heads, masked modes,
inference API and checkpoints. Knows nothing of planners, environments or the CLI."""

from world_model.errors import CheckpointError, WorldModelError

__all__ = ["CheckpointError", "WorldModelError"]
