"""Goal-image planning evaluation: the methods, the episode loop and the results.

Every method is run on the SAME goals with the SAME env-step budget, episodes side by side (one
planner call covers all of a batch's problems). Success is judged from the true env state after the
episode only: nothing in the loop looks at it (REFERENCE section 2: early stopping on true success
inflates figures).

Methods (``METHODS``):
- ``random``: uniform random actions (lower bound);
- ``greedy``: the agent straight at the goal's agent position, ignoring obstacles (Wall) and the block (PushT);
- ``policy``: UVA's goal-conditioned policy alone, re-queried every ``execute`` steps;
- ``planner``: MPC with UVA forward dynamics + goal cost, no policy prior;
- ``planner+prior``: the same with a fraction of each population drawn from the policy head;
- ``oracle-image``: the same planner with the true simulator as the world model and the SAME goal cost
  (separates cost error from model error);
- ``oracle-state``: the true simulator and the true state distance (the upper bound).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from uva_plan.env_batch import EnvBatch
from uva_plan.errors import UserInputError
from uva_plan.goal_costs import make_cost
from uva_plan.plan_settings import (  # noqa: F401  (PLANNER_NAMES, make_planner re-exported)
    PLANNER_NAMES,
    PlanSettings,
    batch_seed,
    cost_for,
    execute_for,
    hold_weight_for,
    make_planner,
    model_generator,
    passes_for,
    prior_weight_for,
)

METHODS = ("random", "greedy", "policy", "planner", "planner+prior", "oracle-image", "oracle-state")


def _goal_states(goals) -> np.ndarray | None:
    """``[G, D]`` the goals' own states, or None when one has none (a user's picture)."""
    if not all(g.goal_state is not None and len(g.goal_state) for g in goals):
        return None
    return np.stack([np.asarray(g.goal_state, dtype=np.float32) for g in goals])


@dataclass
class EpisodeRow:
    goal_index: int
    success: bool | None
    final_distance: float | None
    seconds_per_replan: float
    objective_calls: int
    final_latent_distance: float
    final_pixel_distance: float
    coverage: float | None = None
    # Within the success criterion at ANY step (judged afterwards, never used to stop the episode):
    # above `success` when the method passes the goal but does not stay there.
    reached: bool | None = None


@dataclass
class MethodResult:
    method: str
    rows: list[EpisodeRow] = field(default_factory=list)

    def summary(self) -> dict:
        def mean(key):
            vals = [getattr(r, key) for r in self.rows if getattr(r, key) is not None]
            return float(np.mean(vals)) if vals else None

        success = [r.success for r in self.rows if r.success is not None]
        return {
            "success_rate": float(np.mean(success)) if success else None,
            "mean_final_distance": mean("final_distance"),
            "seconds_per_replan": mean("seconds_per_replan"),
            "objective_calls": mean("objective_calls"),
            "final_latent_distance": mean("final_latent_distance"),
            "final_pixel_distance": mean("final_pixel_distance"),
            "coverage": mean("coverage"),
            "reached_rate": mean("reached"),
            "episodes": [asdict(r) for r in self.rows],
        }


@dataclass
class EpisodeTrace:
    """What a GIF and a cost plot need of one batch: frames, imagined plans and planner statistics."""

    imagined: list[list[tuple[int, np.ndarray]]]  # per episode: (replan step, imagined frames [F, H, W, 3])
    cost_stats: list[dict]  # per replan of episode 0: {"best": [...], "mean": [...]}


class Evaluator:
    """Runs methods on goals for one model and env. ``model`` may be None for model-free methods
    (random, greedy, oracle-state)."""

    def __init__(self, model, env_name: str, settings: PlanSettings, image_size: int = 64):
        self.model = model
        self.env_name = env_name
        self.settings = settings
        self.image_size = image_size
        if model is not None:
            settings.validate(model.config.chunk_len, env_name)
            self.n_history = model.config.n_history
            self.frame_stride = model.config.frame_stride
        else:  # no model (the simulator oracles): the world model's default window, not numbers of our own
            from dataclasses import fields

            from world_model.config import UVAConfig

            defaults = {f.name: f.default for f in fields(UVAConfig)}
            self.n_history, self.frame_stride = defaults["n_history"], defaults["frame_stride"]
            settings.validate(1, env_name)  # every knob but the horizon's multiple, which needs the model's chunk
        self.cost_name = cost_for(settings, env_name, model)
        self.cost = make_cost(self.cost_name)
        if self.cost.needs_block and model is not None:
            from uva_plan.proprio import places_object

            if not places_object(model):
                raise UserInputError(f"the {self.cost_name} cost reads the pose the world model predicts for the pushed "
                                     "object; expected a model trained with --proprio --object-pose")
        if self.cost.needs_subgoal_poses:
            raise UserInputError(f"the {self.cost_name} cost follows a video's poses step by step; expected a goal "
                                 f"cost here (it tracks videos: `uva-plan imitate --mode track --track-cost "
                                 f"{self.cost_name}`)")
        if self.cost.needs_steps and model is not None and not model.config.proprio_object_stepwise:
            raise UserInputError(f"the {self.cost_name} cost reads the poses after every env step, which this world "
                                 "model does not roll out; expected a model trained with --model-option "
                                 "proprio_object_stepwise=true (or --cost predicted_pose_sum)")
        self._cost_with_states = self.cost_name  # what applies to goals that carry their state

    # ----------------------------------------------------------------------------------- helpers
    def _generator(self, offset: int) -> torch.Generator:
        return model_generator(self.settings.seed, offset)

    def _goal_frames(self, goals) -> np.ndarray:
        from uva_plan.envs import make_env

        env = make_env(self.env_name, image_size=self.image_size)
        env.reset(seed=0)
        return np.stack([env.render_state(np.asarray(g.goal_state)) for g in goals])

    def _judge(self, batch: EnvBatch, goals, goal_frames: np.ndarray, seconds: float, calls: int,
               start_index: int) -> list[EpisodeRow]:
        """Success and distances from the true state, after the episode."""
        states = batch.states()
        final = batch.current_frames()
        pixel = ((final.astype(np.float32) - goal_frames.astype(np.float32)) / 255.0) ** 2
        pixel = pixel.reshape(len(final), -1).mean(1)
        if self.model is not None:
            with torch.no_grad():
                z = self.model.encode(torch.from_numpy(np.stack([final, goal_frames], axis=1)))
            latent = (z[:, 0] - z[:, 1]).pow(2).flatten(1).mean(1).numpy()
        else:
            latent = np.full(len(final), np.nan)
        env = batch.envs[0]
        rows = []
        for b, g in enumerate(goals):
            goal_state = None if g.goal_state is None else np.asarray(g.goal_state)
            rows.append(EpisodeRow(
                goal_index=start_index + b,
                success=None if goal_state is None else bool(env.is_success(states[b], goal_state)),
                final_distance=None if goal_state is None else float(env.state_distance(states[b], goal_state)),
                seconds_per_replan=seconds,
                objective_calls=calls,
                final_latent_distance=float(latent[b]),
                final_pixel_distance=float(pixel[b]),
                coverage=float(env.coverage(states[b])) if hasattr(env, "coverage") else None,
                reached=None if goal_state is None else any(env.is_success(v, goal_state) for v in batch.state_log[b]),
            ))
        return rows

    # ------------------------------------------------------------------------------ the methods
    def run(self, method: str, goals: Sequence, goal_frames: np.ndarray | None = None,
            on_batch: Callable[[int, EnvBatch, EpisodeTrace | None], None] | None = None,
            progress: Callable[[int], None] | None = None) -> MethodResult:
        """Run one method on all goals. ``goals`` are ``GoalPair``-like objects (``start_state``,
        ``goal_state`` or None when the goal is a user's picture); ``goal_frames [G, S, S, 3]``
        overrides the rendered goal images. ``on_batch(first_index, batch, trace)`` sees each finished
        batch (GIFs); ``progress(n)`` is told how many episodes just finished."""
        if method not in METHODS:
            raise UserInputError(f"unknown method {method!r}; expected one of {', '.join(METHODS)}")
        if self.model is None and method in ("policy", "planner", "planner+prior", "oracle-image"):
            raise UserInputError(f"method {method!r} needs a world-model checkpoint")
        if method == "oracle-image" and self.cost.needs_subgoals:
            raise UserInputError(f"the {self.cost_name} cost compares plans with the way the model imagines, which "
                                 "the simulator oracle does not imagine; expected another --cost for oracle-image")
        # a user's picture has no state, so no agent position at the goal: the env's image-only default;
        # decided per run, so an earlier run on pictures does not change a later one on protocol goals
        name = (self._cost_with_states if _goal_states(goals) is not None
                else cost_for(self.settings, self.env_name, self.model, goal_states=False))
        if name != self.cost_name:
            self.cost_name, self.cost = name, make_cost(name)
        if goal_frames is None:
            goal_frames = self._goal_frames(goals)
        result = MethodResult(method)
        step = self.settings.batch_episodes
        for first in range(0, len(goals), step):
            chunk = goals[first:first + step]
            frames = goal_frames[first:first + step]
            batch = EnvBatch(self.env_name, [g.start_state for g in chunk], image_size=self.image_size)
            seconds, calls, trace = self._run_batch(method, batch, chunk, frames, first)
            result.rows.extend(self._judge(batch, chunk, frames, seconds, calls, first))
            if on_batch is not None:
                on_batch(first, batch, trace)
            if progress is not None:
                progress(len(chunk))
        return result

    def _run_batch(self, method, batch: EnvBatch, goals, goal_frames, first):
        s = self.settings
        if method in ("random", "greedy", "policy"):
            return self._run_reactive(method, batch, goals, goal_frames, first)
        from planners import run_mpc

        prior = s.prior_fraction if method == "planner+prior" else 0.0
        # the population and the price of moving follow the cost that scores: the state oracle's own
        # distance, or the goal cost
        scoring = "state" if method == "oracle-state" else self.cost_name
        planner = make_planner(s, prior, scoring)
        hold_weight = hold_weight_for(s, scoring)
        goal_tensor = torch.from_numpy(np.ascontiguousarray(goal_frames))
        gen = self._generator(first)
        env = batch.envs[0]
        goal_states = _goal_states(goals)  # the agent cost reads the agent's goal position from them
        encoded: dict = {}  # the batch's goal latents (encoded once) and this replan's EncodedProblems
        drawn: dict = {}  # env step -> the policy's own plan at that replan (the anchor of --prior-weight)
        calls = [0]
        imagined: list[list[tuple[int, np.ndarray]]] = [[] for _ in goals]
        cost_stats: list[dict] = []
        objectives = []

        def make_objective():
            if method.startswith("oracle"):
                from uva_plan.simulator_objective import SimulatorObjective

                cost = "state" if method == "oracle-state" else self.cost
                goal_latents = None if cost == "state" else replan_problems().goal
                obj = SimulatorObjective(self.env_name, batch.states(), [g.goal_state for g in goals], cost=cost,
                                         frame_stride=self.frame_stride, model=self.model,
                                         goal_latents=goal_latents, image_size=self.image_size, goal_images=goal_frames)
            else:
                from uva_plan.objective import UVAObjective

                obj = UVAObjective(self.model, None, None, self.cost, num_steps=s.denoise_steps,
                                   model_samples=s.model_samples, num_iters=passes_for(s, self.env_name), generator=gen,
                                   encoded=replan_problems())
            from uva_plan.objective import PolicyAnchoredObjective

            weight = prior_weight_for(s, self.env_name)
            if prior > 0.0 and weight > 0.0:
                obj = PolicyAnchoredObjective(obj, policy_plan, env.action_low, env.action_high, weight)
            if hold_weight > 0.0:
                obj = PolicyAnchoredObjective(obj, hold_plan(), env.action_low, env.action_high, hold_weight)
            objectives.append(obj)
            return obj

        def make_proposals():
            from uva_plan.objective import PolicyProposals

            sampler = PolicyProposals(self.model, None, None, num_steps=s.denoise_steps, generator=gen,
                                      first_temperature=s.policy_temperature, encoded=replan_problems())

            def draw(b, m):
                out = sampler(b, m, s.horizon)
                drawn.setdefault(batch.steps, out[:, 0])  # the first proposal is the policy's own plan
                return out
            return draw

        def hold_plan():
            """This replan's plan of holding the agent still, ``[B, H, A]``."""
            from uva_plan.envs import hold_actions

            hold = torch.as_tensor(hold_actions(self.env_name, batch.states()), dtype=torch.float32)
            return hold[:, None].expand(len(goals), s.horizon, hold.shape[-1])

        def policy_plan():
            """This replan's policy plan: the first proposal the planner drew, or one drawn now."""
            if batch.steps not in drawn:
                make_proposals()(len(goals), 1)
            return drawn[batch.steps]

        def replan_problems():
            """This replan's history latents beside the batch's goal latents, encoded once each."""
            from uva_plan.objective import encode_problems

            if encoded.get("step") != batch.steps:
                problems = encode_problems(self.model, batch.history(self.n_history, self.frame_stride), goal_tensor,
                                           goal_latents=encoded.get("goal"),
                                           history_states=batch.history_states(self.n_history, self.frame_stride),
                                           goal_states=goal_states)
                encoded.update(step=batch.steps, goal=problems.goal, problems=problems)
            return encoded["problems"]

        def proposals_fn():
            return make_proposals() if prior > 0.0 else None

        def on_replan(i, result):
            calls[0] += result.n_calls
            cost_stats.append({"best": result.history.best[:, 0].tolist(), "mean": result.history.mean[:, 0].tolist()})
            obj = objectives[-1]
            if hasattr(obj, "imagine"):
                with torch.no_grad():
                    frames = obj.imagine(result.actions).numpy()
                for b in range(len(goals)):
                    imagined[b].append((batch.steps, frames[b]))

        first_init = None
        if s.first_plan == "hold":  # the agent's own state only (PushT: its position), never the block's
            from uva_plan.envs import hold_actions

            hold = torch.as_tensor(hold_actions(self.env_name, batch.states()), dtype=torch.float32)
            centre = torch.as_tensor((env.action_low + env.action_high) / 2, dtype=torch.float32)
            if not torch.allclose(hold, centre.expand_as(hold)):  # the Wall's hold IS the centre: the planner's own start
                first_init = hold[:, None].expand(len(goals), s.horizon, hold.shape[-1]).contiguous()
        t0 = time.perf_counter()
        out = run_mpc(
            planner, make_objective, batch.step, batch_size=len(goals), horizon=s.horizon,
            action_dim=len(env.action_low), low=torch.as_tensor(env.action_low), high=torch.as_tensor(env.action_high),
            n_execute=execute_for(s, self.env_name), budget_steps=s.budget_steps, proposals_fn=proposals_fn,
            seed=batch_seed(s.seed, first), on_replan=on_replan, time_budget=s.time_budget, init=first_init,
        )
        seconds = (time.perf_counter() - t0) / max(out.n_replans, 1)
        return seconds, calls[0], EpisodeTrace(imagined, cost_stats)

    def _run_reactive(self, method, batch: EnvBatch, goals, goal_frames, first):
        s = self.settings
        if method == "policy":
            from uva_plan.policy_rollout import drive_with_policy

            seconds = drive_with_policy(self.model, batch, goal_frames, budget_steps=s.budget_steps, execute=execute_for(s, self.env_name),
                                           denoise_steps=s.denoise_steps, temperature=s.policy_temperature,
                                           generator=self._generator(first), goal_states=_goal_states(goals))
            return seconds, 0, None
        env = batch.envs[0]
        rng = np.random.default_rng(batch_seed(s.seed, first))
        controllers = None
        if method == "greedy":
            from uva_plan.envs.policies import make_policy

            controllers = []
            for i, g in enumerate(goals):
                pol = make_policy(self.env_name, "greedy", seed=s.seed + first + i)
                pol.reset(np.asarray(g.start_state), goal_state=np.asarray(g.goal_state))
                controllers.append(pol)
        replans, t_total = 0, 0.0
        while batch.steps < s.budget_steps:  # the time counts the choosing of actions, not the env's steps
            n = min(execute_for(s, self.env_name), s.budget_steps - batch.steps)
            if method == "greedy":
                # Re-aimed every step: the greedy controller is cheap and reactive by design.
                for _ in range(n):
                    t0 = time.perf_counter()
                    acts = np.stack([pol(e.get_state()) for pol, e in zip(controllers, batch.envs)])[:, None]
                    t_total += time.perf_counter() - t0
                    batch.step(acts)
            else:
                t0 = time.perf_counter()
                acts = rng.uniform(env.action_low, env.action_high, size=(len(goals), n, len(env.action_low)))
                t_total += time.perf_counter() - t0
                batch.step(acts)
            replans += 1
        return t_total / max(replans, 1), 0, None
