"""Probe: does more wall-collision data teach the Wall world model what a full-speed push does?

Fine-tunes a checkpoint's world modes (every masked mode but the policy, with the run's own weights) on a
replay buffer, keeps its goal-distance head, writes the result to --out, and prints the imagined agent's
accuracy on constant-velocity chunks from still and moving histories (open space and walls alike: a
16-step chunk at full speed reaches a wall from most starts). An experiment behind the README's planning
table, not a recipe: the policy mode is not trained, so the policy alone degrades.

    uva-plan collect --env wall --episodes 300 --max-steps 100 --policy box --seed 200000 --out data/wall-box.zarr
    uva-plan merge-data --data data/wall-ship.zarr --data data/wall-box.zarr \\
        --held-out-of uva_plan/checkpoints/wall --out data/wall-ship-box.zarr
    python benchmarks/world_finetune_probe.py --data data/wall-ship-box.zarr --steps 4000 --out runs/wall-box-ft
    python benchmarks/world_finetune_probe.py --checkpoint uva_plan/checkpoints/wall --steps 0   # measure only
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np
import torch

SPEEDS = (1.0, 2.0, 2.8)  # units per step; 2 is the top speed along an axis, 2.8 along a diagonal


def constant_chunk_accuracy(model, speed: float, moving: bool, n: int = 48, seed: int = 0):
    """Share of ``n`` held-out starts where the imagined agent is present / within 4 units of the
    simulator's after a 16-step chunk at ``speed`` in a random heading; the history is the agent still
    or already moving with that velocity."""
    from uva_plan.envs import make_env
    from uva_plan.envs.goals import EVAL_SEED_OFFSET
    from uva_plan.envs.wall_locate import locate_agent

    cfg = model.config
    env = make_env("wall", image_size=cfg.image_size)
    rng = np.random.default_rng(seed)
    hist, acts, ends = [], [], []
    for i in range(n):
        _, info = env.reset(seed=EVAL_SEED_OFFSET + 400_000 + i)
        heading = rng.uniform(0, 2 * np.pi)
        action = np.clip(np.array([np.cos(heading), np.sin(heading)]) * speed, -2, 2).astype(np.float32)
        env.set_state(info["state"])
        frames = []
        for t in range(cfg.n_history * cfg.frame_stride):
            if moving:
                env.step_state(action)
            if t % cfg.frame_stride == cfg.frame_stride - 1:
                frames.append(env.render_state(env.get_state()))
        for _ in range(cfg.chunk_len):
            env.step_state(action)
        hist.append(np.stack(frames))
        acts.append(np.tile(action, (cfg.chunk_len, 1)))
        ends.append(env.get_state()[:2])
    with torch.no_grad():
        res = model.forward_dynamics(torch.from_numpy(np.stack(hist)), torch.from_numpy(np.stack(acts)), decode=True,
                                     num_steps=2, generator=torch.Generator().manual_seed(seed))
    xy, present, _ = locate_agent((res.frames[:, -1].clamp(0, 1) * 255).round().byte().numpy())
    err = np.where(present, np.hypot(*(xy - np.stack(ends)).T), np.inf)
    return float(present.mean()), float((err <= 4.0).mean())


def main() -> None:
    import world_model
    from uva_plan.data import WindowDataset, WindowSpec
    from uva_plan.finetuning import finetune_windows
    from uva_plan.run_data import encode_buffer, load_run_and_data

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="uva_plan/checkpoints/wall")
    parser.add_argument("--data", default="data/wall-ship-box.zarr", help="buffer to fine-tune on (all its episodes)")
    parser.add_argument("--steps", type=int, default=4000, help="fine-tuning steps (0: only measure the checkpoint)")
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--out", default=None, help="RUN_DIR for the fine-tuned checkpoint (required with --steps > 0)")
    args = parser.parse_args()

    if args.steps > 0:
        if args.out is None:
            parser.error("--out is required with --steps > 0")
        model, buffer = load_run_and_data(Path(args.checkpoint), Path(args.data))
        model.eval()
        latents = encode_buffer(model, buffer)
        spec = WindowSpec.of(model.config)
        dataset = WindowDataset(buffer, spec, episodes=list(range(buffer.n_episodes)), seed=0, frames=latents.cpu().numpy())
        modes = {m: w for m, w in model.config.mode_weights.items() if m != "policy" and w > 0}
        tuned = finetune_windows(model, dataset, modes, steps=args.steps, batch_size=args.batch_size, lr=args.lr, seed=0)
        tuned.latent_distance_head.load_state_dict(model.latent_distance_head.state_dict())
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        shutil.copy(Path(args.checkpoint) / "train_config.json", out / "train_config.json")
        world_model.save_checkpoint(tuned, out)
        model = tuned
    else:
        model = world_model.load(args.checkpoint)
    model.eval()
    print("imagined agent after a 16-step constant chunk: present / within 4 units of the simulator")
    for speed in SPEEDS:
        for moving in (False, True):
            present, near = constant_chunk_accuracy(model, speed, moving)
            print(f"  speed {speed:.1f}, {'moving' if moving else 'still '} history: {100 * present:.0f}% / {100 * near:.0f}%")


if __name__ == "__main__":
    main()
