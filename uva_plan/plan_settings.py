"""The knobs of a goal-image planning run, kept free of heavy imports so the CLI can show their
defaults in `--help` without loading torch."""

from __future__ import annotations

from dataclasses import dataclass

from uva_plan.errors import UserInputError

PLANNER_NAMES = ("cem", "icem", "mppi", "cmaes", "gradient", "random")
# Where an episode's first plan starts: "hold" = the env's hold-still action (Wall: zero velocity, the
# box's centre; PushT: the agent's own position, which a robot knows from proprioception: gym-pusht
# observes it as agent_pos), "centre" = the action box's centre (PushT: "drive to the board's centre").
FIRST_PLANS = ("hold", "centre")
COST_NAMES = (
    "latent_l2",
    "latent_l2_sum",
    "multiscale",
    "multiscale_sum",
    "distance",
    "distance_sum",
    "latent_distance",
    "latent_distance_sum",
    "subgoal",
    "distance+latent",
    "latent_distance+latent",
    "agent_sum",
    "multiscale_sum+agent",
    "pose_sum",
    "block_pose_sum+agent",
    "subgoal_pose_sum",
    "multiscale_sum+agent+pose",
    "predicted_pose_sum",
    "predicted_pose_steps",
    "subgoal_pose_steps",
)
# Costs that read one env's objects (goal_costs.LocatedPose from pixels, PredictedPose from an object-pose
# model: PushT's T and agent).
COST_ENVS = {"pose_sum": ("pusht",), "block_pose_sum+agent": ("pusht",), "subgoal_pose_sum": ("pusht",),
             "multiscale_sum+agent+pose": ("pusht",), "predicted_pose_sum": ("pusht",),
             "predicted_pose_steps": ("pusht",), "subgoal_pose_steps": ("pusht",)}
# Goal cost per env when none is asked for. Wall: the learned distance summed over the plan's frame
# times ranks frames best and plans best (README "Why the planning defaults"). PushT: with the true
# frames (oracle-image) multiscale_sum reaches 20% of 50 paced goals (final distance 83); on their first
# 16, multiscale_sum 12% (89), latent_l2_sum 12% (119), the learned distance 0% (155). The UVA planner +
# prior ends closer with it too (50 goals: 2%, 249 against 0%, 318).
#
# PushT with a proprioceptive world model (`train --proprio`, the shipped one): the image cost plus the
# agent's own predicted position against its goal position (DINO-WM's proprio term), 50 goals planner +
# prior: 18% against 6% for the image cost alone and 12% for the agent alone (README, "Proprioception").
# It needs what it reads: without a proprio model or without the goal's state (a user's picture) the
# image-only cost of IMAGE_ONLY_COSTS applies, and results.json records which.
DEFAULT_COSTS = {"wall": "latent_distance_sum", "pusht": "multiscale_sum+agent"}
# PushT with a world model that predicts the T's pose (`train --proprio --object-pose`) and goals that carry
# their state: the success test's own terms on the predicted poses (README, "The block's pose").
OBJECT_POSE_COSTS = {"pusht": "predicted_pose_sum"}
# The same terms after every env step, for a model that rolls the poses out one step at a time
# (`proprio_object_stepwise`): scored only at the frames, the chosen plans left the goal between them and
# came back, and the 50-step budget ends between two frames (50 goals, planner + prior, seed 0 / seed 1:
# the checkpoint before 32 / 28% -> 52 / 60%, the shipped one 38 / 32% -> 62 / 58%; README, "The block's pose").
STEPWISE_POSE_COSTS = {"pusht": "predicted_pose_steps"}
IMAGE_ONLY_COSTS = {"wall": "latent_distance_sum", "pusht": "multiscale_sum"}
# Planner population (candidates per iteration, iterations per replan) per goal cost. A cost that reads
# no frames and runs no transformer (PushT's predicted poses: 0.2 s per replan at 64 x 3) affords a larger
# one; on the seed-1 goals (50, planner + prior) 64 x 3 / 256 x 4 / 512 x 4 / 512 x 6 / 512 x 8 / 1024 x 4
# reached 34 / 26 / 30 / 38 / 30 / 28%, so 512 x 6; on the seed-0 goals 24% against 18% at 64 x 3, and the
# planner without the prior 26-28% against 6-10% (README, "The block's pose").
DEFAULT_POPULATION = (64, 3)
# Tracking a PushT video with the same terms against its poses at every step (16 held-out demos): 64 x 3
# reached 31% of true replay (final distance 40), 512 x 6 94% (14) (README, "Imitation from action-free videos").
POPULATIONS = {"predicted_pose_sum": (512, 6), "predicted_pose_steps": (512, 6), "subgoal_pose_steps": (512, 6)}
# Env-step budget per episode: PushT follows the peers' 50 steps (REFERENCE section 2).
BUDGET_STEPS = {"wall": 64, "pusht": 50}
# Price of leaving the policy's own plan (planner + prior; see objective.PolicyAnchoredObjective), per
# env. Wall: none since the world model stops the agent at walls (200 goals: 98% at price 0, 94% at 100;
# a world model that carried the agent through walls needed 100, README "Why the planning defaults").
# PushT: not measured with a price, so none. Applied with the default costs only (see prior_weight_for).
PRIOR_WEIGHTS = {"wall": 0.0, "pusht": 0.0}
# Price of leaving the plan that holds the agent still (see hold_weight_for), per goal cost (its scale is
# the cost's). None measured to help: PushT's predicted-pose cost at 300 (chosen on the seed-1 goals) took
# the planner + prior from 28% to 42% there, but on the seed-0 goals from 32% to 28% and the planner
# without the prior from 34% to 20% (README "The block's pose").
HOLD_WEIGHTS: dict[str, float] = {}
# MAR passes of the world model per imagined chunk, per env. Wall: 2 keep the imagined agent in every
# frame but plan no better at 1.4x the time. PushT (the shipped --proprio checkpoint, 50 goals, planner
# + prior): 2 passes 22% at 4.3 s per replan against 1 pass 18% at 2.6 s, where 128 samples (the same
# time) gave 16% (README, "Why the planning defaults").
MODEL_PASSES = {"wall": 1, "pusht": 2}
# Env steps executed before each replan, per env. PushT (shipped checkpoint, 50 goals, on the seed-0 and
# the seed-1 goal sets): 4 steps, planner + prior 22% / 22% against 22% / 14% at 8 (final distance 99 / 93
# against 114 / 107; the policy alone 2% / 2% either way); the true simulator with the true distance 70% /
# 66% against 44% / 46% (README, "Replanning every 4 steps"). Wall: 8, on which its figures stand.
EXECUTE_STEPS = {"wall": 8, "pusht": 4}


