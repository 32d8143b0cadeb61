"""A trained run and the data it is refined on, as every post-training stage (fit-distance,
extract-policy) starts: the model and buffer checked to match, the run's own train / held-out split,
and every frame encoded once by the frozen tokenizer."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from uva_plan.errors import UserInputError

# Frames per tokenizer call: as floats all at once, 80,000 Wall frames would take ~4 GB.
ENCODE_CHUNK = 1024


def episodes_of_run(run_dir: Path, data: Path, n_episodes: int) -> tuple[list[int], list[int]]:
    """(train, held-out) episodes: the run's own split when it was trained on this file, else a fresh
    10% split."""
    from uva_plan.data import split_episodes
    from uva_plan.training_config import RUN_FILE

    info_path = run_dir / RUN_FILE
    if info_path.is_file():
        info = json.loads(info_path.read_text())
        trained_on = info.get("train_config", {}).get("data")
        train_eps, val_eps = info.get("train_episodes"), info.get("val_episodes")
        same = trained_on is not None and Path(trained_on).resolve() == data.resolve()
        if same and train_eps and val_eps and max(train_eps + val_eps) < n_episodes:
            return [int(e) for e in train_eps], [int(e) for e in val_eps]
    train_ids, val_ids = split_episodes(n_episodes, 0.1, 0)
    return train_ids.tolist(), val_ids.tolist()


def load_run_and_data(run_dir: Path, data: Path, device: str = "cpu"):
    """``(model, replay buffer)`` of a trained run and the data to refine it on, checked to match (same
    env, same frame size): the start of every post-training stage (fit-distance, extract-policy)."""
    import world_model
    from uva_plan.data import load_replay_buffer

    model = world_model.load(run_dir, device=device)
    buffer = load_replay_buffer(data)
    env = buffer.attrs.get("env_name")
    if model.config.env_name and env and env != model.config.env_name:
        raise UserInputError(f"{data} holds {env!r} episodes but {run_dir} was trained on {model.config.env_name!r}; "
                             "expected data of the same env")
    if buffer.image_size != model.config.image_size:
        raise UserInputError(f"{data} has {buffer.image_size}px frames; expected {model.config.image_size}px as the model")
    return model, buffer


def encode_buffer(model, buffer, chunk: int = ENCODE_CHUNK):
    """Latents ``[N, h, w, c]`` of every frame of ``buffer`` by the frozen tokenizer, in chunks (the
    frames as floats at once would take ~4 GB for 80,000 Wall frames)."""
    import torch

    frames = torch.from_numpy(np.asarray(buffer.img))
    with torch.no_grad():
        return torch.cat([model.encode(frames[i:i + chunk].to(model.device)) for i in range(0, len(frames), chunk)])
