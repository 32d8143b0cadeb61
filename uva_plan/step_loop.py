"""The short optimisation loop shared by the post-training stages (policy fine-tuning and extraction in
`finetuning`, the goal-distance refit in `distance_fit`): draw a loss, check it, step, report.

World-model training (`training`) keeps its own loop: it adds accelerate, EMA, validation and resume,
which these minutes-long stages from trained weights do not need.
"""

from __future__ import annotations

from collections.abc import Callable


def run_steps(loss_of_step: Callable[[int], object], params, optimizer, scheduler, *, steps: int,
              clip_norm: float | None = None, after_step: Callable[[], None] | None = None,
              progress: Callable[[int, float], None] | None = None, what: str = "fine-tuning") -> None:
    """``steps`` optimizer steps on ``loss_of_step(step) -> scalar tensor``. A non-finite loss stops with
    one clear error naming the step; ``after_step()`` runs after each update (e.g. a target network's
    Polyak step); ``progress(step, loss)`` after each step."""
    import torch

    params = list(params)
    for step in range(steps):
        loss = loss_of_step(step)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{what} loss became {float(loss)} at step {step + 1}; lower the learning rate")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if clip_norm is not None:
            torch.nn.utils.clip_grad_norm_(params, clip_norm)
        optimizer.step()
        scheduler.step()
        if after_step is not None:
            after_step()
        if progress is not None:
            progress(step + 1, float(loss.detach()))