# Per-batch random streams: a batch of episodes draws its planner noise from ``seed * BATCH_SEED_STRIDE +
# first episode`` and its world-model samples from ``seed * MODEL_SEED_STRIDE + offset`` (primes, so
# neighbouring --seed values and batches never share a stream).
BATCH_SEED_STRIDE = 7919
MODEL_SEED_STRIDE = 1_000_003


def batch_seed(seed: int, first: int) -> int:
    """The planner seed of the batch whose first episode is ``first``."""
    return int(seed) * BATCH_SEED_STRIDE + int(first)


def model_generator(seed: int, first: int):
    """The world model's sample stream for the batch whose first episode is ``first``."""
    import torch

    return torch.Generator().manual_seed(int(seed) * MODEL_SEED_STRIDE + int(first))


# The knobs `uva-plan plan` / `demo` set from an option of the same name: messages name both, so a CLI
# user and a Python caller each recognise theirs.
CLI_FLAGS = ("samples", "iters", "horizon", "execute", "budget_steps", "denoise_steps", "model_samples", "model_passes",
             "first_plan", "prior_fraction", "prior_weight", "hold_weight", "policy_temperature", "time_budget")


def _flag(name: str) -> str:
    return f" (--{name.replace('_', '-')})" if name in CLI_FLAGS else ""


