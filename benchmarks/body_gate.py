"""Where a stepwise body's imagined agent falls short: its gates, step by step, on held-out expert chunks.

A Wall model that rolls the agent out one env step at a time (`proprio_body_stepwise`) moves it by a free
move times a gate in (0, 1) read from a glimpse of the newest frame. Where no wall is near, the gate should
pass the whole move. This prints, per step of the chunk, the median gate (x, y) on held-out expert windows
(the imagination benchmark's episodes: seeds no training data uses), and how far the predicted position
ends from the simulator along the direction of the true move at the chunk's end (negative: short of it).

    python benchmarks/body_gate.py --checkpoint runs/wall-fit10
"""

from __future__ import annotations

import argparse

import numpy as np
import torch


def main() -> None:
    import world_model
    from uva_plan.imagination import heldout_episodes, window_inputs, windows
    from uva_plan.proprio import history_proprio

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="RUN_DIR of a Wall model with proprio_body_stepwise")
    parser.add_argument("--episodes", type=int, default=12, help="held-out expert episodes")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = world_model.load(args.checkpoint).eval()
    cfg = model.config
    if not cfg.proprio_body_stepwise:
        raise SystemExit(f"{args.checkpoint} does not roll its body out step by step; expected proprio_body_stepwise")
    episodes = heldout_episodes(["expert"], n_per_kind=args.episodes)
    wins = windows(episodes, cfg, cfg.chunk_len, 8)
    frames, actions, states = window_inputs(episodes, wins, cfg)
    actions = torch.from_numpy(actions)
    with torch.no_grad():
        latents = model.encode(torch.from_numpy(frames))
        proprio = model.proprio_normalizer.normalize(history_proprio(model, states))
        future, gates = model.proprio_dynamics.roll(proprio[:, -1:], model.normalizer.normalize(actions),
                                                    model.body_view(latents, proprio))
        end = model.proprio_normalizer.unnormalize(future[:, -1]).numpy()[:, list(cfg.proprio_image_xy)]
    start = np.stack([episodes[e].states[t, :2] for e, t in wins])
    truth = np.stack([episodes[e].states[t + cfg.chunk_len, :2] for e, t in wins])
    move = truth - start
    along = ((end - truth) * move / np.maximum(np.linalg.norm(move, axis=1, keepdims=True), 1e-6)).sum(1)
    median = np.median(gates.numpy(), axis=0)
    print(f"{args.checkpoint}: {len(wins)} held-out expert chunks of {cfg.chunk_len} steps")
    print("step  " + " ".join(f"{k + 1:>5d}" for k in range(median.shape[0])))
    for axis, name in enumerate(("gate x", "gate y")):
        print(f"{name}" + " ".join(f"{v:5.2f}" for v in median[:, axis]))
    print(f"true move over the chunk: median {np.median(np.linalg.norm(move, axis=1)):.1f} px; predicted end along it: "
          f"median {np.median(along):+.2f} px (negative: short)")


if __name__ == "__main__":
    main()
