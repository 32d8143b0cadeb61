"""Resume state of a training run, so an interrupted run continues exactly where it stopped.

Stored as safetensors (every tensor: raw weights, EMA shadow weights, optimizer moments, cached latents)
plus JSON (stage, step, scheduler, scalar optimizer/EMA fields, run settings). No pickle and never
`torch.load`: a resume file can come from anywhere and must not be able to run code.

Layout of `RUN_DIR/train_state/`:
- `tensors-<stage>-<step>.safetensors`: written first, under a new name;
- `state.json`: the index, written last with an atomic rename; it names the tensors file it belongs to,
  so a crash mid-save leaves the previous (index, tensors) pair intact and loadable;
- `latents.safetensors`: every frame of the buffer encoded by the frozen tokenizer, saved once when the
  world-model stage starts, so a resumed run trains on bit-identical latents without re-encoding.

Randomness is not carried as generator states: the trainer reseeds every step from
(seed, stage, step, rank) and derives the data order from (seed, epoch), so the same state reproduces the
same run for any number of processes. The seed is part of the saved settings.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from uva_plan.errors import UserInputError
from uva_plan.json_files import atomic_write_json  # noqa: F401  (importable from here as before)
from world_model.files import atomic_write_bytes

STATE_FORMAT = "uva-plan-train-state"
STATE_VERSION = 1
STATE_DIR = "train_state"
INDEX_FILE = "state.json"
LATENTS_FILE = "latents.safetensors"
STAGES = ("tokenizer", "world_model")


@dataclass
class TrainState:
    """Everything a run needs to continue. `step` counts optimizer steps finished in `stage`."""

    stage: str
    step: int
    model: dict[str, Any]
    optimizer: dict[str, Any] | None = None
    scheduler: dict[str, Any] | None = None
    ema: dict[str, Any] | None = None
    info: dict[str, Any] = field(default_factory=dict)


def has_train_state(run_dir: str | os.PathLike) -> bool:
    return (Path(run_dir) / STATE_DIR / INDEX_FILE).is_file()


def save_train_state(run_dir: str | os.PathLike, state: TrainState) -> Path:
    """Write `state` under `RUN_DIR/train_state/` atomically; returns the index path."""
    from safetensors.torch import save as st_save

    if state.stage not in STAGES:
        raise ValueError(f"stage {state.stage!r}; expected one of {STAGES}")
    folder = Path(run_dir) / STATE_DIR
    folder.mkdir(parents=True, exist_ok=True)

    tensors: dict[str, Any] = {f"model/{k}": _plain(v) for k, v in state.model.items()}
    index: dict[str, Any] = {
        "format": STATE_FORMAT,
        "version": STATE_VERSION,
        "stage": state.stage,
        "step": int(state.step),
        "info": state.info,
        "scheduler": state.scheduler,
        "optimizer": None,
        "ema": None,
    }
    if state.optimizer is not None:
        opt_tensors, index["optimizer"] = _split_optimizer(state.optimizer)
        tensors.update(opt_tensors)
    if state.ema is not None:
        ema_scalars = {k: v for k, v in state.ema.items() if k != "shadow_params"}
        shadow = state.ema["shadow_params"]
        ema_scalars["n_shadow"] = len(shadow)
        index["ema"] = ema_scalars
        tensors.update({f"ema/{i}": _plain(t) for i, t in enumerate(shadow)})

    name = f"tensors-{state.stage}-{int(state.step):08d}.safetensors"
    data = st_save(tensors, metadata={"format": STATE_FORMAT, "stage": state.stage, "step": str(state.step)})
    atomic_write_bytes(folder / name, data)
    index["tensors_file"] = name
    index["tensors_sha256"] = hashlib.sha256(data).hexdigest()
    atomic_write_json(folder / INDEX_FILE, index)
    for old in folder.glob("tensors-*.safetensors"):
        if old.name != name:
            old.unlink(missing_ok=True)
    return folder / INDEX_FILE


def load_train_state(run_dir: str | os.PathLike) -> TrainState:
    """Read and validate the resume state; any problem is one UserInputError naming the file."""
    from safetensors.torch import load as st_load

    folder = Path(run_dir) / STATE_DIR
    index_path = folder / INDEX_FILE
    if not index_path.is_file():
        raise UserInputError(f"no resume state in {run_dir}: expected {index_path} (written by `uva-plan train`)")
    try:
        index = json.loads(index_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserInputError(f"resume state {index_path} is corrupt ({exc}); expected the JSON index written by uva-plan train") from None
    if not isinstance(index, dict) or index.get("format") != STATE_FORMAT:
        raise UserInputError(f"{index_path} is not a uva-plan resume state; expected format {STATE_FORMAT!r}")
    if index.get("version") != STATE_VERSION:
        raise UserInputError(
            f"resume state {index_path} has version {index.get('version')!r}; this uva-plan reads version {STATE_VERSION}"
        )
    stage, step = index.get("stage"), index.get("step")
    if stage not in STAGES or not isinstance(step, int) or step < 0:
        raise UserInputError(f"resume state {index_path} has stage={stage!r}, step={step!r}; expected a stage in {STAGES} and a step >= 0")

    tensors_path = folder / str(index.get("tensors_file", ""))
    try:
        data = tensors_path.read_bytes()
    except OSError:
        raise UserInputError(f"resume state is incomplete: {tensors_path} named by {index_path} is missing") from None
    if hashlib.sha256(data).hexdigest() != index.get("tensors_sha256"):
        raise UserInputError(f"resume state {tensors_path} is truncated or altered (checksum differs from {index_path})")
    try:
        tensors = st_load(data)
    except Exception as exc:  # safetensors raises its own error types for bad headers
        raise UserInputError(f"resume state {tensors_path} is not a readable safetensors file ({exc})") from None

    try:
        model = {k[len("model/") :]: v for k, v in tensors.items() if k.startswith("model/")}
        optimizer = _join_optimizer(tensors, index["optimizer"]) if index.get("optimizer") else None
        ema = None
        if index.get("ema"):
            ema = {k: v for k, v in index["ema"].items() if k != "n_shadow"}
            ema["shadow_params"] = [tensors[f"ema/{i}"] for i in range(int(index["ema"]["n_shadow"]))]
    except (KeyError, TypeError, ValueError) as exc:
        raise UserInputError(f"resume state in {folder} is inconsistent (missing {exc}); delete it or start a new run") from None
    return TrainState(
        stage=stage,
        step=step,
        model=model,
        optimizer=optimizer,
        scheduler=index.get("scheduler"),
        ema=ema,
        info=index.get("info") or {},
    )


def save_latents(run_dir: str | os.PathLike, latents, fingerprint: str) -> None:
    """Cache the encoded frames `[N, h, w, c]` with the fingerprint of the data they came from."""
    from safetensors.torch import save as st_save

    folder = Path(run_dir) / STATE_DIR
    folder.mkdir(parents=True, exist_ok=True)
    data = st_save({"latents": _plain(latents)}, metadata={"format": STATE_FORMAT, "data": fingerprint})
    atomic_write_bytes(folder / LATENTS_FILE, data)


def load_latents(run_dir: str | os.PathLike, fingerprint: str):
    """The cached latents if present and made from the same data, else None (the caller re-encodes)."""
    from safetensors import safe_open

    path = Path(run_dir) / STATE_DIR / LATENTS_FILE
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as f:
            if (f.metadata() or {}).get("data") != fingerprint:
                return None
            return f.get_tensor("latents")
    except Exception:  # a torn or foreign cache is only a cache: re-encode instead
        return None


def _plain(t):
    """A contiguous CPU copy: safetensors refuses shared or strided storage."""
    return t.detach().to("cpu").contiguous().clone()


def _split_optimizer(sd: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    import torch

    tensors: dict[str, Any] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, st in sd["state"].items():
        for key, value in st.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optimizer/{pid}/{key}"] = _plain(value)
            else:
                scalars.setdefault(str(pid), {})[key] = value
    meta = {"param_groups": sd["param_groups"], "scalars": scalars, "ids": [int(p) for p in sd["state"]]}
    return tensors, meta


def _join_optimizer(tensors: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {pid: dict(meta["scalars"].get(str(pid), {})) for pid in meta["ids"]}
    for name, value in tensors.items():
        if name.startswith("optimizer/"):
            _, pid, key = name.split("/", 2)
            state[int(pid)][key] = value
    return {"state": state, "param_groups": meta["param_groups"]}
