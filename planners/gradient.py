"""Gradient planner: Adam through a differentiable objective (e.g. a differentiable world model)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from planners.base import Planner, PlanResult, PlanRun, fraction, positive_float, positive_int
from planners.cem import fixed_part
from planners.errors import PlannerError


@dataclass
class GradientState:
    z: torch.Tensor  # [B, S, H, A] starts in normalised box coordinates [-1, 1], a leaf with grad
    optimizer: torch.optim.Optimizer
    elites: torch.Tensor | None = None


class GradientPlanner(Planner):
    """Adam from several starts at once (one objective call evaluates every start), each step projected
    back onto the box; the best evaluated start is returned.

    Hyper-parameters (default, where it comes from):
    - n_starts=8: chosen here; several starts guard against the local minima of learned costs and
      cost nothing extra in calls (they share one batched call).
    - iterations=100: chosen here; DINO-WM's and stable-worldmodel's gradient planners likewise run
      tens to hundreds of steps.
    - lr=0.05: Adam step in normalised units (about 2.5% of the range per step), chosen here so 100
      steps can cross the box.
    - prior_fraction=0.25: share of starts drawn from the proposal sampler (at least one); starts are
      expensive here, so the prior gets more of them than in the sampling planners.
    Start 0 is the warm start (or the box centre), then proposals, then `init_elites`, then uniform
    random starts. Operates in the box's normalised coordinates so one lr suits every action box.
    """

    def __init__(
        self, n_starts: int = 8, iterations: int = 100, lr: float = 0.05, prior_fraction: float = 0.25
    ) -> None:
        self.n_starts = positive_int("GradientPlanner.n_starts", n_starts)
        self.iterations = positive_int("GradientPlanner.iterations", iterations)
        self.lr = positive_float("GradientPlanner.lr", lr)
        self.prior_fraction = fraction("GradientPlanner.prior_fraction", prior_fraction)
        self.n_elites = self.n_starts

    def _start(self, run: PlanRun) -> GradientState:
        s = self.n_starts
        proposals = run.draw_proposals(s, self.prior_fraction, reserved=0) if s > 1 else None
        starts = fixed_part(run.initial_mean()[:, None], proposals, run.init_elites)
        starts_t = torch.cat(starts, dim=1)[:, :s]
        if starts_t.shape[1] < s:
            starts_t = torch.cat([starts_t, run.uniform(s - starts_t.shape[1])], dim=1)
        z = ((starts_t - run.center) / run.half_range).clamp(-1.0, 1.0).requires_grad_(True)
        return GradientState(z, torch.optim.Adam([z], lr=self.lr))

    def _step(self, run: PlanRun, state: GradientState, iteration: int) -> GradientState:
        with torch.enable_grad():
            actions = run.center + run.half_range * state.z
            evaluation = run.evaluate(actions, self.n_elites, grad=True)
            if not evaluation.costs.requires_grad:
                raise PlannerError(
                    "objective returned costs without a gradient (requires_grad is False); GradientPlanner "
                    "needs costs differentiable in the actions - use CEM, ICEM, MPPI or CMAES for black-box objectives"
                )
            state.optimizer.zero_grad(set_to_none=True)
            # Starts are independent, so the gradient of the sum is each start's own gradient.
            t0 = time.perf_counter()
            evaluation.costs.sum().backward()
            run.objective_time += time.perf_counter() - t0  # the backward pass is the objective's cost too
        with torch.no_grad():
            if state.z.grad is not None:
                # A NaN cost somewhere must not poison the other starts (nor this one's position).
                torch.nan_to_num_(state.z.grad, nan=0.0, posinf=0.0, neginf=0.0)
            state.optimizer.step()
            state.z.clamp_(-1.0, 1.0)
        state.elites = evaluation.elite_actions()
        return state

    def _finish(self, run: PlanRun, state: GradientState) -> PlanResult:
        return run.finish(elites=state.elites)
