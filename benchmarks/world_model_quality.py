"""World-model quality and speed on held-out episodes (issue 3's benchmarks), printed as rich tables.

Per (checkpoint, data) pair:
- forward dynamics: latent MSE of the predicted future frames vs the "repeat the last history frame"
  baseline, on windows whose whole future lies inside the episode (target ratio <= 0.5);
- inverse dynamics: R^2 of the actions inferred from whole held-out episodes (target >= 0.9 on Wall);
- policy: action error of one sampled chunk vs the dataset's chunk, without and with the window's
  hindsight goal, next to a constant "mean action" baseline;
- latency of one action chunk (batch 1): `policy` vs the video route, `predict_video` then
  `inverse_dynamics` on the generated frames, same model, same run (target ratio >= 10).
Then the training throughput of each config (tiny / small / base) on this machine.

Held-out episodes: when --data is the file the checkpoint was trained on, only the run's validation
episodes are used (train_config.json lists them); any other file is used whole (collect it with other
seeds, e.g. `uva-plan collect --seed 5000`).

    python benchmarks/world_model_quality.py --checkpoint runs/wall --data data/wall_eval.zarr \
        [--checkpoint runs/pusht --data data/pusht_eval.zarr] [--windows 256] [--throughput]
"""

from __future__ import annotations

import os
from pathlib import Path

# Idle OpenMP threads spin by default; on a shared CPU that distorts every timing (see uva_plan.cli).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

import world_model  # noqa: E402
from uva_plan.data import WindowDataset, WindowSpec, load_replay_buffer, split_episodes  # noqa: E402
from uva_plan.training import PRESETS  # noqa: E402

CHUNK = 64


def held_out_episodes(checkpoint: Path, data: Path, buffer) -> tuple[list[int], str]:
    """The run's validation episodes if `data` is its training file, else every episode."""
    info_path = checkpoint / "train_config.json"
    if info_path.is_file():
        info = json.loads(info_path.read_text())
        trained_on = Path(info["train_config"]["data"]).resolve()
        if trained_on == data.resolve():
            return list(info["val_episodes"]), "the run's validation episodes"
    if not info_path.is_file():
        _, val = split_episodes(buffer.n_episodes, 0.1, 0)
        return val.tolist(), "10% of the episodes (no train_config.json to tell the split)"
    return list(range(buffer.n_episodes)), "all episodes (another file than the training data)"


def full_future_windows(buffer, episodes, spec: WindowSpec, n: int, seed: int = 0) -> np.ndarray:
    """Indices into WindowDataset(buffer, spec, episodes) whose future frames all lie inside the episode."""
    starts, ends = buffer.episode_starts[episodes], buffer.episode_ends[episodes]
    ids, offset = [], 0
    for s, e in zip(starts, ends):
        length = int(e - s)
        usable = max(0, length - spec.n_future * spec.frame_stride)
        ids.extend(offset + np.arange(usable))
        offset += length
    ids = np.asarray(ids, dtype=np.int64)
    if len(ids) > n:
        ids = np.sort(np.random.default_rng(seed).choice(ids, n, replace=False))
    return ids


def batches(dataset, ids):
    for s in range(0, len(ids), CHUNK):
        items = [dataset[int(i)] for i in ids[s : s + CHUNK]]
        yield {k: torch.from_numpy(np.stack([it[k] for it in items])) for k in items[0]}


def forward_dynamics_mse(model, dataset, ids, num_iters: int, temperature: float) -> tuple[float, float]:
    """(model MSE, repeat-last-frame MSE) of future latents, averaged over windows. Temperature 0 starts
    every token's DDIM chain from zero noise (a point estimate); 1 draws a sample."""
    g = torch.Generator().manual_seed(0)
    model_err, copy_err = [], []
    for b in batches(dataset, ids):
        hist = model.encode(b["history"])
        target = model.encode(b["future"])
        actions = model.normalizer.unnormalize(b["actions"])
        pred = model.forward_dynamics(
            history_latents=hist, actions=actions, num_iters=num_iters, temperature=temperature, generator=g,
            history_proprio=b.get("history_proprio"),
        ).latents
        model_err.append((pred - target).pow(2).mean(dim=(1, 2, 3, 4)))
        copy_err.append((hist[:, -1:] - target).pow(2).mean(dim=(1, 2, 3, 4)))
    return float(torch.cat(model_err).mean()), float(torch.cat(copy_err).mean())


