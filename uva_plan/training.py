"""Training of the UVA world model from a replay buffer: the frame tokenizer first, then UVA's masked
multi-task training on latents, in one run that can stop and resume exactly.

Stage 1 trains the tokenizer with its own (foreground-weighted) loss, fits its latent scale on data and
freezes it, as UVA freezes its VAE. Stage 2 encodes every frame of the buffer ONCE (the tokenizer is
frozen, so re-encoding each step would only cost time), then trains UVA on `WindowDataset` windows of
those latents with one masked mode per step: AdamW, diffusers' cosine schedule with warm-up and
diffusers' EMA, whose weights are validated and saved.

Multi-process: one code path for one process, `accelerate launch --multi_gpu --num_processes N` and
`torchrun --nproc_per_node N`; `accelerate.Accelerator` reads the launchers' environment. Each process
takes its slice of every global batch; gradients are averaged by DDP; only the main process writes
files and shows progress. `batch_size` is per process, so one optimizer step sees
`batch_size * num_processes` windows, and the step count (schedule, EMA, checkpoints) is the same for
any number of processes.

Reproducibility without carrying generator states: every step reseeds torch from
(seed, stage, step, rank) and the data order is a permutation per epoch derived from (seed, epoch), so
a resumed run sees exactly the batches and noise of an uninterrupted one.
"""

from __future__ import annotations

import copy
import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from uva_plan.errors import UserInputError
from uva_plan.init_from import start_from
from uva_plan.step_loop import StepReport, run_steps
from uva_plan.train_state import (
    TrainState,
    atomic_write_json,
    has_train_state,
    load_latents,
    load_train_state,
    save_latents,
    save_train_state,
)
from uva_plan.training_config import (  # noqa: F401  (the run's configuration, importable from here as before)
    CONFIG_NAMES,
    METRICS_FILE,
    PRESETS,
    RUN_FILE,
    UVA_BETAS,
    UVA_WEIGHT_DECAY,
    TrainConfig,
    TrainingPreset,
    TrainResult,
)
from uva_plan.training_data import (  # noqa: F401  (EpochSampler importable from here as before)
    EpochSampler,
    collate,
    data_fingerprint,
    episode_frame_ids,
    seed_everything,
    step_seed,
)
from uva_plan.training_log import (
    LOSS_TERMS,
    TOKENIZER_TERMS,
    LossMeter,
    MetricsLog,
    ProgressBar,
    flat_metrics,
    format_losses,
)

# ---------------------------------------------------------------------------------------------------------
# Run directory.


def _check_run_dir(out: Path, resume: bool) -> None:
    if resume:
        if not has_train_state(out):
            raise UserInputError(f"--resume given but {out} holds no resume state; expected a run directory written by uva-plan train")
        return
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserInputError(f"run directory {out} already exists and is not empty; expected a new or empty directory, or --resume")


# ---------------------------------------------------------------------------------------------------------
# Training.


def _make_accelerator(device: str | None):
    from accelerate import Accelerator, DistributedDataParallelKwargs

    if device == "cuda" and not torch.cuda.is_available():
        raise UserInputError("--device cuda was asked for but no CUDA GPU is available here; expected --device cpu")
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    # find_unused_parameters: a mode leaves the heads it does not train out of the graph, and each
    # process draws its own mode. cpu=True also makes accelerate start the gloo process group under a
    # launcher on GPU-less hosts.
    ddp = DistributedDataParallelKwargs(find_unused_parameters=True)
    return Accelerator(cpu=device == "cpu", kwargs_handlers=[ddp]), device


def _weights_digest(model, ema=None) -> str:
    """SHA-256 over every tensor (raw weights and EMA): equal digests mean bit-identical replicas."""
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    if ema is not None:
        for t in ema.shadow_params:
            h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


@dataclass
class _Run:
    """What both stages share: settings, processes, output and logs."""

    cfg: TrainConfig
    accelerator: Any
    out: Path
    log: MetricsLog
    progress: ProgressBar
    info: dict

    @property
    def rank(self) -> int:
        return self.accelerator.process_index

    @property
    def world(self) -> int:
        return self.accelerator.num_processes

    @property
    def main(self) -> bool:
        return self.accelerator.is_main_process

    @property
    def device(self):
        return self.accelerator.device

    def save_state(self, state: TrainState) -> None:
        if self.main:
            save_train_state(self.out, state)
        self.accelerator.wait_for_everyone()


