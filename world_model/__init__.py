"""The UVA world model: frame tokenizer, joint video-action transformer, diffusion heads, masked modes,
inference API and checkpoints. Knows nothing of planners, environments or the CLI.

Heavy names (torch, diffusers) load on first access (PEP 562), so ``from world_model.errors import
WorldModelError`` or reading a config stays instant for the CLI.
"""

from __future__ import annotations

import importlib

from world_model.errors import CheckpointError, WorldModelError

_LAZY = {
    "UVA": "world_model.model",
    "ForwardResult": "world_model.model",
    "UVAConfig": "world_model.config",
    "TokenizerConfig": "world_model.config",
    "CONFIGS": "world_model.config",
    "MODE_NAMES": "world_model.config",
    "make_config": "world_model.config",
    "FrameTokenizer": "world_model.tokenizer",
    "MODES": "world_model.modes",
    "Mode": "world_model.modes",
    "ActionNormalizer": "world_model.actions",
    "save_checkpoint": "world_model.checkpoint",
    "load": "world_model.checkpoint",
    "load_config": "world_model.checkpoint",
    "load_extra_state": "world_model.checkpoint",
}

__all__ = ["CheckpointError", "WorldModelError", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'world_model' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
