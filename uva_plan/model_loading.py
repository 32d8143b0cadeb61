"""Where a job finds its world model: the checkpoint shipped in the package for an env, or a run folder,
loaded and checked to be one trained on that env."""

from __future__ import annotations

from pathlib import Path

from uva_plan.errors import UserInputError

DEFAULT_CHECKPOINTS = Path(__file__).parent / "checkpoints"


def default_checkpoint(env_name: str) -> Path:
    """The small checkpoint shipped inside the package for ``env_name``."""
    path = DEFAULT_CHECKPOINTS / env_name
    if not (path / "model.safetensors").is_file():
        raise UserInputError(
            f"no shipped checkpoint for env {env_name!r} (looked in {path}); train one with "
            f"`uva-plan train` and pass --checkpoint RUN_DIR"
        )
    return path


def load_model_for_env(checkpoint: str | Path | None, env_name: str, device: str = "cpu"):
    """Load a UVA checkpoint and check that it was trained on ``env_name``."""
    import world_model

    path = Path(checkpoint) if checkpoint is not None else default_checkpoint(env_name)
    model = world_model.load(path, device=device)
    trained_on = getattr(model.config, "env_name", None)
    if trained_on and trained_on != env_name:
        raise UserInputError(
            f"checkpoint {path} was trained on env {trained_on!r}; expected a checkpoint for {env_name!r}"
        )
    model.eval()
    return model
