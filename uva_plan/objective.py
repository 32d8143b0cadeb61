"""UVA as a planner's world model: the objective that imagines and scores candidate action sequences,
and the proposal sampler that draws candidates from the goal-conditioned policy head.

Planners only see ``objective(actions [B, N, H, A]) -> costs [B, N]`` and
``proposals(B, M) -> [B, M, H, A]``; everything UVA-specific stays here.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from uva_plan.errors import UserInputError
from uva_plan.goal_costs import GoalCost, Trajectory
from uva_plan.proprio import agent_of_proprio, history_proprio, object_of_proprio, uses_proprio
from uva_plan.proprio import goal_proprio as goal_proprio_of


def _check_history_and_goal(model, history: torch.Tensor, goal: torch.Tensor) -> None:
    cfg = model.config
    s = cfg.image_size
    if history.ndim != 5 or tuple(history.shape[1:]) != (cfg.n_history, s, s, 3):
        raise UserInputError(
            f"history has shape {tuple(history.shape)}; expected [B, {cfg.n_history}, {s}, {s}, 3] "
            f"({cfg.n_history} history frames of {s}x{s} RGB)"
        )
    if goal.ndim != 4 or tuple(goal.shape[1:]) != (s, s, 3) or goal.shape[0] != history.shape[0]:
        raise UserInputError(
            f"goal has shape {tuple(goal.shape)}; expected [{history.shape[0]}, {s}, {s}, 3] (one goal image per problem)"
        )


@dataclass
class EncodedProblems:
    """History latents ``[B, Th, h, w, c]`` and goal latents ``[B, h, w, c]`` of B planning problems:
    encoded once (the goals once per episode batch, the histories once per replan) and shared by the
    objective, the policy proposals and the policy anchor of a replan. ``proprio [B, Th, P]``: the
    history's proprioception, for a model trained with it (else None)."""

    history: torch.Tensor
    goal: torch.Tensor
    proprio: torch.Tensor | None = None
    goal_agent: torch.Tensor | None = None  # [B, 2] the agent's goal position, a fraction of the frame
    goal_proprio: torch.Tensor | None = None  # [B, P] env units: the goal's proprio, for the policy's context
    goal_block: torch.Tensor | None = None  # [B, 3] the pushed object's goal pose (object-pose models)


def encode_problems(model, history: torch.Tensor, goal: torch.Tensor | None = None,
                    goal_latents: torch.Tensor | None = None, history_states=None,
                    goal_states=None) -> EncodedProblems:
    """Check and encode ``history [B, Th, H, W, 3]`` and ``goal [B, H, W, 3]`` (or reuse ``goal_latents``).
    ``history_states [B, Th, D]``: the env states at the history frames, required by a model trained
    with proprioception (``uva-plan train --proprio``); ``goal_states [B, D]``: the goals' states, whose
    agent position the agent cost reads (DINO-WM's goals carry their proprio the same way)."""
    if goal_latents is None:
        _check_history_and_goal(model, history, goal)
        goal_latents = model.encode(goal.unsqueeze(1))[:, 0]
    elif goal_latents.shape[0] != history.shape[0]:
        raise UserInputError(f"{goal_latents.shape[0]} goal latents for {history.shape[0]} histories; expected one per problem")
    proprio = goal_agent = goal_proprio = goal_block = None
    if uses_proprio(model):
        if history_states is None:
            raise UserInputError("this world model was trained with proprioception (--proprio); expected the history's "
                                 "env states beside its frames: encode_problems(model, history, goal, history_states="
                                 "[B, Th, D]) and pass encoded= to UVAObjective / PolicyProposals")
        proprio = history_proprio(model, history_states).to(model.device)
        if proprio.shape[0] != history.shape[0]:
            raise UserInputError(f"{proprio.shape[0]} history states for {history.shape[0]} histories; expected one per problem")
        if goal_states is not None:  # a goal's state read as a one-frame history
            goal_proprio = goal_proprio_of(model, goal_states).to(model.device)
            goal_agent = agent_of_proprio(model, goal_proprio)
            goal_block = object_of_proprio(model, goal_proprio)
    return EncodedProblems(model.encode(history), goal_latents, proprio, goal_agent, goal_proprio, goal_block)


