"""The one optimisation loop of every training stage: the tokenizer and the world model (`training`, with
accelerate, EMA, validation and resume in its hooks), policy fine-tuning and extraction (`finetuning`) and
the goal-distance refit (`distance_fit`). Draw a loss, check it, step, report."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class StepReport:
    """What one optimizer step leaves for the stage's bookkeeping (logs, validation, checkpoints)."""

    done: int  # steps finished, this one included
    loss: float
    logs: dict = field(default_factory=dict)  # the loss's own terms, when `loss_of_step` returns them
    grad_norm: float | None = None  # before clipping; None without clipping
    seconds: float = 0.0  # this step's draw, forward, backward and update (the bookkeeping excluded)


def run_steps(loss_of_step: Callable[[int], object], params, optimizer, scheduler, *, steps: int, start: int = 0,
              clip_norm: float | None = None, backward: Callable | None = None, clip: Callable | None = None,
              after_step: Callable[[], None] | None = None, progress: Callable[[int, float], None] | None = None,
              report: Callable[[StepReport], None] | None = None, what: str = "fine-tuning") -> None:
    """Optimizer steps ``start .. steps - 1`` on ``loss_of_step(step)``, a scalar tensor or ``(loss, logs)``.

    A non-finite loss stops with one clear error naming the step (and the logs' ``mode``) before any
    update. ``backward(loss)`` and ``clip(params, max_norm) -> norm`` default to torch's; world-model
    training passes accelerate's. ``after_step()`` runs after each update (an EMA or target network's
    step); then ``progress(step, loss)`` and ``report(StepReport)``."""
    import torch

    params = list(params)
    backward = backward or (lambda loss: loss.backward())
    clip = clip or torch.nn.utils.clip_grad_norm_
    for step in range(start, steps):
        t0 = time.perf_counter()
        out = loss_of_step(step)
        loss, logs = out if isinstance(out, tuple) else (out, {})
        if not torch.isfinite(loss):
            mode = f" ({logs['mode']})" if "mode" in logs else ""
            raise FloatingPointError(f"{what} loss became {float(loss.detach())} at step {step + 1}{mode}; lower the learning rate")
        optimizer.zero_grad(set_to_none=True)
        backward(loss)
        for p in params:  # a head the drawn mode left out still takes its AdamW step (decay, moments)
            if p.grad is None and p.requires_grad:
                p.grad = torch.zeros_like(p)
        grad_norm = float(clip(params, clip_norm)) if clip_norm is not None else None
        optimizer.step()
        scheduler.step()
        if after_step is not None:
            after_step()
        seconds = time.perf_counter() - t0
        value = float(loss.detach())
        if progress is not None:
            progress(step + 1, value)
        if report is not None:
            report(StepReport(step + 1, value, logs, grad_norm, seconds))