def r2_score(pred: np.ndarray, true: np.ndarray) -> float:
    """R^2 per action dimension, averaged."""
    ss_res = ((pred - true) ** 2).sum(axis=0)
    ss_tot = ((true - true.mean(axis=0)) ** 2).sum(axis=0)
    return float(np.mean(1.0 - ss_res / np.maximum(ss_tot, 1e-12)))


def inverse_dynamics_r2(model, buffer, episodes, num_samples: int) -> dict[str, tuple[float, float]]:
    """{episode group: (R^2, mean absolute error in env units)} over whole episodes; groups are "all" and,
    when the buffer records them, each scripted policy that collected episodes."""
    g = torch.Generator().manual_seed(0)
    kinds = buffer.attrs.get("episode_policies") or []
    pred, true = {}, {}
    for e in episodes:
        sl = buffer.episode(int(e))
        frames = torch.from_numpy(buffer.img[sl]).unsqueeze(0)
        if frames.shape[1] < 2:
            continue
        p = model.inverse_dynamics(frames, num_samples=num_samples, generator=g)[0].numpy()
        groups = ["all"] + ([f"{kinds[e]} episodes"] if len(kinds) == buffer.n_episodes else [])
        for group in groups:
            pred.setdefault(group, []).append(p)
            true.setdefault(group, []).append(buffer.action[sl][:-1])
    out = {}
    for group in pred:
        p, t = np.concatenate(pred[group]), np.concatenate(true[group])
        out[group] = (r2_score(p, t), float(np.abs(p - t).mean()))
    return out


def state_oracle_r2(buffer, episodes, stride: int) -> float:
    """R^2 of a linear map from TRUE states seen every `stride` steps (the block's mean state change and
    its first state) to each action of the block: what frames `stride` steps apart can tell about
    single actions. Fitted in-sample, so a reference point rather than a strict bound."""
    feats, acts = [], []
    for e in episodes:
        sl = buffer.episode(int(e))
        s, a = buffer.state[sl].astype(np.float64), buffer.action[sl]
        n = len(s)
        for t in range(n - 1):
            k = (t // stride) * stride
            k2 = min(k + stride, n - 1)
            feats.append(np.concatenate([(s[k2] - s[k]) / max(k2 - k, 1), s[k], [1.0]]))
            acts.append(a[t])
    x, y = np.asarray(feats), np.asarray(acts)
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)
    return r2_score(x @ coef, y)


def policy_errors(model, dataset, ids, num_samples: int = 8) -> dict[str, float]:
    """Mean absolute action error (normalised units, [-1, 1]) vs the dataset's chunk, per window:
    one sampled chunk (against a baseline that is also a sample: another window's true chunk) and the
    mean of `num_samples` chunks (against a baseline that is also a mean: the data's mean action)."""
    g = torch.Generator().manual_seed(0)
    errs: dict[str, list] = {}
    buffer = dataset.buffer
    steps = np.concatenate([np.arange(buffer.episode_starts[e], buffer.episode_ends[e]) for e in dataset.episodes])
    mean_action = model.normalizer.normalize(torch.from_numpy(buffer.action[steps])).mean(dim=0)
    trues = []
    for b in batches(dataset, ids):
        true = b["actions"]
        trues.append(true)
        for key, goal in (("no goal", None), ("goal", b["goal"])):
            acts = model.normalizer.normalize(model.policy(b["history"], goal, num_samples=num_samples, generator=g))
            errs.setdefault(f"sample, {key}", []).append((acts[:, 0] - true).abs().mean(dim=(1, 2)))
            errs.setdefault(f"mean, {key}", []).append((acts.mean(dim=1) - true).abs().mean(dim=(1, 2)))
        errs.setdefault("mean action", []).append((mean_action - true).abs().mean(dim=(1, 2)))
    true = torch.cat(trues)
    other = true[torch.randperm(len(true), generator=torch.Generator().manual_seed(1))]
    out = {k: float(torch.cat(v).mean()) for k, v in errs.items()}
    out["other window"] = float((other - true).abs().mean())
    return out


