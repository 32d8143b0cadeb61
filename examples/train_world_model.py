"""Train a UVA world model from Python on your own replay buffer, then call every inference mode.

Collects a small Wall (or PushT) dataset with the scripted policies unless --data points at an existing
replay-buffer zarr, trains the `tiny` config for a few hundred steps (a few minutes on 2 CPU cores),
loads the checkpoint and runs: encode / decode, policy, forward dynamics, inverse dynamics and video
prediction on a held-out episode, printing shapes and errors against the recorded data.

    python examples/train_world_model.py [--env wall|pusht] [--data PATH.zarr] [--steps 400] [--out runs/example]

The same training from the shell: `uva-plan train --data PATH.zarr --config tiny --steps 400 --out RUN_DIR`.
"""

from __future__ import annotations

import os

# Idle OpenMP threads spin by default, which is slow on a shared CPU (see uva_plan.cli); set before torch.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

import world_model  # noqa: E402
from uva_plan.collection import collect_dataset  # noqa: E402
from uva_plan.data import load_replay_buffer  # noqa: E402
from uva_plan.training import TrainConfig, train  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", choices=["wall", "pusht"], default="wall")
    parser.add_argument("--data", help="an existing replay buffer PATH.zarr (default: collect one)")
    parser.add_argument("--episodes", type=int, default=60, help="episodes to collect")
    parser.add_argument("--steps", type=int, default=400, help="world-model training steps")
    parser.add_argument("--tokenizer-steps", type=int, default=200)
    parser.add_argument("--out", default="runs/example_world_model", help="run directory (replaced if it exists)")
    args = parser.parse_args()

    out = Path(args.out)
    if out.exists():
        import shutil

        shutil.rmtree(out)
    out.mkdir(parents=True)

    # 1. Data: a replay buffer zarr (img, action, state, episode_ends), as Diffusion Policy and UVA use.
    data = Path(args.data) if args.data else out / f"{args.env}.zarr"
    if not args.data:
        summary = collect_dataset(env_name=args.env, episodes=args.episodes, max_steps=100, policy="mixed",
                                  image_size=64, seed=0, out=str(data))
        print(f"collected {summary['episodes']} episodes, {summary['steps']} steps -> {data}")

    # 2. Training: tokenizer, then UVA's masked multi-task training; EMA weights are saved.
    run_dir = out / "run"
    t0 = time.perf_counter()
    result = train(TrainConfig(data=str(data), out=str(run_dir), config="tiny", steps=args.steps,
                               tokenizer_steps=args.tokenizer_steps, val_every=max(1, args.steps // 4)))
    print(f"trained in {time.perf_counter() - t0:.0f} s ({result.samples_per_second:.0f} samples/s)")
    print("  held-out loss per mode:", {k: round(v, 4) for k, v in result.val_losses.items()})

    # 3. Inference on a held-out episode with the saved (EMA) weights.
    model = world_model.load(run_dir)
    cfg = model.config
    buffer = load_replay_buffer(data)
    val_episode = json.loads((run_dir / "train_config.json").read_text())["val_episodes"][0]
    sl = buffer.episode(val_episode)
    frames = torch.from_numpy(buffer.img[sl])  # [T, H, W, 3] uint8
    actions = torch.from_numpy(buffer.action[sl])  # [T, A] env units
    s, L = cfg.frame_stride, cfg.chunk_len
    t = (cfg.n_history - 1) * s  # the current step: full history behind it, a chunk ahead of it
    history = frames[t - (cfg.n_history - 1) * s : t + 1 : s].unsqueeze(0)  # [1, Th, H, W, 3]
    future = frames[t + s : t + cfg.n_future * s + 1 : s].unsqueeze(0)  # [1, Tf, H, W, 3]
    chunk = actions[t : t + L].unsqueeze(0)  # [1, L, A]
    g = torch.Generator().manual_seed(0)

    latents = model.encode(history)
    recon = model.decode(latents)
    print(f"encode {tuple(history.shape)} -> {tuple(latents.shape)}; decode -> {tuple(recon.shape)}, "
          f"pixel MSE {float((recon - history.float() / 255).pow(2).mean()):.5f}")

    pol = model.policy(history, num_samples=4, generator=g)
    err = (pol - chunk.unsqueeze(1)).abs().mean()
    print(f"policy -> {tuple(pol.shape)} (4 sampled chunks), mean |action error| {float(err):.3f} env units")

    fwd = model.forward_dynamics(history, chunk, decode=True, generator=g)
    target = model.encode(future)
    copy = (latents[:, -1:] - target).pow(2).mean()
    print(f"forward_dynamics -> latents {tuple(fwd.latents.shape)}, frames {tuple(fwd.frames.shape)}; latent MSE "
          f"{float((fwd.latents - target).pow(2).mean()):.4f} vs {float(copy):.4f} repeating the last frame")

    inv = model.inverse_dynamics(frames.unsqueeze(0), generator=g)
    true = actions[:-1].numpy()
    r2 = 1 - ((inv[0].numpy() - true) ** 2).sum(0) / ((true - true.mean(0)) ** 2).sum(0).clip(1e-12)
    print(f"inverse_dynamics {tuple(frames.unsqueeze(0).shape)} -> {tuple(inv.shape)}, R^2 per dimension {np.round(r2, 3)}")

    vid = model.predict_video(history, num_iters=4, decode=True, generator=g)
    print(f"predict_video (4 passes) -> latents {tuple(vid.latents.shape)}, frames {tuple(vid.frames.shape)}")

    goal = frames[min(len(frames) - 1, t + 24)].unsqueeze(0)
    dist = model.forward_dynamics(history, chunk, goal=goal, generator=g).distance
    print(f"forward_dynamics with a goal 24 steps ahead -> predicted steps to goal {np.round(dist[0].numpy(), 1)}")


if __name__ == "__main__":
    main()
