"""What a training run is asked to do: the per-size presets of the training loop and the run's
configuration and result (the model sizes themselves live in `world_model.config`)."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from uva_plan.errors import UserInputError

CONFIG_NAMES = ("tiny", "small", "base")
METRICS_FILE = "metrics.jsonl"
RUN_FILE = "train_config.json"
SHORT_MODE_NAMES = {
    "video_prediction": "video",
    "forward_dynamics": "fwd",
    "policy": "policy",
    "inverse_dynamics": "inv",
    "joint": "joint",
}

# UVA trains with AdamW lr 1e-4 (see PRESETS for ours), betas (0.9, 0.95), weight decay 0.02.
UVA_BETAS = (0.9, 0.95)
UVA_WEIGHT_DECAY = 0.02
UVA_WARMUP_STEPS = 1000


@dataclass(frozen=True)
class TrainingPreset:
    """Per-config defaults of the training loop (the model sizes live in world_model.config)."""

    batch_size: int
    tokenizer_steps: int
    tokenizer_batch_size: int
    lr: float
    tokenizer_lr: float


# Learning rates. UVA's 1e-4 (AdamW) belongs to a large model trained for 100k+ steps at GPU batch
# sizes. Here a run affords 1-3k steps at batch 16-32 with 0.3-2M parameters. The batch-size rules
# (linear, or square-root for Adam) would LOWER the rate for our small batches, which only makes sense
# at a fixed, long step budget; with 100x fewer steps the binding constraint is progress per step, and
# narrow transformers are stable at larger rates (muP-style: rate ~ 1/width). So the rate is
# 1e-3 * 64 / width: tiny (width 64) 1e-3, small (128) 5e-4, base (512) 1.25e-4 ~ UVA's 1e-4.
# Warm-up, gradient clipping and betas (0.9, 0.95) keep the small-batch noise in check.
# Measured (tiny, Wall 200 episodes, 300 steps at batch 16; held-out video / policy loss):
# 1e-4: 1.38 / 1.22, 3e-4: 1.12 / 1.21, 1e-3: 0.90 / 1.17, 3e-3: 0.84 / 1.22 (action modes worse).
PRESETS: dict[str, TrainingPreset] = {
    "tiny": TrainingPreset(batch_size=16, tokenizer_steps=300, tokenizer_batch_size=32, lr=1e-3, tokenizer_lr=2e-3),
    "small": TrainingPreset(batch_size=32, tokenizer_steps=500, tokenizer_batch_size=32, lr=5e-4, tokenizer_lr=1e-3),
    "base": TrainingPreset(batch_size=64, tokenizer_steps=5000, tokenizer_batch_size=64, lr=1.25e-4, tokenizer_lr=5e-4),
}


@dataclass
class TrainConfig:
    """One training run. `None` fields take the defaults of the `config` preset (see PRESETS)."""

    data: str
    out: str
    config: str = "small"
    steps: int = 2000
    tokenizer_steps: int | None = None
    batch_size: int | None = None
    tokenizer_batch_size: int | None = None
    lr: float | None = None
    tokenizer_lr: float | None = None
    betas: tuple[float, float] = UVA_BETAS
    weight_decay: float = UVA_WEIGHT_DECAY
    # UVA warms up for 1000 of its 100k+ steps; a short run warms up for 5% of its steps instead.
    warmup_steps: int | None = None
    grad_clip: float = 1.0
    # diffusers EMAModel with warm-up (decay 1 - (1 + step)^-power, capped): power 3/4 is diffusers'
    # advice for runs under ~100k steps (0.999 reached at 10k steps), so a 2k-step run still averages.
    ema_decay: float = 0.9999
    ema_power: float = 0.75
    val_every: int = 200
    val_batches: int = 4
    val_fraction: float = 0.1
    save_every: int = 500
    log_every: int = 10
    seed: int = 0
    device: str | None = None  # "cpu" | "cuda" | None (cuda when available)
    resume: bool = False
    # Stop after this many world-model steps as if interrupted (the schedule still spans `steps`): for
    # splitting one run over several sessions, and for testing resume. A resumed run may also be given
    # more `steps` than before: the cosine schedule then stretches to the new total from the current step.
    stop_at: int | None = None
    progress: bool = True
    # When set, every process writes the digest of its weights there at the end (replica check).
    replica_digest_dir: str | None = None
    model_overrides: dict[str, Any] = field(default_factory=dict)
    # Give the world model the agent's proprioception from the data's states (the env's
    # `uva_plan.envs.proprio_config`; DINO-WM's proprio). Needs data with states from `uva-plan collect`.
    proprio: bool = False
    # With `proprio`: the pose of the object the agent pushes too (PushT's T), predicted in its own frame.
    object_pose: bool = False
    # Start the world-model stage from this run's weights (its frozen tokenizer included) instead of
    # training a tokenizer and starting from scratch; what `model_overrides` adds starts at its init.
    # Why: a design grown in stages (a Gaussian warp first, then its per-cell correction).
    init_from: str | None = None

    def resolved(self) -> TrainConfig:
        """A copy with the preset's defaults filled in and every value checked."""
        if self.config not in PRESETS:
            raise UserInputError(f"config is {self.config!r}; expected one of {list(CONFIG_NAMES)}")
        preset = PRESETS[self.config]
        cfg = copy.deepcopy(self)
        for name in ("tokenizer_steps", "batch_size", "tokenizer_batch_size", "lr", "tokenizer_lr"):
            if getattr(cfg, name) is None:
                setattr(cfg, name, getattr(preset, name))
        if cfg.warmup_steps is None:
            cfg.warmup_steps = min(UVA_WARMUP_STEPS, max(1, cfg.steps // 20))
        cfg.betas = tuple(float(b) for b in cfg.betas)
        cfg._check()
        return cfg

    def _check(self) -> None:
        def need(ok: bool, message: str) -> None:
            if not ok:
                raise UserInputError(message)

        for name in ("steps", "batch_size", "tokenizer_batch_size", "val_every", "val_batches", "save_every", "log_every"):
            v = getattr(self, name)
            need(isinstance(v, int) and not isinstance(v, bool) and v >= 1, f"{name} is {v!r}; expected an integer >= 1")
        for name in ("tokenizer_steps", "warmup_steps", "seed"):
            v = getattr(self, name)
            need(isinstance(v, int) and not isinstance(v, bool) and v >= 0, f"{name} is {v!r}; expected an integer >= 0")
        for name in ("lr", "tokenizer_lr", "grad_clip"):
            v = getattr(self, name)
            need(_finite(v) and 0 < v <= 1.0 if name != "grad_clip" else _finite(v) and v > 0,
                 f"{name} is {v!r}; expected a positive finite number" + (" <= 1" if name != "grad_clip" else ""))
        need(len(self.betas) == 2 and all(_finite(b) and 0 <= b < 1 for b in self.betas),
             f"betas are {self.betas!r}; expected two numbers in [0, 1)")
        need(_finite(self.weight_decay) and 0 <= self.weight_decay <= 1, f"weight_decay is {self.weight_decay!r}; expected a number in [0, 1]")
        need(_finite(self.ema_decay) and 0 < self.ema_decay < 1, f"ema_decay is {self.ema_decay!r}; expected a number in (0, 1)")
        need(_finite(self.ema_power) and self.ema_power > 0, f"ema_power is {self.ema_power!r}; expected a positive number")
        need(_finite(self.val_fraction) and 0 < self.val_fraction < 1, f"val_fraction is {self.val_fraction!r}; expected a number in (0, 1)")
        need(self.device in (None, "cpu", "cuda"), f"device is {self.device!r}; expected 'cpu' or 'cuda'")
        need(self.stop_at is None or (isinstance(self.stop_at, int) and 1 <= self.stop_at <= self.steps),
             f"stop_at is {self.stop_at!r}; expected an integer in [1, steps={self.steps}]")
        need(isinstance(self.model_overrides, dict), f"model_overrides is {self.model_overrides!r}; expected a dict")
        need(isinstance(self.proprio, bool), f"proprio is {self.proprio!r}; expected true or false")
        need(isinstance(self.object_pose, bool), f"object_pose is {self.object_pose!r}; expected true or false")
        need(not self.object_pose or self.proprio, "--object-pose joins the proprioception; expected also --proprio")


@dataclass
class TrainResult:
    """What a run reached. Losses are per mode; `val_losses` are the EMA weights' on held-out episodes."""

    run_dir: Path
    step: int
    train_losses: dict[str, float]
    val_losses: dict[str, float]
    tokenizer_val: dict[str, float]
    samples_per_second: float
    num_processes: int
    is_main_process: bool = True


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

