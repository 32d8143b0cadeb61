"""The shipped Wall world model from Python, on a fresh clone: every inference mode in a few lines.

From a still start, the goal-conditioned policy proposes action chunks, forward dynamics imagines
where one of them leads (the agent found in the imagined frames is printed next to the simulator's),
inverse dynamics recovers the actions of a recorded video, and the latent-distance head says how far
each imagined frame is from the goal.

    python examples/shipped_world_model.py
"""

from __future__ import annotations

import numpy as np
import torch

import world_model
from uva_plan.envs import make_env
from uva_plan.envs.wall_locate import locate_agent
from uva_plan.model_loading import default_checkpoint
from uva_plan.proprio import history_proprio


def main() -> None:
    torch.manual_seed(0)
    model = world_model.load(default_checkpoint("wall"))
    env = make_env("wall")
    _, info = env.reset(seed=7)  # draws the door
    door = float(info["state"][2])
    obs, info = env.reset(options={"state": [12.0, 44.0, door]})  # the left room
    history = torch.from_numpy(np.repeat(obs[None, None], model.config.n_history, axis=1))  # [1, 4, 64, 64, 3]
    goal_state = [52.0, 20.0, door]  # the right room, same door
    goal = torch.from_numpy(env.render_state(goal_state))[None]  # [1, 64, 64, 3]

    chunks = model.policy(history, goal=goal, num_samples=8)  # [1, 8, 16, 2] env units; no video generated
    actions = chunks[:, 0]  # [1, 16, 2]
    # the agent's own position at the history frames (the model was trained with --proprio)
    states = history_proprio(model, np.repeat(np.asarray(info["state"])[None, None], model.config.n_history, axis=1))
    future = model.forward_dynamics(history, actions, goal=goal, history_proprio=states, decode=True, temperature=0.0)
    imagined_xy, present, _ = locate_agent(future.frames[0].numpy())  # [4, 2] world units

    true_xy, frames = [], [obs]
    for a in actions[0].numpy():
        obs, _, _, _, info = env.step(a)
        frames.append(obs)
        true_xy.append(info["state"][:2])
    true_xy = np.stack(true_xy)[model.config.frame_stride - 1 :: model.config.frame_stride]  # [4, 2]

    print(f"policy chunk {tuple(chunks.shape)}; first actions {np.round(actions[0, :3].double().numpy(), 2).tolist()}")
    for k, (im, tr, p) in enumerate(zip(imagined_xy, true_xy, present)):
        where = f"({im[0]:5.1f}, {im[1]:5.1f})" if p else "missing"
        print(f"+{(k + 1) * model.config.frame_stride:2d} steps: imagined agent {where}, simulator ({tr[0]:5.1f}, {tr[1]:5.1f})")
    print("steps to the goal from each imagined frame:", np.round(future.latent_distance[0].double().numpy(), 1).tolist())

    video = torch.from_numpy(np.stack(frames))[None]  # [1, 17, 64, 64, 3], one frame per env step
    recovered = model.inverse_dynamics(video)  # [1, 16, 2]
    err = (recovered - actions).abs().mean().item()
    print(f"inverse dynamics on the executed video: mean abs action error {err:.2f} (actions in [-2, 2])")


if __name__ == "__main__":
    main()
