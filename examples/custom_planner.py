"""Plug in your own planner and your own goal cost.

A planner is anything with the planners' `plan(objective, *, batch_size, horizon, action_dim, low,
high, ...)` contract; the easiest way in is to subclass `planners.SamplingPlanner` and write three
methods: `_start` (initial state), `_propose` (a population `[B, N, H, A]`) and `_update` (refit from
the evaluated population). A goal cost is a `uva_plan.goal_costs.GoalCost` that maps a `Trajectory`
(imagined latents `[M, T, h, w, c]`, goal latents, predicted distances) to one number per candidate.

    python examples/custom_planner.py [--checkpoint RUN_DIR] [--episodes 4]
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import numpy as np
import torch

from planners import SamplingPlanner, run_mpc
from uva_plan.env_batch import EnvBatch
from uva_plan.envs.goals import protocol_goals
from uva_plan.goal_costs import GoalCost, LatentL2, TemporalDistance, Trajectory
from uva_plan.model_loading import load_model_for_env
from uva_plan.objective import UVAObjective


@dataclass
class HillClimbState:
    best: torch.Tensor  # [B, H, A] best sequence so far
    step: float  # perturbation size in half-ranges


class HillClimber(SamplingPlanner):
    """Perturb the best sequence found so far; shrink the perturbation every iteration."""

    def __init__(self, population: int = 64, iterations: int = 3, step: float = 0.5, shrink: float = 0.6):
        self.population, self.iterations, self.step, self.shrink = population, iterations, step, shrink
        self.n_elites = 1
        self.prior_fraction = 0.0

    def _start(self, run) -> HillClimbState:
        return HillClimbState(best=run.initial_mean(), step=self.step)

    def _propose(self, run, state: HillClimbState, iteration: int) -> torch.Tensor:
        noise = torch.randn(run.B, self.population, run.H, run.A, generator=run.generator, device=run.device)
        population = state.best[:, None] + state.step * run.half_range * noise
        population[:, 0] = state.best  # keep the incumbent
        return run.clamp(population)

    def _update(self, run, state: HillClimbState, iteration: int, population, evaluation) -> HillClimbState:
        return HillClimbState(best=evaluation.elite_actions(1)[:, 0], step=state.step * self.shrink)


class DistanceWithLatentTieBreak(GoalCost):
    """The distance head's steps-to-goal, plus a small latent term that separates near-ties."""

    needs_latents = True
    needs_distance = True
    name = "my_cost"

    def __call__(self, traj: Trajectory) -> torch.Tensor:
        return TemporalDistance("sum")(traj) + 2.0 * LatentL2("final")(traj)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--episodes", type=int, default=4)
    args = parser.parse_args()

    model = load_model_for_env(args.checkpoint, "wall")
    cfg = model.config
    goals = protocol_goals("wall", args.episodes, seed=1)
    batch = EnvBatch("wall", [g.start_state for g in goals], image_size=cfg.image_size)
    env = batch.envs[0]
    goal_images = torch.from_numpy(np.stack([env.render_state(np.asarray(g.goal_state)) for g in goals]))

    run_mpc(
        HillClimber(),
        lambda: UVAObjective(model, batch.history(cfg.n_history, cfg.frame_stride), goal_images,
                             DistanceWithLatentTieBreak(), num_steps=2,
                             history_states=batch.history_states(cfg.n_history, cfg.frame_stride)),
        batch.step,
        batch_size=len(goals), horizon=cfg.chunk_len, action_dim=2,
        low=torch.as_tensor(env.action_low), high=torch.as_tensor(env.action_high),
        n_execute=8, budget_steps=64, seed=0,
    )
    states = batch.states()
    reached = [env.is_success(states[i], np.asarray(g.goal_state)) for i, g in enumerate(goals)]
    print(f"custom planner + custom cost: {sum(reached)}/{len(goals)} goals reached")


if __name__ == "__main__":
    main()
