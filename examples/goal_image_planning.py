"""Goal-image planning from Python, without the CLI.

UVA's forward-dynamics mode imagines what each candidate action sequence leads to, a goal cost scores
the imagined frames against a goal image, and CEM picks the best in a receding-horizon loop; the
goal-conditioned policy head seeds part of every population. Success is judged after the episode.

    python examples/goal_image_planning.py [--checkpoint RUN_DIR] [--episodes 4] [--seed 0]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from planners import CEM, run_mpc
from uva_plan.env_batch import EnvBatch
from uva_plan.envs.goals import protocol_goals
from uva_plan.goal_costs import make_cost
from uva_plan.model_loading import load_model_for_env
from uva_plan.objective import PolicyProposals, UVAObjective
from uva_plan.plan_settings import PlanSettings, cost_for


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None, help="RUN_DIR of `uva-plan train` (default: shipped Wall model)")
    parser.add_argument("--episodes", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    model = load_model_for_env(args.checkpoint, "wall")
    cfg = model.config
    goals = protocol_goals("wall", args.episodes, args.seed)  # start and goal in different rooms
    batch = EnvBatch("wall", [g.start_state for g in goals], image_size=cfg.image_size)
    goal_images = torch.from_numpy(np.stack([batch.envs[0].render_state(np.asarray(g.goal_state)) for g in goals]))
    cost = make_cost(cost_for(PlanSettings(), "wall"))  # the Wall's measured default: the latent-distance head
    generator = torch.Generator().manual_seed(args.seed)

    def make_objective():  # called before every replan with the current observations
        history = batch.history(cfg.n_history, cfg.frame_stride)  # [B, 4, 64, 64, 3] uint8
        states = batch.history_states(cfg.n_history, cfg.frame_stride)  # [B, 4, D]: the agent's proprioception
        return UVAObjective(model, history, goal_images, cost, num_steps=2, generator=generator, history_states=states)

    def proposals_fn():  # the policy head's candidates for the current observations
        sampler = PolicyProposals(model, batch.history(cfg.n_history, cfg.frame_stride), goal_images,
                                  num_steps=2, generator=generator,
                                  history_states=batch.history_states(cfg.n_history, cfg.frame_stride))
        return lambda b, m: sampler(b, m, cfg.chunk_len)

    env = batch.envs[0]
    result = run_mpc(
        CEM(population=32, n_elites=4, iterations=2, prior_fraction=0.25),
        make_objective,
        batch.step,  # executes [B, n, A] in the real environments
        batch_size=len(goals), horizon=cfg.chunk_len, action_dim=len(env.action_low),
        low=torch.as_tensor(env.action_low), high=torch.as_tensor(env.action_high),
        n_execute=8, budget_steps=64, proposals_fn=proposals_fn, seed=args.seed,
    )
    # Judged after the episode, from the true state: the loop never looked at it.
    states = batch.states()
    for i, g in enumerate(goals):
        ok = env.is_success(states[i], np.asarray(g.goal_state))
        print(f"goal {i}: {'reached' if ok else 'missed '}  final distance {env.state_distance(states[i], np.asarray(g.goal_state)):5.1f}")
    print(f"{result.n_replans} replans, {np.mean(result.plan_seconds):.2f} s per replan")


if __name__ == "__main__":
    main()