@dataclass
class PlanSettings:
    """Knobs of one evaluation. Defaults are the measured CPU defaults: README "Why the planning
    defaults" has the measurement behind each and its command."""

    planner: str = "cem"
    # Candidates per iteration and iterations per replan; None = the cost's measured population
    # (``population_for``: 64 x 3, the smallest with which the true distance solves the cross-room goals;
    # 512 x 6 for PushT's predicted-pose cost, which costs no frames).
    samples: int | None = None
    iters: int | None = None
    horizon: int = 16
    # Env steps executed before replanning; None = the env's EXECUTE_STEPS (see execute_for).
    execute: int | None = None
    prior_fraction: float = 0.25
    budget_steps: int = 64
    time_budget: float | None = None
    # The goal cost; None = the env's DEFAULT_COSTS (see cost_for).
    cost: str | None = None
    denoise_steps: int = 2
    # Sampling temperature of the policy's OWN choice: the policy-alone method's actions and the first
    # proposal of each prior population (the other proposals keep the checkpoint's temperature, for
    # spread). 0 = DDIM from zero noise: a warmer draw follows the data's wandering chunks.
    policy_temperature: float = 0.0
    # Price of leaving the policy's own plan (planner + prior only); None = the env's PRIOR_WEIGHTS.
    prior_weight: float | None = None
    # Price of moving at all: of leaving the plan that holds the agent still (``envs.hold_actions``),
    # in the same units as prior_weight; None = the cost's measured HOLD_WEIGHTS (see hold_weight_for).
    hold_weight: float | None = None
    model_samples: int = 1
    # MAR passes of the world model per imagined chunk; None = the env's MODEL_PASSES.
    model_passes: int | None = None
    # The first plan's mean (see FIRST_PLANS). PushT, true simulator + true distance, 16 paced goals:
    # hold 44% / centre 38% (README "Why the planning defaults"); the Wall's hold IS the box's centre.
    first_plan: str = "hold"
    batch_episodes: int = 8
    seed: int = 0

    def validate(self, chunk_len: int, env_name: str | None = None) -> None:
        """Raise UserInputError naming the first knob out of range and what it should be; with
        ``env_name`` the env's default interval (``execute=None``) is checked against the horizon too."""
        if self.planner not in PLANNER_NAMES:
            raise UserInputError(f"unknown planner {self.planner!r}; expected one of {', '.join(PLANNER_NAMES)}")
        if self.first_plan not in FIRST_PLANS:
            raise UserInputError(f"first_plan{_flag('first_plan')} is {self.first_plan!r}; expected one of {', '.join(FIRST_PLANS)}")
        if self.cost is not None and self.cost not in COST_NAMES:
            raise UserInputError(f"unknown goal cost {self.cost!r}; expected one of {', '.join(COST_NAMES)}")
        if self.cost in COST_ENVS and env_name is not None and _short_env(env_name) not in COST_ENVS[self.cost]:
            raise UserInputError(f"the {self.cost} cost reads {', '.join(COST_ENVS[self.cost])}'s objects; "
                                 f"expected another --cost for {_short_env(env_name)}")
        for name in ("samples", "iters", "horizon", "execute", "budget_steps", "denoise_steps", "model_samples",
                     "model_passes", "batch_episodes"):
            if name in ("model_passes", "execute", "samples", "iters") and getattr(self, name) is None:
                continue
            if getattr(self, name) < 1:
                raise UserInputError(f"{name}{_flag(name)} must be >= 1, got {getattr(self, name)}")
        if self.samples is not None and self.samples < 4:
            raise UserInputError(f"samples{_flag('samples')} must be >= 4 (a population needs elites), got {self.samples}")
        if self.horizon % chunk_len:
            raise UserInputError(f"horizon {self.horizon}{_flag('horizon')} must be a multiple of the model's chunk length {chunk_len}")
        if self.execute is not None and self.execute > self.horizon:
            raise UserInputError(f"execute {self.execute}{_flag('execute')} must be <= horizon {self.horizon}{_flag('horizon')}")
        if self.execute is None and env_name is not None and execute_for(self, env_name) > self.horizon:
            raise UserInputError(f"horizon {self.horizon}{_flag('horizon')} is shorter than {env_name}'s default "
                                 f"{execute_for(self, env_name)} steps per replan; expected a horizon >= that, or "
                                 f"execute{_flag('execute')} <= {self.horizon}")
        if not 0.0 <= self.prior_fraction < 1.0:
            raise UserInputError(f"prior_fraction{_flag('prior_fraction')} must be in [0, 1), got {self.prior_fraction}")
        if self.prior_weight is not None and (isinstance(self.prior_weight, bool) or not (
                isinstance(self.prior_weight, (int, float)) and 0.0 <= self.prior_weight < float("inf"))):
            raise UserInputError(f"prior_weight{_flag('prior_weight')} is {self.prior_weight!r}; expected a finite number >= 0, or None for the env's default")
        if self.hold_weight is not None and (isinstance(self.hold_weight, bool) or not (
                isinstance(self.hold_weight, (int, float)) and 0.0 <= self.hold_weight < float("inf"))):
            raise UserInputError(f"hold_weight{_flag('hold_weight')} is {self.hold_weight!r}; expected a finite number "
                                 ">= 0, or None for the cost's default")
        if not (isinstance(self.policy_temperature, (int, float)) and 0.0 <= self.policy_temperature <= 10.0):
            raise UserInputError(f"policy_temperature{_flag('policy_temperature')} must be in [0, 10], got {self.policy_temperature}")
        if self.time_budget is not None and not self.time_budget > 0:
            raise UserInputError(f"time_budget{_flag('time_budget')} must be > 0 seconds, got {self.time_budget}")


