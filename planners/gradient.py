"""Gradient planner: Adam through a differentiable objective (e.g. a differentiable world model)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from planners.base import Planner
from planners.contract import PlanResult
from planners.errors import PlannerError
from planners.plan_run import PlanRun
from planners.population import carried_parts
from planners.validation import fraction, positive_float, positive_int

# Adam's constants (Kingma & Ba; torch.optim.Adam's defaults).
BETA1, BETA2, EPS = 0.9, 0.999, 1e-8


@dataclass
class GradientState:
    z: torch.Tensor  # [B, S, H, A] starts in normalised box coordinates [-1, 1]
    m: torch.Tensor  # Adam's first moment, like z
    v: torch.Tensor  # Adam's second moment, like z
    step: int = 0
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
      steps can cross the box. Betas (0.9, 0.999) and eps 1e-8: Adam's (and torch.optim's) defaults.
    - prior_fraction=0.25: share of starts drawn from the proposal sampler (at least one); starts are
      expensive here, so the prior gets more of them than in the sampling planners.
    Start 0 is the warm start (or the box centre), then proposals, then `init_elites`, then uniform
    random starts. Operates in the box's normalised coordinates so one lr suits every action box.

    The Adam update is written out here (five tensor ops) instead of using torch.optim.Adam, whose
    constructor imports torch._dynamo on first use: 2.4 s here, paid by the first plan of a process.
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
        if torch.is_inference_mode_enabled():
            raise PlannerError(
                "GradientPlanner.plan was called inside torch.inference_mode(), where no gradient can be "
                "taken; call it outside inference mode (torch.no_grad() around it is fine)"
            )
        s = self.n_starts
        proposals = run.draw_proposals(s, self.prior_fraction, reserved=0) if s > 1 else None
        starts = carried_parts(run.initial_mean()[:, None], proposals, run.init_elites)
        starts_t = torch.cat(starts, dim=1)[:, :s]
        if starts_t.shape[1] < s:
            starts_t = torch.cat([starts_t, run.uniform(s - starts_t.shape[1])], dim=1)
        z = ((starts_t - run.center) / run.half_range).clamp(-1.0, 1.0)
        return GradientState(z, torch.zeros_like(z), torch.zeros_like(z))

    def _step(self, run: PlanRun, state: GradientState, iteration: int) -> GradientState:
        with torch.enable_grad():
            z = state.z.detach().requires_grad_(True)
            evaluation = run.evaluate(run.center + run.half_range * z, self.n_elites, grad=True)
            if not evaluation.costs.requires_grad:
                raise PlannerError(
                    "objective returned costs without a gradient (requires_grad is False); GradientPlanner "
                    "needs costs differentiable in the actions - use CEM, ICEM, MPPI or CMAES for black-box objectives"
                )
            # Starts are independent, so the gradient of the sum is each start's own gradient.
            t0 = time.perf_counter()
            (grad,) = torch.autograd.grad(evaluation.costs.sum(), z)
            run.objective_time += time.perf_counter() - t0  # the backward pass is the objective's cost too
        with torch.no_grad():
            # A NaN cost somewhere must not poison the other starts (nor this one's position).
            grad = torch.nan_to_num(grad, nan=0.0, posinf=0.0, neginf=0.0)
            state.step += 1
            state.m.lerp_(grad, 1 - BETA1)
            state.v.mul_(BETA2).addcmul_(grad, grad, value=1 - BETA2)
            denom = (state.v / (1 - BETA2**state.step)).sqrt_().add_(EPS)
            state.z = state.z.addcdiv(state.m, denom, value=-self.lr / (1 - BETA1**state.step)).clamp_(
                -1.0, 1.0
            )
        state.elites = evaluation.elite_actions()
        return state

    def _finish(self, run: PlanRun, state: GradientState) -> PlanResult:
        return run.finish(elites=state.elites)
