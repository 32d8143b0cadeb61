"""The true simulator as the planner's world model: the oracles of the evaluation.

Two oracles bracket the UVA planner (issue 5): with the SAME image cost as the UVA planner (true
frames, encoded by UVA's tokenizer and scored by the same goal cost) it separates cost error from model
error; with the true state distance (routed around the wall for Wall) it is the upper bound.
Candidates are replayed from each problem's current state by exact state restore.
"""

from __future__ import annotations

import numpy as np
import torch

from uva_plan.goal_costs import GoalCost, Trajectory, distances_of


class SimulatorObjective:
    """``objective(actions [B, N, H, A]) -> costs [B, N]`` from true rollouts.

    start_states: ``[B, D]`` current true states; goal_states: ``[B, D]``;
    cost: ``"state"`` (the true distance to the goal at each of the model's frame times, every
    ``frame_stride`` steps, summed; ``state_reduce="final"`` keeps the last one only) or a ``GoalCost``
    scored on the true frames at those times, which then needs ``model`` (its tokenizer) and the goals'
    latents ``goal_latents [B, h, w, c]`` (encoded once per batch of episodes by the caller). Why summed
    by default: on 16 Wall cross-room goals the oracle reached 56% (CEM) and 50% (iCEM) scoring the final
    state only, 81% and 100% scoring every frame time - the sum rewards getting there early and does not
    let a plan dawdle and arrive at the horizon's last step.
    """

    def __init__(self, env_name: str, start_states, goal_states, *, cost: str | GoalCost = "state",
                 frame_stride: int = 4, model=None, goal_latents: torch.Tensor | None = None, image_size: int = 64,
                 state_reduce: str = "sum", goal_images=None):
        if state_reduce not in ("sum", "final"):
            raise ValueError(f"state_reduce is {state_reduce!r}; expected 'sum' or 'final'")
        self.state_reduce = state_reduce
        from uva_plan.envs import make_env

        self.env = make_env(env_name, image_size=image_size)
        self.env.reset(seed=0)
        self.start_states = np.asarray(start_states, dtype=np.float64)
        self.goal_states = np.asarray(goal_states, dtype=np.float64)
        self.cost = cost
        self.frame_stride = frame_stride
        self.model = model
        self.n_calls = 0
        # the goal images the planner was given ([B, S, S, 3] uint8), for a cost that reads frames; None: rendered
        self._goal_image_cache = None if goal_images is None else torch.as_tensor(np.asarray(goal_images)).float().div(255.0)
        if isinstance(cost, GoalCost):
            if model is None or goal_latents is None:
                raise ValueError("an image cost needs the model (for its tokenizer) and the goals' latents")
            self.goal_latents = goal_latents
        self._distance = getattr(self.env, "routed_distance", self.env.state_distance)

    def _goal_images(self) -> torch.Tensor:
        """``[B, S, S, 3]`` float in [0, 1]: the goal images given, or else the goals rendered (once)."""
        if self._goal_image_cache is None:
            self._goal_image_cache = torch.from_numpy(
                np.stack([self.env.render_state(g) for g in self.goal_states])).float().div(255.0)
        return self._goal_image_cache

    def rollout(self, start_state, actions: np.ndarray, every_step: bool = False) -> list[np.ndarray]:
        """States after each ``frame_stride`` steps (``every_step``: after each step) of ``actions [H, A]``
        from ``start_state``."""
        self.env.set_state(start_state)
        advance = getattr(self.env, "step_state", self.env.step)  # dynamics only: no image per step
        steps = []
        for a in actions:
            advance(a)
            steps.append(self.env.get_state())
        return steps if every_step else self._at_frames(steps)

    def _at_frames(self, steps: list[np.ndarray]) -> list[np.ndarray]:
        """The states of an every-step rollout after each ``frame_stride`` steps and at its end."""
        return [x for t, x in enumerate(steps, start=1) if t % self.frame_stride == 0 or t == len(steps)]

    def __call__(self, actions: torch.Tensor) -> torch.Tensor:
        self.n_calls += 1
        acts = actions.detach().cpu().numpy()
        b, n = acts.shape[:2]
        if self.cost == "state":
            costs = np.empty((b, n))
            for i in range(b):
                for j in range(n):
                    states = self.rollout(self.start_states[i], acts[i, j])
                    if self.state_reduce == "final":
                        states = states[-1:]
                    costs[i, j] = sum(self._distance(x, self.goal_states[i]) for x in states)
            return torch.as_tensor(costs, dtype=torch.float32)
        every = [self.rollout(self.start_states[i], acts[i, j], every_step=True) for i in range(b) for j in range(n)]
        rollouts = [self._at_frames(steps) for steps in every]
        goal = self.goal_latents.repeat_interleave(n, dim=0)
        # a cost on poses alone (the true ones here) needs no frame rendered or encoded
        pictures = self.cost.needs_latents or self.cost.needs_distance or self.cost.needs_frames
        frames = latents = None
        distances = {}
        if pictures:
            frames = np.stack([np.stack([self.env.render_state(s) for s in states]) for states in rollouts])
            latents = self.model.encode(torch.from_numpy(frames))
            distances = distances_of(self.model, self.cost, latents, goal)
        agent = goal_agent = None
        if self.cost.needs_agent:  # the true agent positions, as a proprio model predicts them
            from uva_plan.proprio import agent_of_states

            agent = agent_of_states(self.env.name, np.stack([np.stack(states) for states in rollouts])).to(goal.device)
            goal_agent = agent_of_states(self.env.name, self.goal_states).repeat_interleave(n, dim=0).to(goal.device)
        block = goal_block = None
        if self.cost.needs_block:  # the true poses of the pushed object, as an object-pose model predicts them
            from uva_plan.proprio import object_of_states

            block = object_of_states(self.env.name, np.stack([np.stack(states) for states in rollouts])).to(goal.device)
            goal_block = object_of_states(self.env.name, self.goal_states).repeat_interleave(n, dim=0).to(goal.device)
        steps = {}
        if self.cost.needs_steps:  # the true poses after every step, as a stepwise object model predicts them
            from uva_plan.proprio import agent_of_states, object_of_states

            all_states = np.stack([np.stack(states) for states in every])
            steps = {"agent_steps": agent_of_states(self.env.name, all_states).to(goal.device),
                     "block_steps": object_of_states(self.env.name, all_states).to(goal.device)}
        seen = goal_seen = None
        if self.cost.needs_frames:  # the true frames themselves, and the goal image the planner is given
            seen = torch.from_numpy(frames).float().div(255.0).to(goal.device)
            goal_seen = self._goal_images().repeat_interleave(n, dim=0).to(goal.device)
        traj = Trajectory(latents=latents, goal=goal, agent=agent, goal_agent=goal_agent, block=block,
                          goal_block=goal_block, frames=seen,
                          goal_frames=goal_seen, **distances, **steps)
        return self.cost(traj).float().reshape(b, n).cpu()
