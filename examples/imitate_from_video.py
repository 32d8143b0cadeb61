"""Imitate a video that has no actions, with the library API.

A scripted Wall expert records a demonstration; only its frames are kept, as a GIF. UVA's inverse
dynamics then labels the GIF, the model's stepwise body model refines the labels one env step at a
time, the labels are replayed open-loop from the start state, and the video is tracked closed-loop with
goal-image MPC. The true actions are used only to score the labels.

    python examples/imitate_from_video.py [--checkpoint RUN_DIR] [--out imitation-example]

The same from the command line: `uva-plan imitate --video demo.gif --start-state X,Y,DOOR --mode track
--env wall --out DIR`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def record_demo(steps: int = 40, seed: int = 123):
    """A cross-room expert demonstration on a held-out goal pair: frames ``[steps+1, 64, 64, 3]``, actions, states."""
    from uva_plan.envs import make_env
    from uva_plan.envs.goals import protocol_goals
    from uva_plan.envs.policies import make_policy

    pair = protocol_goals("wall", 1, seed=seed)[0]
    env = make_env("wall", image_size=64)
    obs, info = env.reset(options={"state": pair.start_state})
    expert = make_policy("wall", "expert", seed=seed)
    expert.reset(info["state"], goal_state=pair.goal_state)
    frames, actions, states = [obs], [], [info["state"]]
    for _ in range(steps):
        a = expert(env.get_state())
        obs, _, _, _, info = env.step(a)
        frames.append(obs)
        actions.append(a)
        states.append(info["state"])
    return np.stack(frames), np.stack(actions), np.stack(states)


def main() -> None:
    from uva_plan import imitation as im
    from uva_plan.model_loading import load_model_for_env
    from uva_plan.videos import load_video
    from uva_plan.viz import side_by_side_gif, write_gif

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None, help="Wall RUN_DIR (default: the shipped checkpoint)")
    parser.add_argument("--out", default="imitation-example")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    frames, true_actions, states = record_demo()
    write_gif(out / "demo.gif", frames)  # the action-free video: frames only
    model = load_model_for_env(args.checkpoint, "wall")
    video = load_video(out / "demo.gif", model.config.image_size, min_frames=im.min_video_frames(model.config))
    print(f"video: {len(video)} frames of {video.original_size}, note: {video.note}")

    labels = im.label_frames(model, video.frames, num_samples=4)  # UVA's inverse-dynamics mode
    low, high = model.config.action_low, model.config.action_high
    scores = im.action_metrics(labels.actions, true_actions, low, high)
    print(f"inverse-dynamics labels: R^2 {scores['action_r2']:.3f}, mean spread {labels.std.mean():.3f}")
    if im.why_not_refined(model, "wall") is None:  # one env step at a time, by the model's body model
        labels = im.refine_labels(model, "wall", video.frames, labels)
        scores = im.action_metrics(labels.actions, true_actions, low, high)
        print(f"refined labels:          R^2 {scores['action_r2']:.3f}, mean spread {labels.std.mean():.3f}")
    im.save_labels(out, labels)

    start, goal = states[:1], states[-1:]
    for name, rollout in (
        ("open-loop replay", im.replay_actions("wall", start, labels.actions[None])),
        ("closed-loop tracking", im.track_video(model, "wall", start, video.frames[None], labels.actions[None])),
    ):
        result = im.judge("wall", rollout, goal, video.frames[-1:])
        print(f"{name}: reached the demo's end: {bool(result['success_rate'])}, "
              f"final distance {result['mean_final_distance']:.2f}")
        side_by_side_gif(out / f"{name.replace(' ', '_')}.gif", video.frames, rollout.frames[0],
                         labels=("demo", name))
    print(f"GIFs and actions.csv are in {out}/")


if __name__ == "__main__":
    main()
