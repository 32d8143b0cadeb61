"""The checkpoint shipped inside the package must load with the code beside it (a model change that
forgets to retrain it breaks `uva-plan demo`), stay small, and say how it was made."""

import json

import torch

from uva_plan.planning import DEFAULT_CHECKPOINTS, load_model_for_env


def test_shipped_wall_checkpoint_loads_and_answers():
    folder = DEFAULT_CHECKPOINTS / "wall"
    total = sum(p.stat().st_size for p in folder.iterdir())
    assert total <= 20 * 2**20, f"shipped checkpoint is {total / 2**20:.1f} MB; the budget is 20 MB"
    recipe = json.loads((folder / "train_config.json").read_text())["train_config"]
    assert recipe["config"] == "small" and recipe["steps"] > 0
    model = load_model_for_env(None, "wall")
    history = torch.zeros(1, model.config.n_history, 64, 64, 3, dtype=torch.uint8)
    actions = model.policy(history, goal=history[:, 0], num_samples=2, num_steps=1)
    assert actions.shape == (1, 2, model.config.chunk_len, 2)
    assert torch.isfinite(actions).all()