def latency(model, history, repeats: int, num_iters: int, num_steps: int | None) -> tuple[float, float]:
    """Median seconds for one action chunk: `policy`, and predict_video + inverse_dynamics, both with the
    same DDIM steps per diffusion head call (`num_steps`, None = the config's)."""
    cfg = model.config
    s = cfg.frame_stride

    def video_route():
        fut = model.predict_video(history, num_iters=num_iters, decode=True, num_steps=num_steps).frames  # [1, Tf, H, W, 3]
        # inverse_dynamics takes one frame per env step; its windows only read every frame_stride-th
        # frame, so the generated frames go there (the frames in between are never read).
        idx = torch.arange(cfg.n_future * s + 1) // s
        video = torch.cat([history[:, -1:].float() / 255.0, fut], dim=1)[:, idx.clamp(max=cfg.n_future)]
        return model.inverse_dynamics(video, num_steps=num_steps)

    def policy_route():
        return model.policy(history, num_steps=num_steps)

    times = {}
    for name, fn in (("policy", policy_route), ("video", video_route)):
        fn()  # warm-up
        runs = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            runs.append(time.perf_counter() - t0)
        times[name] = statistics.median(runs)
    return times["policy"], times["video"]


def _items_per_second(loss_fn, opt, steps: int, per_step: int) -> float:
    """Training items per second over ``steps`` optimizer steps of ``loss_fn``, after one warm-up step."""

    def step():
        loss_fn().backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * per_step / (time.perf_counter() - t0)