class UVAObjective:
    """Scores candidate action sequences by imagining their rollouts with UVA's forward-dynamics mode.

    One call covers all ``B`` problems and ``N`` candidates; the rollouts are batched through the model
    in slices of ``max_batch`` sequences to bound memory. ``model_samples > 1`` scores each candidate
    several times with fresh model noise and averages (NWM's remedy for a stochastic model). A cost that
needs subgoals gets ``subgoals`` or, when none are given, the way the goal-conditioned video predictor
imagines from this history (``imagine_subgoals``, on the first call).

    history: ``[B, Th, H, W, 3]`` uint8 frames; goal: ``[B, H, W, 3]`` uint8 goal images; or both None
    and ``encoded`` their latents (``encode_problems``). ``history_states [B, Th, D]`` / ``goal_states
    [B, D]``: the env states there, which a model trained with proprioception needs (``encode_problems``).
    ``subgoal_poses``: ``(agent [B, L, 2], block [B, L, 3])``, where a tracked video shows the agent (a
    fraction of the frame) and the block (env units, radians) after each of the plan's L env steps, for a
    cost that follows them (``subgoal_pose_steps``).
    """

    def __init__(
        self,
        model,
        history: torch.Tensor | None,
        goal: torch.Tensor | None,
        cost: GoalCost,
        *,
        num_steps: int | None = None,
        model_samples: int = 1,
        num_iters: int = 1,
        subgoals: torch.Tensor | None = None,
        max_batch: int = 1024,
        generator: torch.Generator | None = None,
        encoded: EncodedProblems | None = None,
        history_states=None,
        goal_states=None,
        subgoal_poses: tuple[torch.Tensor, torch.Tensor] | None = None,
    ):
        if cost.needs_subgoal_poses and (subgoal_poses is None or len(subgoal_poses) != 2):
            raise UserInputError(f"the {cost.name} cost follows a tracked video's poses at every step; expected "
                                 "subgoal_poses=(agent [B, L, 2], block [B, L, 3])")
        encoded = encoded or encode_problems(model, history, goal, history_states=history_states, goal_states=goal_states)
        if model_samples < 1:
            raise UserInputError(f"model_samples must be >= 1, got {model_samples}")
        self.model = model
        self.cost = cost
        if isinstance(num_iters, bool) or not isinstance(num_iters, int) or num_iters < 1:
            raise UserInputError(f"num_iters (MAR passes) is {num_iters!r}; expected an integer >= 1")
        self.num_steps = num_steps
        self.model_samples = model_samples
        self.num_iters = num_iters
        self.max_batch = max_batch
        self.generator = generator
        self.history_latents = encoded.history
        self.history_proprio = encoded.proprio
        self.goal_latents = encoded.goal
        self.goal_agent = encoded.goal_agent
        self.goal_block = encoded.goal_block
        self.subgoals = subgoals
        self.subgoal_poses = subgoal_poses if cost.needs_subgoal_poses else None
        # a cost that reads objects from pixels sees the goal (or the subgoals it tracks, decoded at the first
        # call) through the same decoder as the imagined frames
        self.goal_frames = model.decode(self.goal_latents) if cost.needs_frames and not cost.needs_subgoals else None
        self._subgoal_frames = None
        self.n_calls = 0

    def __call__(self, actions: torch.Tensor) -> torch.Tensor:
        """``actions [B, N, H, A]`` in env units -> costs ``[B, N]``."""
        b, n, h, a = actions.shape
        if b != self.history_latents.shape[0]:
            raise UserInputError(f"actions cover {b} problems; this objective was built for {self.history_latents.shape[0]}")
        self.n_calls += 1
        if self.cost.needs_subgoals and (self.subgoals is None or self.subgoals.shape[1] * self.model.config.frame_stride < h):
            # not given: the way the video predictor imagines from the latents encoded above, once per replan
            self.subgoals = imagine_subgoals(self.model, self.history_latents, self.goal_latents, h,
                                             num_steps=self.num_steps, generator=self.generator)
            self._subgoal_frames = None
        if self.cost.needs_frames and self.cost.needs_subgoals and self._subgoal_frames is None:
            self._subgoal_frames = self.model.decode(self.subgoals)  # once per objective
        flat = actions.reshape(b * n, h, a)
        index = torch.arange(b, device=flat.device).repeat_interleave(n)
        total = torch.zeros(b * n, dtype=torch.float32)
        for _ in range(self.model_samples):
            total += self._score(flat, index)
        return (total / self.model_samples).reshape(b, n)

    def _score(self, flat: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        out = []
        for start in range(0, flat.shape[0], self.max_batch):
            sl = slice(start, start + self.max_batch)
            idx = index[sl]
            result = self.model.forward_dynamics(
                history_latents=self.history_latents[idx],
                history_proprio=None if self.history_proprio is None else self.history_proprio[idx],
                actions=flat[sl],
                goal_latents=self.goal_latents[idx],
                sample_latents=self.cost.needs_latents or self.cost.needs_subgoals,
                decode=self.cost.needs_frames,
                distance_heads=self.cost.distance_heads if self.cost.needs_distance else (),
                num_steps=self.num_steps,
                num_iters=self.num_iters,
                generator=self.generator,
            )
            traj = Trajectory(
                latents=result.latents,
                goal=self.goal_latents[idx],
                distance=result.distance,
                latent_distance=result.latent_distance,
                subgoals=None if self.subgoals is None else self.subgoals[idx],
                agent=agent_of_proprio(self.model, result.proprio),
                goal_agent=None if self.goal_agent is None else self.goal_agent[idx],
                block=object_of_proprio(self.model, result.proprio),
                goal_block=None if self.goal_block is None else self.goal_block[idx],
                agent_steps=agent_of_proprio(self.model, result.proprio_steps),
                block_steps=object_of_proprio(self.model, result.proprio_steps),
                frames=result.frames,
                goal_frames=None if self.goal_frames is None else self.goal_frames[idx],
                subgoal_frames=None if self._subgoal_frames is None else self._subgoal_frames[idx],
                subgoal_agent_steps=None if self.subgoal_poses is None else self.subgoal_poses[0][idx],
                subgoal_block_steps=None if self.subgoal_poses is None else self.subgoal_poses[1][idx],
            )
            out.append(self.cost(traj).float().cpu())
        return torch.cat(out)

    def imagine(self, actions: torch.Tensor) -> torch.Tensor:
        """Decoded imagined frames of one plan per problem: ``[B, H, A] -> [B, T, H, W, 3]`` uint8,
        for visualising what the planner believed would happen."""
        result = self.model.forward_dynamics(
            history_latents=self.history_latents,
            history_proprio=self.history_proprio,
            actions=actions,
            goal_latents=self.goal_latents,
            decode=True,
            distance_heads=(),  # only the frames are shown
            num_steps=self.num_steps,
            num_iters=self.num_iters,
            generator=self.generator,
        )
        return (result.frames.clamp(0, 1) * 255).round().to(torch.uint8)


class PolicyProposals:
    """Candidate action sequences from UVA's goal-conditioned policy head: the planner's prior.

    For a horizon of several chunks the policy is applied chunk by chunk on histories imagined by the
    forward-dynamics mode, so every proposal is a whole ``[H, A]`` sequence.
    history: ``[B, Th, H, W, 3]`` uint8; goal: ``[B, H, W, 3]`` uint8 (or both None and ``encoded``). ``first_temperature``: the first
    proposal of each problem is sampled at this temperature (0: the policy's own deterministic choice, so
    the planner always sees it), the rest at the checkpoint's (spread). ``history_states`` / ``goal_states``:
    as ``UVAObjective``.
    """

    def __init__(self, model, history: torch.Tensor | None, goal: torch.Tensor | None, *, num_steps: int | None = None,
                 generator: torch.Generator | None = None, first_temperature: float | None = None,
                 encoded: EncodedProblems | None = None, history_states=None, goal_states=None):
        encoded = encoded or encode_problems(model, history, goal, history_states=history_states, goal_states=goal_states)
        self.model = model
        self.history_latents = encoded.history
        self.history_proprio = encoded.proprio
        self.goal_proprio = encoded.goal_proprio
        self.goal_latents = encoded.goal
        self.num_steps = num_steps
        self.generator = generator
        self.first_temperature = first_temperature

    def __call__(self, batch_size: int, num: int, horizon: int | None = None) -> torch.Tensor:
        """``-> [B, num, horizon, A]`` in env units (horizon defaults to one chunk)."""
        chunk = self.model.config.chunk_len
        horizon = horizon or chunk
        if horizon % chunk:
            raise UserInputError(f"proposal horizon {horizon} must be a multiple of the model's chunk length {chunk}")
        if batch_size != self.history_latents.shape[0]:
            raise UserInputError(f"asked for proposals for {batch_size} problems; built for {self.history_latents.shape[0]}")
        b = batch_size
        hist = self.history_latents.repeat_interleave(num, dim=0)
        hist_p = None if self.history_proprio is None else self.history_proprio.to(hist.device).repeat_interleave(num, dim=0)
        goal = self.goal_latents.repeat_interleave(num, dim=0)
        goal_p = None if self.goal_proprio is None else self.goal_proprio.to(hist.device).repeat_interleave(num, dim=0)
        chunks = []
        first = torch.zeros(b * num, dtype=torch.bool, device=hist.device)
        if self.first_temperature is not None:
            first[::num] = True
        for k in range(horizon // chunk):
            acts = torch.empty(b * num, chunk, self.model.config.action_dim, device=hist.device)
            for rows, temperature in ((~first, None), (first, self.first_temperature)):
                if rows.any():
                    acts[rows] = self.model.policy(history_latents=hist[rows], goal_latents=goal[rows], num_samples=1,
                                                   num_steps=self.num_steps, temperature=temperature,
                                                   generator=self.generator,
                                                   history_proprio=None if hist_p is None else hist_p[rows],
                                                   goal_proprio=None if goal_p is None else goal_p[rows])[:, 0]
            chunks.append(acts)
            if k + 1 < horizon // chunk:
                n_hist = self.model.config.n_history
                imagined = self.model.forward_dynamics(history_latents=hist, actions=acts, goal_latents=goal,
                                                       history_proprio=hist_p, num_steps=self.num_steps,
                                                       generator=self.generator)
                hist = imagined.latents[:, -n_hist:]
                if hist_p is not None:
                    hist_p = torch.cat([hist_p, imagined.proprio], dim=1)[:, -n_hist:]
        out = torch.cat(chunks, dim=1)
        return out.reshape(b, num, horizon, -1)


class PolicyAnchoredObjective:
    """A goal objective plus a price for leaving the policy's own plan ``anchor [B, H, A]``:
    ``cost + weight * mean(((actions - anchor) / (high - low))^2)`` over steps and action dimensions.

    Why: the world model imagines well what its data showed and badly what it did not (on the Wall, a
    full-speed push into the wall is imagined as the agent melting into it, which the goal cost reads
    as a shortcut), and the policy's plan is the best-known point of that data. The price lets the
    planner leave it only for a clearly better imagined future: a trust region around the prior."""

    def __init__(self, objective, anchor, low, high, weight: float):
        """``anchor``: the plan ``[B, H, A]``, or a function returning it at the first call (so a planner
        that draws the policy's proposals anyway can hand over their first one instead of a new pass)."""
        self.objective = objective
        self._anchor = anchor
        self.span = torch.as_tensor(high, dtype=torch.float32) - torch.as_tensor(low, dtype=torch.float32)
        self.weight = float(weight)

    @property
    def anchor(self) -> torch.Tensor:
        if callable(self._anchor):
            self._anchor = self._anchor()
        return self._anchor

    @property
    def n_calls(self) -> int:
        return self.objective.n_calls

    def __call__(self, actions: torch.Tensor) -> torch.Tensor:
        """``actions [B, N, H, A]`` -> costs ``[B, N]``."""
        leave = ((actions - self.anchor[:, None].to(actions)) / self.span.to(actions)).pow(2).mean(dim=(-1, -2))
        return self.objective(actions) + self.weight * leave.to(torch.float32).cpu()

    @property
    def imagine(self):
        """The wrapped objective's ``imagine(actions)``; an AttributeError (so ``hasattr`` says no) where it
        imagines nothing (the simulator's)."""
        return self.objective.imagine


def imagine_subgoals(model, history_latents: torch.Tensor, goal_latents: torch.Tensor, horizon: int, *,
                     num_steps: int | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """The way to the goal as the goal-conditioned video predictor imagines it, one frame per future frame
    time of a ``horizon``-step plan: history latents ``[B, Th, h, w, c]``, goal latents ``[B, h, w, c]`` ->
    latents ``[B, horizon // frame_stride, h, w, c]`` (what the ``subgoal`` cost compares plans with)."""
    chunk = model.config.chunk_len
    if horizon % chunk:
        raise UserInputError(f"subgoal horizon {horizon} must be a multiple of the model's chunk length {chunk}")
    hist = history_latents
    out = []
    for _ in range(horizon // chunk):
        fut = model.predict_video(history_latents=hist, goal_latents=goal_latents, num_steps=num_steps,
                                  generator=generator).latents
        out.append(fut)
        hist = fut[:, -model.config.n_history:]
    return torch.cat(out, dim=1)
