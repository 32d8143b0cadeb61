"""Datasets: zarr replay buffers (`replay_buffer`) and training windows over them (`windows`).

Names are loaded on first use so that reading or writing a buffer does not import torch.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "FORMAT_VERSION": "uva_plan.data.replay_buffer",
    "ReplayBuffer": "uva_plan.data.replay_buffer",
    "ReplayBufferWriter": "uva_plan.data.replay_buffer",
    "load_replay_buffer": "uva_plan.data.replay_buffer",
    "save_replay_buffer": "uva_plan.data.replay_buffer",
    "WindowDataset": "uva_plan.data.windows",
    "WindowSpec": "uva_plan.data.windows",
    "normalizer_for": "uva_plan.data.windows",
    "split_episodes": "uva_plan.data.windows",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'uva_plan.data' has no attribute {name!r}")
