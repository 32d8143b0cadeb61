"""Where does PushT's policy aim? Its first position target against the agent, on held-out windows.

PushT's actions are position targets, and the data's pusher keeps each one within 30 px of the agent. A
goal-conditioned policy that knows where the agent is aims near it; one that aims 60 px off drags the agent
(and the block) away. Two kinds of start, one table:
- held-out pusher episodes with their true moving history (the data's situation), the goal 25 steps on:
  the first target's distance from the agent, the recorded one's, and the chunk's error against the
  recorded chunk;
- the planning protocol's starts (`uva-plan goals`), where an episode's history is its start frame shown
  four times: the first target's distance from the agent.
A proprioceptive model is told the history's states and the goal's (they change nothing for a model
without ``proprio_context``).

    python benchmarks/policy_aim.py [--checkpoint RUN] [--episodes 6] [--goals 50]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

import world_model
from uva_plan.envs import make_env
from uva_plan.envs.goals import PUSHT_SEGMENT_STEPS, protocol_goals
from uva_plan.imagination import heldout_episodes
from uva_plan.model_loading import load_model_for_env
from uva_plan.proprio import goal_proprio, history_proprio


def _policy_chunk(model, frames, states, goal_frame, goal_state) -> np.ndarray:
    """The policy's own (temperature 0) chunk ``[L, 2]`` for one history ``frames [Th, H, W, 3]``."""
    chunk = model.policy(torch.from_numpy(frames[None]), goal=torch.from_numpy(goal_frame[None]), temperature=0.0,
                         history_proprio=history_proprio(model, states[None].astype(np.float32)),
                         goal_proprio=goal_proprio(model, goal_state[None]),
                         generator=torch.Generator().manual_seed(0))
    return chunk[0, 0].cpu().numpy()


def moving_history(model, n_episodes: int) -> dict:
    cfg = model.config
    span = (cfg.n_history - 1) * cfg.frame_stride
    eps = heldout_episodes(kinds=["pusher"], n_per_kind=n_episodes, steps=span + 2 * PUSHT_SEGMENT_STEPS,
                           image_size=cfg.image_size, env_name="pusht")
    aim, recorded, chunk_err = [], [], []
    for ep in eps:
        for t in range(span, span + PUSHT_SEGMENT_STEPS, 8):
            hist = t - cfg.frame_stride * np.arange(cfg.n_history - 1, -1, -1)
            goal = t + PUSHT_SEGMENT_STEPS
            chunk = _policy_chunk(model, ep.frames[hist], ep.states[hist], ep.frames[goal], ep.states[goal])
            agent = ep.states[t, :2]
            aim.append(np.hypot(*(chunk[0] - agent)))
            recorded.append(np.hypot(*(ep.actions[t] - agent)))
            chunk_err.append(np.hypot(*(chunk - ep.actions[t : t + len(chunk)]).T).mean())
    return {"windows": len(aim), "aim": float(np.median(aim)), "recorded": float(np.median(recorded)),
            "chunk_error": float(np.median(chunk_err))}


def protocol_starts(model, n_goals: int) -> dict:
    cfg = model.config
    env = make_env("pusht", image_size=cfg.image_size)
    aim = []
    for pair in protocol_goals("pusht", n_goals, 0):
        start, goal = np.asarray(pair.start_state), np.asarray(pair.goal_state)
        frame = env.render_state(start)
        chunk = _policy_chunk(model, np.repeat(frame[None], cfg.n_history, axis=0),
                              np.repeat(start[None], cfg.n_history, axis=0), env.render_state(goal), goal)
        aim.append(np.hypot(*(chunk[0] - start[:2])))
    return {"starts": len(aim), "aim": float(np.median(aim)), "aim_p90": float(np.percentile(aim, 90))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", action="append", help="RUN_DIR (repeatable; default: the shipped PushT checkpoint)")
    parser.add_argument("--episodes", type=int, default=6, help="held-out pusher episodes (4 windows each)")
    parser.add_argument("--goals", type=int, default=50, help="protocol starts (seed 0, as goal_planning.py)")
    args = parser.parse_args()
    table = Table(title="PushT policy: its first position target against the agent (px at 512; the pusher keeps <= 30)")
    for col in ("checkpoint", "moving history: first target - agent (median)", "recorded target - agent",
                "chunk - recorded chunk", "protocol start (still history): first target - agent, median / p90"):
        table.add_column(col, justify="right")
    for path in args.checkpoint or [None]:
        model = load_model_for_env(path, "pusht") if path is None else world_model.load(path)
        moving, still = moving_history(model, args.episodes), protocol_starts(model, args.goals)
        table.add_row(str(path or "shipped"), f"{moving['aim']:.0f}", f"{moving['recorded']:.0f}",
                      f"{moving['chunk_error']:.0f}", f"{still['aim']:.0f} / {still['aim_p90']:.0f}")
    Console().print(table)


if __name__ == "__main__":
    main()
