"""UVA's goal-conditioned policy driving episodes on its own, re-queried every few steps: the planning
evaluation's ``policy`` method and behaviour cloning's closed-loop judge run this one loop, so the two
are measured alike."""

from __future__ import annotations

import time

import numpy as np
import torch

from uva_plan.env_batch import EnvBatch
from uva_plan.proprio import goal_proprio, history_proprio


def drive_with_policy(model, batch: EnvBatch, goal_frames: np.ndarray, *, budget_steps: int, execute: int,
                      denoise_steps: int, temperature: float, generator: torch.Generator, goal_states=None) -> float:
    """Step ``batch`` towards ``goal_frames [B, S, S, 3]`` uint8 until ``budget_steps`` env steps, each
    replan executing the first ``execute`` actions of one policy chunk. The goals are encoded once.
    A policy that reads proprio (``proprio_context``) is told the agent's own state at each replan (the
    robot knows it) and, where ``goal_states [B, D]`` are given, the goal's (a goal picture has none).
    Returns the mean seconds per replan (the policy's time, not the env's)."""
    cfg = model.config
    with torch.no_grad():
        goal_latents = model.encode(torch.from_numpy(np.ascontiguousarray(goal_frames)))
    # only a policy that reads proprio (proprio_context) is told it
    told = bool(getattr(cfg, "proprio_context", False))
    goal_p = goal_proprio(model, goal_states) if told and goal_states is not None else None
    replans, seconds = 0, 0.0
    while batch.steps < budget_steps:
        n = min(execute, budget_steps - batch.steps)
        t0 = time.perf_counter()
        with torch.no_grad():
            chunk = model.policy(batch.history(cfg.n_history, cfg.frame_stride), goal_latents=goal_latents,
                                 num_samples=1, num_steps=denoise_steps, temperature=temperature, generator=generator,
                                 history_proprio=(history_proprio(model, batch.history_states(cfg.n_history, cfg.frame_stride))
                                                  if told else None),
                                 goal_proprio=goal_p)
        seconds += time.perf_counter() - t0
        replans += 1
        batch.step(chunk[:, 0, :n].numpy())
    return seconds / max(replans, 1)
