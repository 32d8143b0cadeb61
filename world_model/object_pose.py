"""An object's pose among the proprio: predicted in the object's own frame, drawn as a pose map.

Why: PushT's T turns where the agent meets it, and that contact looks the same wherever the T lies and
however it is turned. UVA's video head and the proprio MLP on board coordinates must learn it per place
and angle: the imagined T's angle was 18 degrees off at +16 steps (28 on pushes), worse than copying the
last frame. Seen from the T (the agent, the action targets and the T's own past rotated into its frame),
one push teaches every pose. `benchmarks/object_pose_probe.py` (the two MLPs alone, the world model's
budget, held-out pushes where the T turns): the T's position 8.6 units and angle 6.1 degrees off at +16
steps seen from the T, against 15.8 and 16.1 on board coordinates and 18.0 and 20.3 for copying the last
pose (README, "The block's pose").
"""

from __future__ import annotations

import math

import torch
from torch import nn

from world_model.errors import WorldModelError
from world_model.proprio import LinearStepFit, check_transitions, solve_linear_step


def wrap(angle: torch.Tensor) -> torch.Tensor:
    """Angles (radians) wrapped to [-pi, pi)."""
    return torch.remainder(angle + math.pi, 2.0 * math.pi) - math.pi


def to_frame(vec: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """Board vectors ``[..., 2]`` seen from a frame turned by ``angle`` (broadcast over ``vec[..., 0]``)."""
    c, s = torch.cos(angle), torch.sin(angle)
    return torch.stack([c * vec[..., 0] + s * vec[..., 1], -s * vec[..., 0] + c * vec[..., 1]], dim=-1)


def from_frame(vec: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """The inverse of ``to_frame``."""
    return to_frame(vec, -angle)


class ObjectPoseDynamics(nn.Module):
    """``(history proprio [B, Th, P] normalised, actions [B, L, A] normalised) -> the object's future pose
    [B, Tf, 3]`` normalised like the proprio: its (x, y) and angle at each future frame.

    ``pose``: the proprio indices of the object's x, y (image positions, normalised like the frame to
    [-1, 1]) and angle (radians once unnormalised by ``angle_low``/``angle_high``); ``body``: the two
    indices of the body that pushes it (``proprio_image_xy``), or empty; ``actions_xy``: whether the
    actions are image positions normalised like the frame (PushT's targets), which are then seen from
    the object too. ``cells``: frame-to-feature scale (half the latent grid's size: one unit = one cell).
    The MLP also reads the world-frame current proprio and the angle's cos / sin (where the board's
    edges are)."""

    body_in_cells = False  # its loss weighs the body's position as the rest of the proprio (normalised)

    def __init__(self, proprio_dim: int, pose: list[int], body: list[int], n_history: int, chunk_len: int,
                 action_dim: int, n_future: int, width: int, actions_xy: bool, angle_low: float, angle_high: float,
                 cells: float):
        super().__init__()
        self.pose, self.body, self.actions_xy = list(pose), list(body), actions_xy
        self.n_future, self.cells = n_future, cells
        self.angle_low, self.angle_high = angle_low, angle_high
        n_in = (n_history * 3 + (n_history * 2 if body else 0) + (chunk_len * 2 if actions_xy else chunk_len * action_dim)
                + proprio_dim + 2)
        self.net = nn.Sequential(nn.Linear(n_in, width), nn.SiLU(), nn.Linear(width, width), nn.SiLU(),
                                 nn.Linear(width, n_future * 3))
        nn.init.zeros_(self.net[-1].weight)  # it starts as "the object stays where it is"
        nn.init.zeros_(self.net[-1].bias)

    def angle(self, normalised: torch.Tensor) -> torch.Tensor:
        return self.angle_low + (normalised + 1.0) * 0.5 * (self.angle_high - self.angle_low)

    def normalised_angle(self, angle: torch.Tensor) -> torch.Tensor:
        return (angle - self.angle_low) / (self.angle_high - self.angle_low) * 2.0 - 1.0

    def forward(self, history: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        b = history.shape[0]
        xy = history[..., self.pose[:2]]  # [B, Th, 2]
        theta = self.angle(history[..., self.pose[2]])  # [B, Th]
        now_xy, now = xy[:, -1:], theta[:, -1:]  # [B, 1, 2], [B, 1]
        parts = [to_frame((xy - now_xy) * self.cells, now).flatten(1), wrap(theta - now)]
        if self.body:
            parts.append(to_frame((history[..., self.body] - now_xy) * self.cells, now).flatten(1))
        acts = actions.to(history.dtype)
        parts.append(to_frame((acts - now_xy) * self.cells, now).flatten(1) if self.actions_xy else acts.flatten(1))
        parts += [history[:, -1], torch.cos(now), torch.sin(now)]
        out = self.net(torch.cat(parts, dim=1)).reshape(b, self.n_future, 3)
        future_xy = now_xy + from_frame(out[..., :2], now) / self.cells
        future_angle = self.normalised_angle(now + out[..., 2])
        return torch.cat([future_xy, future_angle[..., None]], dim=-1)


def proprio_loss(predicted: torch.Tensor, target: torch.Tensor, dynamics: ObjectPoseDynamics) -> tuple[torch.Tensor, torch.Tensor]:
    """``(loss, the object's part)``: the mean squared error of normalised proprio ``[..., P]``, the object's
    pose compared in its MLP's own units, cells and radians (normalised, a radian would weigh 2.5x less
    than a cell on an 8-cell grid), the other entries as they are."""
    x, y, k = dynamics.pose
    rest = [i for i in range(predicted.shape[-1]) if i not in (x, y, k)]
    position = ((predicted[..., [x, y]] - target[..., [x, y]]) * dynamics.cells).pow(2).mean()
    angle = (dynamics.angle(predicted[..., k]) - dynamics.angle(target[..., k])).pow(2).mean()
    loss = (predicted[..., rest] - target[..., rest]).pow(2).mean()
    if dynamics.body_in_cells:  # the body it pushes with, in the object's units too
        loss = loss + ((predicted[..., dynamics.body] - target[..., dynamics.body]) * dynamics.cells).pow(2).mean()
    return loss + position + angle, position + angle


def pose_maps(xy: torch.Tensor, angle: torch.Tensor, size: int, sigma: float) -> torch.Tensor:
    """Object poses, ``xy [B, T, 2]`` in [-1, 1] and ``angle [B, T]`` radians -> ``[B, T*5, size, size]``
    maps on a ``size``-cell grid: a Gaussian bump of ``sigma`` cells at the object, the bump times each
    cell centre's (u, v) in the object's frame (cells), and the bump times the angle's cos and sin, so
    each cell is told which part of the object lies on it."""
    b, t, _ = xy.shape
    centres = (torch.arange(size, device=xy.device, dtype=xy.dtype) + 0.5) * (2.0 / size) - 1.0
    cy, cx = torch.meshgrid(centres, centres, indexing="ij")
    offset = (torch.stack([cx, cy], dim=-1)[None, None] - xy[:, :, None, None]) * (size / 2.0)  # [B, T, s, s, 2]
    bump = torch.exp(-offset.pow(2).sum(-1) / (2.0 * sigma**2))
    uv = to_frame(offset, angle[:, :, None, None])
    maps = [bump, uv[..., 0] * bump, uv[..., 1] * bump, torch.cos(angle)[:, :, None, None] * bump,
            torch.sin(angle)[:, :, None, None] * bump]
    return torch.stack(maps, dim=2).reshape(b, t * 5, size, size)


def unwrap_to(angles: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Angles ``[B, T]`` moved by whole turns to lie within half a turn of ``reference [B]`` (so a T that
    crosses 0 and 2 pi does not jump by a turn between frames)."""
    return reference[:, None] + wrap(angles - reference[:, None])


class StepwiseObjectDynamics(nn.Module):
    """The object's pose rolled out one env step at a time: ``(history proprio [B, Th, P], actions [B, L, A]),
    normalised -> future proprio [B, Tf, P]``, normalised, every ``stride``-th step of the chunk.

    Why: PushT's T moves only while the agent touches it and stops when the agent stops (a quasi-static
    push), so its change in one step is a function of where the agent is, and where it goes, seen from the
    T. A chunk MLP must learn that contact integrated over 16 steps at once; one step at a time it is the
    same small function each step. Two learned parts, applied ``chunk_len`` times:
    - the body (every proprio entry but the pose: PushT's agent position and velocity) follows its target
      by a linear map, ``body' = body + W [body, action]`` (a PD controller is linear);
    - the object moves by an MLP of the body's position now and next, and the action's target, in the
      object's frame (cells), which returns the move in that frame and the turn (radians).
    ``pose``, ``body``, ``actions_xy``, ``angle_low / high``, ``cells``: as ``ObjectPoseDynamics``.
    ``body_fitted``: the linear map is not trained by gradient but solved once from the data's consecutive
    states (``fit_body``): a PD-controlled body is exactly linear per step, which least squares finds to
    1e-5 while gradient through 16 steps leaves units of error (README, "The block's pose")."""

    body_in_cells = True  # the object's moves are read off the body's: its position weighs as much

    def __init__(self, proprio_dim: int, pose: list[int], body: list[int], chunk_len: int, action_dim: int,
                 stride: int, width: int, actions_xy: bool, angle_low: float, angle_high: float, cells: float,
                 body_fitted: bool = False):
        super().__init__()
        if not body:
            raise WorldModelError("a stepwise object model needs the pushing body's image position (proprio_image_xy)")
        self.pose, self.body, self.actions_xy = list(pose), list(body), actions_xy
        self.state = [i for i in range(proprio_dim) if i not in self.pose]  # what the linear map carries
        self.xy_in_state = [self.state.index(i) for i in self.body]
        self.chunk_len, self.stride, self.cells = chunk_len, stride, cells
        self.angle_low, self.angle_high = angle_low, angle_high
        self.body_step = nn.Linear(len(self.state) + action_dim, len(self.state))
        nn.init.zeros_(self.body_step.weight)  # it starts as "the body stays where it is"
        nn.init.zeros_(self.body_step.bias)
        self.body_step.requires_grad_(not body_fitted)
        self.net = nn.Sequential(nn.Linear(6 if actions_xy else (4 + action_dim), width), nn.SiLU(),
                                 nn.Linear(width, width), nn.SiLU(), nn.Linear(width, 3))
        nn.init.zeros_(self.net[-1].weight)  # it starts as "the object stays where it is"
        nn.init.zeros_(self.net[-1].bias)

    angle = ObjectPoseDynamics.angle
    normalised_angle = ObjectPoseDynamics.normalised_angle

    def fit_body(self, proprio: torch.Tensor, actions: torch.Tensor, next_proprio: torch.Tensor) -> LinearStepFit:
        """Solve the body's linear step by least squares from one-step transitions: ``proprio [N, P]``,
        ``actions [N, A]`` and ``next_proprio [N, P]``, normalised as the model sees them. Every transition
        counts (a PD body has no stops), so the residual says whether the body is linear per step."""
        check_transitions(proprio, actions, next_proprio)
        inputs = torch.cat([proprio[:, self.state], actions.to(proprio.dtype)], dim=1)
        return solve_linear_step(self.body_step, inputs, next_proprio[:, self.state] - proprio[:, self.state], trim=False)

    def forward(self, history: torch.Tensor, actions: torch.Tensor, every_step: bool = False) -> torch.Tensor:
        """``every_step``: the proprio after each env step ``[B, L, P]`` instead of every ``stride``-th."""
        now = history[:, -1]
        state = now[:, self.state]
        xy, theta = now[:, self.pose[:2]], self.angle(now[:, self.pose[2]])
        acts = actions.to(history.dtype)
        frames = []
        for k in range(self.chunk_len):
            a = acts[:, k]
            nxt = state + self.body_step(torch.cat([state, a], dim=1))
            here, there = state[:, self.xy_in_state], nxt[:, self.xy_in_state]
            parts = [to_frame((here - xy) * self.cells, theta), to_frame((there - xy) * self.cells, theta),
                     to_frame((a - xy) * self.cells, theta) if self.actions_xy else a]
            move = self.net(torch.cat(parts, dim=1))
            xy = xy + from_frame(move[:, :2], theta) / self.cells
            theta = theta + move[:, 2]
            state = nxt
            if every_step or (k + 1) % self.stride == 0:
                out = torch.empty_like(now)
                out[:, self.state] = state
                out[:, self.pose[:2]] = xy
                out[:, self.pose[2]] = self.normalised_angle(theta)
                frames.append(out)
        return torch.stack(frames, dim=1)