def train(config: TrainConfig) -> TrainResult:
    """Train the tokenizer, then UVA, per `config`; write checkpoints, resume state and metrics.jsonl
    to `config.out`. Returns the last losses and the throughput."""
    cfg = config.resolved()
    out = Path(cfg.out)
    if not Path(cfg.data).exists():
        raise UserInputError(f"--data {cfg.data} does not exist; expected a replay buffer PATH.zarr written by `uva-plan collect`")
    _check_run_dir(out, cfg.resume)
    if cfg.init_from is not None and not cfg.resume and not Path(cfg.init_from).is_dir():
        raise UserInputError(f"--init-from {cfg.init_from} is not a directory; expected a run directory written by uva-plan train")
    accelerator, device_name = _make_accelerator(cfg.device)
    accelerator.wait_for_everyone()  # every process has checked the run directory before any writes to it

    from uva_plan.data import WindowDataset, WindowSpec, load_replay_buffer, normalizer_for, split_episodes
    from world_model import UVA
    from world_model.config import make_config

    buffer = load_replay_buffer(cfg.data)
    if buffer.n_episodes < 2:
        raise UserInputError(f"{cfg.data} has {buffer.n_episodes} episode(s); expected at least 2 (validation holds out whole episodes)")
    fingerprint = data_fingerprint(buffer)
    train_eps, val_eps = (ids.tolist() for ids in split_episodes(buffer.n_episodes, cfg.val_fraction, cfg.seed))

    state = None
    if cfg.resume:
        state = load_train_state(out)
        saved = state.info.get("train_config", {})
        if state.info.get("data_fingerprint") != fingerprint:
            raise UserInputError(f"--data {cfg.data} is not the data this run was trained on ({saved.get('data')}); expected the same replay buffer to resume")
        if cfg.init_from is None:  # a run started with --init-from resumes without it
            cfg.init_from = saved.get("init_from")
        for key in ("config", "seed", "val_fraction", "model_overrides", "init_from", "proprio", "object_pose"):
            # runs saved before --proprio / --object-pose existed were trained without them
            if saved.get(key, False if key in ("proprio", "object_pose") else None) != _jsonable({key: getattr(cfg, key)})[key]:
                raise UserInputError(f"--resume with {key}={getattr(cfg, key)!r} but the run used {saved.get(key)!r}; expected the same value")

    # The model's normaliser must be the one the windows are normalised with.
    normalizer = normalizer_for(buffer)
    default = WindowSpec()
    shape = dict(image_size=buffer.image_size, n_history=default.n_history, n_future=default.n_future,
                 frame_stride=default.frame_stride)
    env_name = str(buffer.attrs.get("env_name", ""))
    proprio = {}
    if cfg.proprio:
        from uva_plan.envs import ENV_NAMES, proprio_config

        try:
            proprio = proprio_config(env_name, object_pose=cfg.object_pose)
        except UserInputError:
            if env_name in ENV_NAMES:
                raise
            raise UserInputError(f"--proprio: {cfg.data} was not written by `uva-plan collect` for a known env (env_name "
                                 f"{env_name!r}); expected one of {list(ENV_NAMES)}, whose states hold the proprioception") from None
        if not cfg.model_overrides.get("dynamics_prior_width", 0):  # no preset has the prior on
            raise UserInputError("--proprio draws the agent through the dynamics prior, which this model has not; "
                                 "expected also --model-option dynamics_prior_width=64")
    model_config = make_config(
        cfg.config, normalizer.low.tolist(), normalizer.high.tolist(), env_name=env_name,
        **{**shape, **proprio, **cfg.model_overrides},
    )
    # The windows follow the model's shape, which --model-option may have changed.
    spec = WindowSpec.of(model_config)
    seed_everything(cfg.seed)  # the same initial weights in every process
    model = UVA(model_config).to(accelerator.device)
    if state is not None:
        try:
            model.load_state_dict(state.model)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0]
            raise UserInputError(f"the resume state in {out} does not fit this version of the model ({first}); "
                                 "expected a run made with the same model code, or start a new run") from None
    started_from = (start_from(model, cfg.init_from, cfg.model_overrides)
                    if state is None and cfg.init_from is not None else None)

    main = accelerator.is_main_process
    train_config = _jsonable(asdict(cfg))
    if main:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out / RUN_FILE, {
            "train_config": train_config, "model_config": model_config.to_dict(),
            "num_processes": accelerator.num_processes, "device": device_name,
            "train_episodes": train_eps, "val_episodes": val_eps,
        })
    accelerator.wait_for_everyone()
    run = _Run(cfg, accelerator, out, MetricsLog(out / METRICS_FILE if main else None), ProgressBar(cfg.progress and main),
               {"train_config": train_config, "data_fingerprint": fingerprint})
    if state is not None:
        run.log.truncate_after(state.stage, state.step)
    try:
        # Stage 1: the tokenizer, then frozen; or a run's tokenizer and world model to start from.
        if started_from is not None:
            model.freeze_tokenizer()
            run.info["tokenizer_val"], run.info["init_from"] = {}, started_from
            run.progress.print(f"started from {cfg.init_from} (its tokenizer, frozen); new parts at their "
                               f"initial values: {', '.join(started_from['new']) or 'none'}")
            run.save_state(TrainState("world_model", 0, model.state_dict(), None, None, None, run.info))
        elif state is None or state.stage == "tokenizer":
            run.info["tokenizer_val"] = _train_tokenizer(run, model, buffer, train_eps, val_eps, state)
            state = None
        else:
            model.freeze_tokenizer()
            run.info["tokenizer_val"] = state.info.get("tokenizer_val", {})
            if "init_from" in state.info:  # keep the record of what a grown run started from
                run.info["init_from"] = state.info["init_from"]

        # Stage 2: every frame encoded once, then UVA's masked multi-task training on latent windows.
        latents = load_latents(out, fingerprint)
        if latents is None:
            latents = _encode_all(model.tokenizer, buffer.img, accelerator)
            if main:
                save_latents(out, latents, fingerprint)
            accelerator.wait_for_everyone()
        frames = latents.numpy()
        train_set = WindowDataset(buffer, spec, episodes=train_eps, seed=cfg.seed, frames=frames)
        val_set = WindowDataset(buffer, spec, episodes=val_eps, seed=cfg.seed + 1, frames=frames)
        if model_config.proprio_body_fit:
            # solved once, before the world model's first step; a state saved after the solve keeps it (one saved
            # at the tokenizer's end or by --init-from, before the solve, does not: solve then)
            if state is not None and "body_fit_residual" in state.info:
                for key in ("body_fit_residual", "body_fit_kept"):
                    if key in state.info:
                        run.info[key] = state.info[key]
            else:
                from uva_plan.proprio import one_step_transitions

                fit = model.fit_body_dynamics(*one_step_transitions(buffer, train_eps,
                                                                    model_config.proprio_state_indices))
                run.info["body_fit_residual"], run.info["body_fit_kept"] = fit.residual, fit.kept
                run.progress.print(f"the body's step solved by least squares on {fit.kept:.0%} of the training "
                                   f"episodes' transitions: largest residual there {fit.residual:.2g} (normalised)")
        result = _train_world_model(run, model, train_set, val_set, state)
    finally:
        run.progress.stop()
    result.tokenizer_val = run.info["tokenizer_val"]
    return result