def prior_weight_for(settings: PlanSettings, env_name: str) -> float:
    """The settings' price of leaving the policy's plan, or the env's measured default. The default was
    measured with the default cost (the price is added to it, so its scale matters): another cost gets
    no price unless one is asked for."""
    if settings.prior_weight is not None:
        return settings.prior_weight
    name = _short_env(env_name)
    return PRIOR_WEIGHTS[name] if settings.cost in (None, DEFAULT_COSTS[name], IMAGE_ONLY_COSTS[name]) else 0.0


def hold_weight_for(settings: PlanSettings, cost_name: str | None) -> float:
    """The settings' price of moving, or the one measured with the goal cost applied (0 for the others:
    the price is added to the cost, so its scale is the cost's)."""
    return settings.hold_weight if settings.hold_weight is not None else HOLD_WEIGHTS.get(cost_name, 0.0)


def execute_for(settings: PlanSettings, env_name: str) -> int:
    """The settings' env steps per replan, or the env's measured default."""
    return settings.execute if settings.execute is not None else EXECUTE_STEPS[_short_env(env_name)]


def passes_for(settings: PlanSettings, env_name: str) -> int:
    """The settings' MAR passes per imagined chunk, or the env's measured default."""
    return settings.model_passes if settings.model_passes is not None else MODEL_PASSES[_short_env(env_name)]


def cost_for(settings: PlanSettings, env_name: str, model=None, goal_states: bool = True) -> str:
    """The settings' goal cost, or the env's measured default: the predicted-pose one where ``model``
    predicts the pushed object's pose and the goals carry their state (after every env step where it rolls
    the poses out one step at a time); the image-only one where the default
    reads the agent's own position and ``model`` has no proprioception or the goals carry no state
    (``goal_states=False``). ``model=None``: no world model (the simulator oracles read true states)."""
    if settings.cost is not None:
        return settings.cost
    name = _short_env(env_name)
    if name in OBJECT_POSE_COSTS and goal_states and model is not None:
        from uva_plan.proprio import places_object

        if places_object(model):
            stepwise = model.config.proprio_object_stepwise and name in STEPWISE_POSE_COSTS
            return STEPWISE_POSE_COSTS[name] if stepwise else OBJECT_POSE_COSTS[name]
    default = DEFAULT_COSTS[name]
    if default.endswith("+agent"):
        from uva_plan.proprio import places_agent

        if not goal_states or (model is not None and not places_agent(model)):
            return IMAGE_ONLY_COSTS[name]
    return default


def _short_env(name: str) -> str:
    """'wall' or 'pusht' for a short name or gymnasium id (an unknown one is an error, never a fallback)."""
    from uva_plan.envs import env_name

    return env_name(name)


def population_for(settings: PlanSettings, cost_name: str | None = None) -> tuple[int, int]:
    """``(samples, iters)``: the settings' own, or the measured population of the goal cost applied."""
    samples, iters = POPULATIONS.get(cost_name, DEFAULT_POPULATION)
    return (settings.samples if settings.samples is not None else samples,
            settings.iters if settings.iters is not None else iters)


def make_planner(settings: PlanSettings, prior_fraction: float, cost_name: str | None = None):
    """The planner named in the settings, at the settings' population and iteration count (or those
    measured for ``cost_name``, ``population_for``)."""
    from planners import CEM, CMAES, ICEM, MPPI, GradientPlanner, RandomShooting

    n, it = population_for(settings, cost_name)
    elites = max(2, n // 8)
    builders = {  # one entry per PLANNER_NAMES: an unknown name is an error, never a silent fallback
        "cem": lambda: CEM(population=n, n_elites=elites, iterations=it, prior_fraction=prior_fraction),
        "icem": lambda: ICEM(population=n, n_elites=elites, iterations=it, prior_fraction=prior_fraction),
        "mppi": lambda: MPPI(population=n, iterations=it, prior_fraction=prior_fraction),
        "cmaes": lambda: CMAES(population=n, iterations=it, prior_fraction=prior_fraction),
        "gradient": lambda: GradientPlanner(n_starts=max(1, n // 16), iterations=it, prior_fraction=prior_fraction),
        "random": lambda: RandomShooting(population=n, iterations=it, prior_fraction=prior_fraction),
    }
    if settings.planner not in builders:
        raise UserInputError(f"unknown planner {settings.planner!r}; expected one of {', '.join(builders)}")
    return builders[settings.planner]()
