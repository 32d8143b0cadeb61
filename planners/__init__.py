"""Model-agnostic optimisers over batched action sequences and the receding-horizon MPC loop.
They see an objective `actions [B, N, H, A] -> costs [B, N]` and an optional proposal sampler
`(B, M) -> [B, M, H, A]`, never the world model itself."""

from planners.base import Planner, SamplingPlanner
from planners.cem import CEM
from planners.cmaes import CMAES
from planners.contract import WORST_COST, IterationInfo, PlanHistory, PlanResult
from planners.errors import PlannerError
from planners.gradient import GradientPlanner
from planners.icem import ICEM
from planners.mpc import MPCResult, run_mpc, shift_plan
from planners.mppi import MPPI
from planners.noise import powerlaw_noise
from planners.random_shooting import RandomShooting

__all__ = [
    "CEM",
    "CMAES",
    "ICEM",
    "MPPI",
    "WORST_COST",
    "GradientPlanner",
    "IterationInfo",
    "MPCResult",
    "PlanHistory",
    "PlanResult",
    "Planner",
    "PlannerError",
    "RandomShooting",
    "SamplingPlanner",
    "powerlaw_noise",
    "run_mpc",
    "shift_plan",
]