def throughput(config_name: str, steps: int) -> dict[str, float]:
    """Stage-2 samples/s (loss, backward, AdamW) and tokenizer images/s on random data of the right shapes."""
    preset = PRESETS[config_name]
    cfg = world_model.make_config(config_name, [-1.0, -1.0], [1.0, 1.0])
    torch.manual_seed(0)
    model = world_model.UVA(cfg)
    tok = model.tokenizer
    b = preset.batch_size
    h, c, L = cfg.latent_size, cfg.latent_channels, cfg.chunk_len
    batch = {
        "history_latents": torch.randn(b, cfg.n_history, h, h, c),
        "future_latents": torch.randn(b, cfg.n_future, h, h, c),
        "goal_latents": torch.randn(b, h, h, c),
        "actions": torch.rand(b, L, cfg.action_dim) * 2 - 1,
        "goal_steps": torch.randint(1, 64, (b,)).float(),
    }
    model.freeze_tokenizer()
    params = model.world_parameters()
    opt = torch.optim.AdamW(params, lr=1e-4)

    wm = _items_per_second(lambda: model(batch)[0], opt=opt, steps=steps, per_step=b)

    tok.requires_grad_(True)
    tok.train()
    tb = preset.tokenizer_batch_size
    images = torch.randint(0, 256, (tb, cfg.image_size, cfg.image_size, 3), dtype=torch.uint8)
    topt = torch.optim.AdamW(tok.parameters(), lr=1e-3)

    tk = _items_per_second(lambda: tok(images)[0], opt=topt, steps=steps, per_step=tb)
    n_params = sum(p.numel() for p in params)
    return {
        "params": n_params,
        "tok_params": sum(p.numel() for p in tok.parameters()),
        "batch": b,
        "samples_per_s": wm,
        "tokenizer_batch": tb,
        "tokenizer_images_per_s": tk,
    }


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", action="append", default=[], help="run directory (repeatable)")
    parser.add_argument(
        "--data", action="append", default=[], help="replay buffer for the checkpoint at the same position"
    )
    parser.add_argument(
        "--windows", type=int, default=256, help="held-out windows for the forward / policy rows"
    )
    parser.add_argument("--num-iters", type=int, default=1, help="MAR passes for forward dynamics")
    parser.add_argument("--fwd-temperature", type=float, nargs="+", default=[1.0, 0.0],
                        help="sampling temperatures of the forward-dynamics rows")
    parser.add_argument(
        "--video-iters", type=int, default=8, help="MAR passes of the video route in the latency row"
    )
    parser.add_argument("--inverse-samples", type=int, default=1, help="samples averaged per window in inverse dynamics")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sample-steps", type=int, nargs="+", default=[None],
                        help="DDIM steps per head call in the latency rows (default: the config's; UVA used 100)")
    parser.add_argument(
        "--throughput", action="store_true", help="also measure training throughput per config"
    )
    parser.add_argument("--throughput-steps", type=int, default=10)
    parser.add_argument("--configs", nargs="+", default=["tiny", "small", "base"])
    args = parser.parse_args()
    if len(args.checkpoint) != len(args.data):
        parser.error("give one --data per --checkpoint")
    console = Console()
    console.print(
        f"torch threads: {torch.get_num_threads()}, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}"
    )

    for ckpt, data in zip(args.checkpoint, args.data):
        ckpt, data = Path(ckpt), Path(data)
        model = world_model.load(ckpt)
        buffer = load_replay_buffer(data)
        episodes, which = held_out_episodes(ckpt, data, buffer)
        cfg = model.config
        spec = WindowSpec.of(cfg)
        dataset = WindowDataset(buffer, spec, episodes=episodes, seed=123)
        ids = full_future_windows(buffer, episodes, spec, args.windows)
        env = cfg.env_name or "?"
        console.print(
            f"[bold]{env}[/]: {ckpt} on {data}, {which}: {len(episodes)} episodes, {len(ids)} windows"
        )

        table = Table(title=f"World model on held-out {env} episodes")
        for col in ("measure", "value", "reference", "target", "met"):
            table.add_column(col)

        t0 = time.perf_counter()
        for temperature in args.fwd_temperature:
            fwd, copy = forward_dynamics_mse(model, dataset, ids, args.num_iters, temperature)
            ratio = fwd / copy
            table.add_row(
                f"forward dynamics latent MSE ({args.num_iters} pass, temperature {temperature:g})",
                f"{fwd:.4f}",
                f"repeat last frame {copy:.4f}",
                "ratio <= 0.5",
                f"{ratio:.3f} {'yes' if ratio <= 0.5 else 'NO'}",
            )
        inv = inverse_dynamics_r2(model, buffer, episodes, args.inverse_samples)
        for group, (r2, mae) in inv.items():
            target = "R^2 >= 0.9" if env == "wall" and group == "all" else "report"
            met = ("yes" if r2 >= 0.9 else "NO") if target != "report" else "-"
            table.add_row(f"inverse dynamics action R^2, {group}", f"{r2:.3f}", f"MAE {mae:.3g} env units", target, met)
        if buffer.state.shape[1] > 0:
            strided = state_oracle_r2(buffer, episodes, cfg.frame_stride)
            per_step = state_oracle_r2(buffer, episodes, 1)
            table.add_row(f"  linear oracle on true states every {cfg.frame_stride} steps", f"{strided:.3f}",
                          f"every step: {per_step:.3f}", "reference", "-")
        pol = policy_errors(model, dataset, ids)
        for goal in ("no goal", "goal"):
            goal_text = "hindsight goal" if goal == "goal" else "no goal"
            table.add_row(
                f"policy action MAE (normalised), one sample, {goal_text}",
                f"{pol[f'sample, {goal}']:.3f}",
                f"another window's chunk {pol['other window']:.3f}",
                "report",
                "-",
            )
            table.add_row(
                f"policy action MAE (normalised), mean of 8 samples, {goal_text}",
                f"{pol[f'mean, {goal}']:.3f}",
                f"the data's mean action {pol['mean action']:.3f}",
                "report",
                "-",
            )
        hist = torch.from_numpy(dataset[int(ids[0])]["history"]).unsqueeze(0)
        for steps in args.sample_steps:
            t_pol, t_vid = latency(model, hist, args.repeats, args.video_iters, steps)
            speed = t_vid / t_pol
            table.add_row(
                f"latency of one chunk: policy, {steps or cfg.sample_steps} DDIM steps",
                f"{t_pol * 1e3:.1f} ms",
                f"video route {t_vid * 1e3:.1f} ms ({args.video_iters} passes)",
                "ratio >= 10",
                f"{speed:.1f}x {'yes' if speed >= 10 else 'NO'}",
            )
        console.print(table)
        console.print(f"({time.perf_counter() - t0:.0f} s)")

    if args.throughput:
        table = Table(title="Training throughput on this machine (random data, one process)")
        for col in (
            "config",
            "world-model params",
            "batch",
            "samples/s",
            "tokenizer params",
            "tokenizer batch",
            "tokenizer img/s",
        ):
            table.add_column(col)
        for name in args.configs:
            r = throughput(
                name, args.throughput_steps if name != "base" else max(2, args.throughput_steps // 5)
            )
            table.add_row(
                name,
                f"{r['params'] / 1e6:.2f} M",
                str(r["batch"]),
                f"{r['samples_per_s']:.1f}",
                f"{r['tok_params'] / 1e6:.3f} M",
                str(r["tokenizer_batch"]),
                f"{r['tokenizer_images_per_s']:.1f}",
            )
        console.print(table)


if __name__ == "__main__":
    main()