def _jsonable(d: dict) -> dict:
    return json.loads(json.dumps(d, default=str))


def _train_tokenizer(run: _Run, model, buffer, train_eps, val_eps, state: TrainState | None) -> dict[str, float]:
    """Stage 1: the tokenizer's own loss, then its latent scale fitted on data and the tokenizer frozen.
    Returns its losses on held-out frames."""
    from diffusers.optimization import get_cosine_schedule_with_warmup

    cfg, device, tok = run.cfg, run.device, model.tokenizer
    images = buffer.img
    train_frames = episode_frame_ids(buffer.episode_ends, train_eps)
    val_frames = episode_frame_ids(buffer.episode_ends, val_eps)
    # The same frames in every process, so every replica fits the same background and scale.
    fit_ids = np.sort(np.random.default_rng([cfg.seed, 7]).choice(train_frames, min(len(train_frames), 2048), replace=False))

    steps = cfg.tokenizer_steps
    if steps > 0:
        optimizer = torch.optim.AdamW(tok.parameters(), lr=cfg.tokenizer_lr, betas=(0.9, 0.999), weight_decay=0.0)
        scheduler = get_cosine_schedule_with_warmup(optimizer, min(100, max(1, steps // 20)), steps)
        start = 0
        if state is None:
            tok.fit_background(torch.from_numpy(images[fit_ids]).to(device))
        else:
            optimizer.load_state_dict(state.optimizer)
            scheduler.load_state_dict(state.scheduler)
            start = state.step
        wrapped, optimizer = run.accelerator.prepare(tok, optimizer)
        sampler = EpochSampler(len(train_frames), cfg.seed)
        meter = LossMeter(["tokenizer"], TOKENIZER_TERMS)
        run.progress.start("tokenizer", steps, start)
        tok.train()

        def loss_of_step(step: int):
            torch.manual_seed(step_seed(cfg.seed, 1, step, run.rank))
            ids = np.sort(train_frames[sampler.indices(step, cfg.tokenizer_batch_size, run.rank, run.world)])
            return wrapped(torch.from_numpy(images[ids]).to(device))

        def bookkeeping(r: StepReport) -> None:
            meter.add("tokenizer", r.logs)
            if r.done % cfg.log_every == 0 or r.done == steps:
                means = meter.read(run.accelerator)["tokenizer"]
                run.log.write(stage="tokenizer", step=r.done, lr=scheduler.get_last_lr()[0], **means, time=time.time())
                run.progress.update(r.done, {"loss": means["tokenizer_loss"], "mse": means["mse"]})
            if r.done % cfg.save_every == 0 and r.done < steps:
                run.save_state(TrainState("tokenizer", r.done, model.state_dict(), optimizer.state_dict(),
                                          scheduler.state_dict(), None, run.info))

        run_steps(loss_of_step, tok.parameters(), optimizer, scheduler, steps=steps, start=start,
                  clip_norm=cfg.grad_clip, backward=run.accelerator.backward, clip=run.accelerator.clip_grad_norm_,
                  report=bookkeeping, what="tokenizer")
        run.progress.stop()

    model.freeze_tokenizer()
    with torch.no_grad():
        raw = torch.cat([tok.encode_raw(torch.from_numpy(images[c]).to(device)) for c in np.array_split(fit_ids, -(-len(fit_ids) // 256))])
        scale, _ = tok.fit_scale(raw)
        val_ids = np.sort(np.random.default_rng([cfg.seed, 8]).choice(val_frames, min(len(val_frames), 256), replace=False))
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(cfg.seed)
            _, val_logs = tok(torch.from_numpy(images[val_ids]).to(device))
    tokenizer_val = {k: float(v) for k, v in val_logs.items()} | {"scale_factor": float(scale)}
    run.log.write(stage="tokenizer", step=steps, split="val", **tokenizer_val, time=time.time())
    run.progress.print(f"tokenizer: held-out pixel MSE {tokenizer_val['mse']:.5f}, latent scale factor {scale:.3f}")
    run.info["tokenizer_val"] = tokenizer_val
    run.save_state(TrainState("world_model", 0, model.state_dict(), None, None, None, run.info))
    return tokenizer_val


def _encode_all(tok, images: np.ndarray, accelerator, chunk: int = 256) -> torch.Tensor:
    """Every frame `[N, H, W, 3]` -> latents `[N, h, w, c]` on the CPU; each process encodes one
    contiguous share and the shares are gathered, so all processes hold the same array."""
    n, world, rank = len(images), accelerator.num_processes, accelerator.process_index
    per = -(-n // world)
    lo, hi = min(n, rank * per), min(n, (rank + 1) * per)
    c = tok.config
    mine = torch.zeros(per, c.latent_size, c.latent_size, c.latent_channels, device=accelerator.device)
    with torch.no_grad():
        for s in range(lo, hi, chunk):
            e = min(hi, s + chunk)
            mine[s - lo : e - lo] = tok.encode(torch.from_numpy(images[s:e]).to(accelerator.device))
    if world == 1:
        return mine[:n].cpu()
    return accelerator.gather(mine)[:n].cpu()


def _train_world_model(run: _Run, model, train_set, val_set, state: TrainState | None) -> TrainResult:
    """Stage 2: UVA's masked multi-task training (one mode per step, drawn by the model) with EMA,
    validation of the EMA weights per mode, and checkpoints of the EMA weights."""
    from diffusers.optimization import get_cosine_schedule_with_warmup
    from diffusers.training_utils import EMAModel

    from world_model import save_checkpoint
    from world_model.config import MODE_NAMES

    cfg, accelerator, device = run.cfg, run.accelerator, run.device
    params = model.world_parameters()
    # As UVA's (MAR's) optimiser: no weight decay on biases, norm gains and other vectors.
    groups = [
        {"params": [p for p in params if p.ndim >= 2], "weight_decay": cfg.weight_decay},
        {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas)
    scheduler = get_cosine_schedule_with_warmup(optimizer, cfg.warmup_steps, cfg.steps)
    ema = EMAModel(params, decay=cfg.ema_decay, use_ema_warmup=True, inv_gamma=1.0, power=cfg.ema_power)
    start = 0
    if state is not None and state.optimizer is not None:
        optimizer.load_state_dict(state.optimizer)
        scheduler.load_state_dict(state.scheduler)
        ema.load_state_dict(state.ema)
        ema.to(device)
        start = state.step
    if start >= cfg.steps:
        raise UserInputError(f"this run already finished {start} steps; expected --steps above {start} to train further")
    ema_model = copy.deepcopy(model).eval()  # holds the EMA weights for validation and checkpoints
    ema_params = ema_model.world_parameters()
    ema_model.requires_grad_(False)

    wrapped, optimizer = accelerator.prepare(model, optimizer)
    sampler = EpochSampler(len(train_set), cfg.seed)
    end = cfg.stop_at if cfg.stop_at is not None else cfg.steps
    meter = LossMeter([*MODE_NAMES, "all"], [*LOSS_TERMS, "grad_norm"])
    running: dict[str, float] = {}
    val_losses: dict[str, float] = {}
    train_time, train_samples = 0.0, 0
    run.progress.start("world model", cfg.steps, start)
    model.train()
    model.tokenizer.eval()

    def loss_of_step(step: int):
        torch.manual_seed(step_seed(cfg.seed, 2, step, run.rank))
        items = []
        for i, epoch in zip(*sampler.draw(step, cfg.batch_size, run.rank, run.world)):
            train_set.set_epoch(int(epoch))  # new hindsight goals each epoch, the same ones on resume
            items.append(train_set[int(i)])
        return wrapped(collate(items, device))

    def bookkeeping(r: StepReport) -> None:
        nonlocal train_time, train_samples, val_losses
        train_time += r.seconds
        train_samples += cfg.batch_size * run.world
        meter.add(r.logs["mode"], r.logs)
        meter.add("all", {"grad_norm": r.grad_norm})
        done = r.done
        if done % cfg.log_every == 0 or done == end:
            means = meter.read(accelerator)
            grad = means.pop("all")["grad_norm"]
            for mode, terms in means.items():  # the bar shows an exponential average over log intervals
                running[mode] = terms["loss"] if mode not in running else 0.7 * running[mode] + 0.3 * terms["loss"]
            run.log.write(stage="world_model", step=done, lr=scheduler.get_last_lr()[0], **flat_metrics(means),
                          grad_norm=grad, samples_per_second=train_samples / train_time, time=time.time())
            run.progress.update(done, running)
        if done % cfg.val_every == 0 or done == end:
            ema.copy_to(ema_params)
            if run.main:
                val = _validate(ema_model, val_set, cfg, MODE_NAMES)
                val_losses = {mode: terms["loss"] for mode, terms in val.items()}
                run.log.write(stage="world_model", step=done, split="val", **flat_metrics(val), time=time.time())
                run.progress.print(f"step {done} validation: {format_losses(val_losses)}")
            accelerator.wait_for_everyone()
        if done % cfg.save_every == 0 or done == end:
            ema.copy_to(ema_params)
            if run.main:
                save_checkpoint(ema_model, run.out, extra_state={"step": done, "train_config": run.info["train_config"]})
            run.save_state(TrainState("world_model", done, model.state_dict(), optimizer.state_dict(),
                                      scheduler.state_dict(), ema.state_dict(), run.info))

    run_steps(loss_of_step, params, optimizer, scheduler, steps=end, start=start, clip_norm=cfg.grad_clip,
              backward=accelerator.backward, clip=accelerator.clip_grad_norm_, after_step=lambda: ema.step(params),
              report=bookkeeping, what="training")
    run.progress.stop()

    if cfg.replica_digest_dir:
        folder = Path(cfg.replica_digest_dir)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"rank{run.rank}.sha256").write_text(_weights_digest(model, ema) + "\n")
    accelerator.wait_for_everyone()
    return TrainResult(run.out, end, running, val_losses, {}, train_samples / max(train_time, 1e-9), run.world, run.main)


def _validate(model, val_set, cfg: TrainConfig, mode_names) -> dict[str, dict[str, float]]:
    """Loss terms of every mode on the same held-out windows with the same noise at every validation,
    so the curve shows the model changing, not the draw. Leaves the training RNG untouched."""
    device = model.device
    n = len(val_set)
    k = min(n, cfg.val_batches * cfg.batch_size)
    ids = np.sort(np.random.default_rng([cfg.seed, 9]).choice(n, size=k, replace=False))
    batches = [collate([val_set[int(i)] for i in ids[s : s + cfg.batch_size]], device) for s in range(0, k, cfg.batch_size)]
    meter = LossMeter(mode_names, LOSS_TERMS)
    with torch.no_grad(), torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        for j, mode in enumerate(mode_names):
            torch.manual_seed(step_seed(cfg.seed, 3, j, 0))
            for batch in batches:
                _, logs = model(batch, mode=mode)
                meter.add(mode, logs, weight=len(batch["actions"]))
    return meter.read()


__all__ = ["CONFIG_NAMES", "PRESETS", "EpochSampler", "TrainConfig", "TrainResult", "TrainingPreset", "train"]
