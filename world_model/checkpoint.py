"""Checkpoints: ``RUN_DIR/model.safetensors`` (every tensor of the model's state dict) and
``RUN_DIR/config.json`` (format, version, model / tokenizer / normaliser configs, the weights' SHA-256
and caller metadata). Both are written atomically (temp file in the same folder, then ``os.replace``);
the weights go first and the JSON names their hash, so a crash between the two writes, a truncated
file or a pair from two different runs is detected instead of loaded. No pickle anywhere.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from world_model.config import TokenizerConfig, UVAConfig
from world_model.errors import CheckpointError, WorldModelError
from world_model.files import atomic_write_bytes

FORMAT = "uva-plan/world_model"
FORMAT_VERSION = 1
# Bumped whenever the model's layers change, so an old checkpoint is refused with a reason instead of
# a list of mismatched tensors. 2: sin-cos spatial positions shared by the goal tokens, the
# latent-comparison distance head and the frame-pair action head. 3: the imagination options of the
# config (current-frame fusion, residual video target, prefix actions, local mixing), whose version-2
# meaning is filled in when an older config is read, so version-2 checkpoints still load.
ARCHITECTURE_VERSION = 3
# What a version-2 checkpoint was, in the config fields added by version 3.
_VERSION_2_FIELDS = {"fuse_current_frame": False, "video_target": "frame", "action_context": "frame", "local_mixing": 0}
_READABLE_VERSIONS = (2, ARCHITECTURE_VERSION)
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"


def save_checkpoint(model, run_dir, extra_state: dict[str, Any] | None = None) -> Path:
    """Write ``model`` (a ``UVA``) to ``run_dir``; ``extra_state`` is JSON-serialisable caller metadata
    (e.g. the training step) stored in ``config.json`` and read back by ``load_extra_state``.
    Returns the run directory."""
    run_dir = Path(run_dir)
    try:
        config_extra = json.loads(json.dumps(extra_state or {}, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"extra_state cannot be written as JSON ({exc}); expected plain numbers, strings, lists and dicts") from None
    if not isinstance(config_extra, dict):
        raise CheckpointError(f"extra_state is a {type(extra_state).__name__}; expected a dict")
    run_dir.mkdir(parents=True, exist_ok=True)
    tensors = {name: t.detach().to("cpu").contiguous().clone() for name, t in model.state_dict().items()}
    weights = save_safetensors(tensors, metadata={"format": FORMAT, "format_version": str(FORMAT_VERSION)})
    model_cfg = model.config.to_dict()
    tokenizer_cfg = model_cfg.pop("tokenizer")
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "architecture_version": ARCHITECTURE_VERSION,
        "model": model_cfg,
        "tokenizer": tokenizer_cfg,
        "normalizer": model.normalizer.to_dict(),
        "weights_sha256": hashlib.sha256(weights).hexdigest(),
        "extra_state": config_extra,
    }
    atomic_write_bytes(run_dir / WEIGHTS_FILE, weights)
    atomic_write_bytes(run_dir / CONFIG_FILE, (json.dumps(config, indent=2) + "\n").encode())
    return run_dir


def _read_config(run_dir: Path) -> dict:
    path = run_dir / CONFIG_FILE
    if not run_dir.is_dir():
        raise CheckpointError(f"no checkpoint directory at {run_dir}; expected a folder with {WEIGHTS_FILE} and {CONFIG_FILE}")
    if not path.is_file():
        raise CheckpointError(f"{path} is missing; expected {CONFIG_FILE} next to {WEIGHTS_FILE} (a run folder of `uva-plan train`)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path} is not valid JSON ({exc}); expected a checkpoint config written by `uva-plan train`") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise CheckpointError(f"{path} has format {found!r}; expected {FORMAT!r} (a uva-plan world-model checkpoint)")
    if data.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has format version {data.get('format_version')!r}; expected {FORMAT_VERSION} "
            "(re-save it with this version of uva-plan)"
        )
    return data


def _config_from(data: dict, path: Path) -> UVAConfig:
    for key in ("model", "tokenizer", "normalizer"):
        if not isinstance(data.get(key), dict):
            raise CheckpointError(f"{path} has no '{key}' object; expected model, tokenizer and normalizer configs")
    model = dict(data["model"])
    if data.get("architecture_version", 1) == 2:
        model = {**_VERSION_2_FIELDS, **model}
    try:
        config = UVAConfig.from_dict({**model, "tokenizer": TokenizerConfig.from_dict(data["tokenizer"])})
    except WorldModelError as exc:
        raise CheckpointError(f"{path} holds an invalid config: {exc}") from None
    norm = data["normalizer"]
    if norm.get("low") != config.action_low or norm.get("high") != config.action_high:
        raise CheckpointError(
            f"{path} has normalizer limits low={norm.get('low')} high={norm.get('high')}; expected the model's "
            f"action_low={config.action_low} action_high={config.action_high}"
        )
    return config


def load_config(run_dir) -> UVAConfig:
    """The model config of a checkpoint, without reading its weights (e.g. to check ``env_name``)."""
    run_dir = Path(run_dir)
    return _config_from(_read_config(run_dir), run_dir / CONFIG_FILE)


def load_extra_state(run_dir) -> dict:
    """The ``extra_state`` dict that ``save_checkpoint`` stored."""
    data = _read_config(Path(run_dir))
    extra = data.get("extra_state", {})
    if not isinstance(extra, dict):
        raise CheckpointError(f"{Path(run_dir) / CONFIG_FILE} has extra_state {extra!r}; expected a JSON object")
    return extra


def load(run_dir, device: str | torch.device = "cpu"):
    """Load a ``UVA`` saved by ``save_checkpoint``, validating the format version, the weights' hash
    and every tensor's name, shape and dtype; any problem is one ``CheckpointError``."""
    from world_model.model import UVA

    run_dir = Path(run_dir)
    data = _read_config(run_dir)
    config = _config_from(data, run_dir / CONFIG_FILE)
    arch = data.get("architecture_version", 1)
    if arch not in _READABLE_VERSIONS:
        raise CheckpointError(
            f"{run_dir / CONFIG_FILE} holds a world model of architecture version {arch!r}; this code builds "
            f"version {ARCHITECTURE_VERSION} and reads {', '.join(map(str, _READABLE_VERSIONS))}; expected a "
            "checkpoint trained with one of these (retrain it with `uva-plan train`)"
        )
    wpath = run_dir / WEIGHTS_FILE
    if not wpath.is_file():
        raise CheckpointError(f"{wpath} is missing; expected the weights next to {CONFIG_FILE}")
    raw = wpath.read_bytes()
    digest = data.get("weights_sha256")
    if digest is not None and hashlib.sha256(raw).hexdigest() != digest:
        raise CheckpointError(
            f"{wpath} ({len(raw)} bytes) does not match the hash recorded in {CONFIG_FILE}; expected the weights "
            "saved with that config (the file is truncated, corrupt or from another run)"
        )
    try:
        tensors = load_safetensors(raw)
    except (SafetensorError, ValueError, RuntimeError, OSError) as exc:
        raise CheckpointError(f"{wpath} is not a readable safetensors file ({exc}); expected the {WEIGHTS_FILE} written by `uva-plan train`") from None
    model = UVA(config)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"{wpath} does not match the model in {CONFIG_FILE}: missing tensors {missing[:5]}"
            f"{' ...' if len(missing) > 5 else ''}, unexpected tensors {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''}; "
            "expected exactly the model's state dict"
        )
    for name, ref in expected.items():
        got = tensors[name]
        if tuple(got.shape) != tuple(ref.shape) or got.dtype != ref.dtype:
            raise CheckpointError(
                f"{wpath}: tensor {name!r} has shape {tuple(got.shape)} and dtype {got.dtype}; expected shape "
                f"{tuple(ref.shape)} and dtype {ref.dtype} for the model in {CONFIG_FILE}"
            )
        if got.is_floating_point() and not torch.isfinite(got).all():
            raise CheckpointError(f"{wpath}: tensor {name!r} contains NaN or infinite values; expected finite weights")
    model.load_state_dict(tensors, strict=True)
    return model.to(device).eval()
