"""What a training run reports: metrics.jsonl records, the progress bar with each mode's running loss,
and the per-mode loss meters averaged over processes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from uva_plan.training_config import SHORT_MODE_NAMES
from world_model.files import atomic_write_bytes


class MetricsLog:
    """Appends one JSON object per line to RUN_DIR/metrics.jsonl (main process only)."""

    def __init__(self, path: Path | None):
        self.path = path

    def truncate_after(self, stage: str, step: int) -> None:
        """On resume: drop the records an interrupted session wrote after its last saved state, so the
        resumed steps are not logged twice."""
        if self.path is None or not self.path.is_file():
            return
        order = {"tokenizer": 0, "world_model": 1}
        limit = (order[stage], step)
        kept = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                r = json.loads(line)
                if (order.get(r["stage"], 2), r["step"]) > limit:
                    continue
            except (json.JSONDecodeError, KeyError, TypeError):
                continue  # a line torn by the interruption
            kept.append(line)
        atomic_write_bytes(self.path, "".join(f"{line}\n" for line in kept).encode())

    def write(self, **record) -> None:
        if self.path is None:
            return
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record, allow_nan=True) + "\n")


def format_losses(losses: dict[str, float]) -> str:
    return "  ".join(f"{SHORT_MODE_NAMES.get(k, k)} {v:.4f}" for k, v in losses.items())


class ProgressBar:
    """Rich progress bar with the running loss of each mode (main process only)."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self._progress = None
        self._task = None

    def start(self, description: str, total: int, completed: int) -> None:
        if not self.enabled:
            return
        from uva_plan.progress import progress_bar

        self.stop()
        self._progress = progress_bar(remaining=True, fields=("losses",))
        self._progress.start()
        self._task = self._progress.add_task(description, total=total, completed=completed, losses="")

    def update(self, completed: int, losses: dict[str, float]) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=completed, losses=format_losses(losses))

    def print(self, text: str) -> None:
        if self._progress is not None:
            self._progress.console.print(text)
        elif self.enabled:
            from rich import print as rprint

            rprint(text)

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


class LossMeter:
    """Sums of loss terms per group (mode) since the last read; a read averages over all processes."""

    def __init__(self, groups, keys):
        self.groups, self.keys = list(groups), list(keys)
        self.sums = np.zeros((len(self.groups), len(self.keys), 2))

    def add(self, group: str, logs: dict, weight: float = 1.0) -> None:
        i = self.groups.index(group)
        for j, key in enumerate(self.keys):
            if key in logs:
                self.sums[i, j] += (float(logs[key]) * weight, weight)

    def read(self, accelerator=None) -> dict[str, dict[str, float]]:
        """`{group: {key: mean}}` for the groups and keys seen, then reset."""
        t = torch.tensor(self.sums)  # a copy: the sums are reset below
        if accelerator is not None and accelerator.num_processes > 1:
            t = accelerator.reduce(t.to(accelerator.device), reduction="sum").cpu()
        self.sums[:] = 0
        return {
            g: {k: float(t[i, j, 0] / t[i, j, 1]) for j, k in enumerate(self.keys) if t[i, j, 1] > 0}
            for i, g in enumerate(self.groups)
            if t[i, :, 1].sum() > 0
        }


def flat_metrics(means: dict[str, dict[str, float]]) -> dict[str, float]:
    """`{mode: {term: v}}` -> `{"term/mode": v}` for metrics.jsonl."""
    return {f"{key}/{group}": v for group, terms in means.items() for key, v in terms.items()}


LOSS_TERMS = ("loss", "video_loss", "action_loss", "distance_loss", "latent_distance_loss", "prior_loss", "proprio_loss",
              "object_loss")
TOKENIZER_TERMS = ("tokenizer_loss", "recon", "kl", "mse")
