"""Proprioception: the future of what the robot knows of itself, and where that puts its body on the grid.

Why: PushT's agent is a 2 px disc. A conv on the frozen latents, told nothing but the frames and the
action targets, lost it in a quarter of its predicted frames and put it 2-6 px off; the same conv given a
map of where the agent will be found it in 91% and 1-2 px off (README, "Proprioception"). Where the agent
will be is easy from its own state: an MLP on the history's proprio and the chunk's actions predicts it
within ~1 px, 8x closer than copying the last position. DINO-WM feeds proprio beside its patches for the
same reason.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from world_model.errors import WorldModelError


class ProprioDynamics(nn.Module):
    """``(history proprio [B, Th, P], actions [B, L, A])``, both normalised -> future proprio
    ``[B, Tf, P]`` normalised: the current proprio plus a predicted change per future frame.

    ``glimpse_dim`` > 0: the MLP also reads a glimpse of the current latent grid around the body
    (``glimpse``), so it can see what stops the body (a wall, a door's edge) where its own state cannot."""

    def __init__(self, proprio_dim: int, n_history: int, chunk_len: int, action_dim: int, n_future: int, width: int,
                 glimpse_dim: int = 0):
        super().__init__()
        self.n_future, self.proprio_dim, self.glimpse_dim = n_future, proprio_dim, glimpse_dim
        self.net = nn.Sequential(
            nn.Linear(n_history * proprio_dim + chunk_len * action_dim + glimpse_dim, width), nn.SiLU(),
            nn.Linear(width, width), nn.SiLU(),
            nn.Linear(width, n_future * proprio_dim),
        )

    def forward(self, history: torch.Tensor, actions: torch.Tensor, glimpse: torch.Tensor | None = None) -> torch.Tensor:
        b = history.shape[0]
        parts = [history.reshape(b, -1), actions.reshape(b, -1).to(history.dtype)]
        if (glimpse is None) != (self.glimpse_dim == 0):
            raise WorldModelError(f"proprio dynamics got {'no' if glimpse is None else 'an unexpected'} glimpse; it "
                                  f"was built with glimpse_dim={self.glimpse_dim}")
        if glimpse is not None:
            parts.append(glimpse.reshape(b, -1).to(history.dtype))
        delta = self.net(torch.cat(parts, dim=1))
        return history[:, -1:] + delta.reshape(b, self.n_future, self.proprio_dim)


def position_maps(xy: torch.Tensor, size: int, sigma: float) -> torch.Tensor:
    """Image positions ``xy [B, T, 2]`` in [-1, 1] (x: left to right, y: top to bottom) -> ``[B, T*3,
    size, size]`` maps on a ``size``-cell grid: a Gaussian bump of ``sigma`` cells at the position, and
    the bump times the position's (dx, dy) from each cell's centre in cells, which tells a cell where
    inside it the body sits (a latent cell is 8 px; the agent is 2)."""
    b, t, _ = xy.shape
    centres = (torch.arange(size, device=xy.device, dtype=xy.dtype) + 0.5) * (2.0 / size) - 1.0
    dx = (xy[..., 0, None, None] - centres.view(1, 1, 1, size)) * (size / 2.0)  # [B, T, 1, size]
    dy = (xy[..., 1, None, None] - centres.view(1, 1, size, 1)) * (size / 2.0)  # [B, T, size, 1]
    dx, dy = dx.expand(b, t, size, size), dy.expand(b, t, size, size)
    bump = torch.exp(-(dx.pow(2) + dy.pow(2)) / (2.0 * sigma**2))
    return torch.stack([bump, dx * bump, dy * bump], dim=2).reshape(b, t * 3, size, size)


def glimpse_size(radius: int, channels: int) -> int:
    """Numbers in one ``glimpse`` of ``radius`` cells over ``channels`` latent channels."""
    return (2 * radius + 1) ** 2 * (channels + 1) if radius > 0 else 0


def glimpse(latent: torch.Tensor, xy: torch.Tensor, radius: int) -> torch.Tensor:
    """The latent grid ``[B, h, w, c]`` read at ``(2r+1)^2`` points one cell apart centred on the body at
    ``xy [B, 2]`` in [-1, 1] (bilinear, so a sub-cell move of the body shifts what it reads), plus one
    channel that is 1 inside the grid and 0 past its edge -> ``[B, (2r+1)^2 * (c+1)]``.

    Why: the body's own state says where it is, not what stops it. On the Wall the door's height is drawn
    per episode and seen only in the frame; the cells around the agent show whether the wall or the door
    is in its way. Egocentric, so a stop learnt at one place holds at every other."""
    return glimpse_from(glimpse_image(latent), xy, radius)


def glimpse_image(latent: torch.Tensor) -> torch.Tensor:
    """``latent [B, h, w, c]`` as ``glimpse_from`` reads it: ``[B, c + 1, h, w]`` with the inside channel.
    The stepwise body reads one view at every step of a chunk, so it builds this once per chunk."""
    inside = torch.ones(*latent.shape[:-1], 1, device=latent.device, dtype=latent.dtype)
    return torch.cat([latent, inside], dim=-1).permute(0, 3, 1, 2)


def glimpse_from(image: torch.Tensor, xy: torch.Tensor, radius: int) -> torch.Tensor:
    """``glimpse`` of a ``glimpse_image``."""
    h, w = image.shape[-2:]
    k = torch.arange(-radius, radius + 1, device=image.device, dtype=image.dtype)
    gy, gx = torch.meshgrid(k * (2.0 / h), k * (2.0 / w), indexing="ij")
    xy = xy.to(image.dtype)
    grid = torch.stack([xy[:, 0, None, None] + gx, xy[:, 1, None, None] + gy], dim=-1)  # [B, n, n, (x, y)]
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="zeros", align_corners=False).flatten(1)


def hide_body(frames: torch.Tensor, xy: torch.Tensor, radius: float) -> torch.Tensor:
    """``frames [B, S, S, C]`` with the disc of ``radius`` pixels round ``xy [B, 2]`` (in [-1, 1], x left
    to right, y top to bottom) painted with each frame's median colour: the floor, where walls and bodies
    are small. The stepwise body's glimpse reads one frame for every step of its chunk; this keeps the
    body's own picture in that frame out of what it reads."""
    b, s = frames.shape[0], frames.shape[1]
    centres = (torch.arange(s, device=frames.device, dtype=frames.dtype) + 0.5) * (2.0 / s) - 1.0
    pixels = s / 2.0  # pixels per unit of [-1, 1]
    dx = (centres.view(1, 1, s) - xy[:, 0, None, None].to(frames.dtype)) * pixels
    dy = (centres.view(1, s, 1) - xy[:, 1, None, None].to(frames.dtype)) * pixels
    inside = (dx.pow(2) + dy.pow(2) <= radius**2)[..., None]  # [B, S, S, 1]
    floor = frames.reshape(b, -1, frames.shape[-1]).median(dim=1).values[:, None, None]  # [B, 1, 1, C]
    return torch.where(inside, floor, frames)


GATE_OPEN = 5.0  # an untrained gate passes 99.3% of the free move


class LinearStepFit(NamedTuple):
    """What ``solve_linear_step`` found: the largest residual on the transitions it kept (normalised
    units; near zero where the body is linear per step) and the fraction of transitions it kept."""

    residual: float
    kept: float


@torch.no_grad()
def solve_linear_step(layer: nn.Linear, inputs: torch.Tensor, change: torch.Tensor, trim: bool) -> LinearStepFit:
    """Set ``layer`` (``inputs [N, I] -> change [N, O]``) to the least-squares solution.

    ``trim``: the transitions that do not follow the linear step (a wall stopped the body, or slid it) are
    dropped and the rest solved again, until the kept set stops changing: a robust cut at the median
    residual plus 5 scaled MADs. Why not scipy's robust ``least_squares``: its soft losses still bend the
    solution toward the stops by a fraction, and the free move is exact here; trimming recovers it exactly
    whenever the free transitions are the majority."""
    if inputs.ndim != 2 or change.ndim != 2 or len(inputs) != len(change):
        raise WorldModelError(f"a linear step fit got inputs {tuple(inputs.shape)} and changes {tuple(change.shape)}; "
                              "expected [N, I] and [N, O]")
    if len(inputs) <= inputs.shape[1] or not torch.isfinite(inputs).all() or not torch.isfinite(change).all():
        raise WorldModelError(f"a linear step fit got {len(inputs)} transitions (NaN-free: "
                              f"{bool(torch.isfinite(inputs).all() and torch.isfinite(change).all())}); expected more "
                              f"than {inputs.shape[1]} finite ones")
    x = inputs.double()
    design = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype, device=x.device)], dim=1)
    y = change.double()
    keep = torch.ones(len(x), dtype=torch.bool, device=x.device)
    solution = torch.linalg.lstsq(design, y).solution  # [I + 1, O]
    for _ in range(10 if trim else 0):
        residual = (design @ solution - y).abs().max(dim=1).values
        median = residual.median()
        cut = median + 5.0 * 1.4826 * (residual - median).abs().median() + 1e-9
        new = residual <= cut
        if int(new.sum()) <= design.shape[1] or torch.equal(new, keep):
            break
        keep = new
        solution = torch.linalg.lstsq(design[keep], y[keep]).solution  # the solution always fits ``keep``
    layer.weight.copy_(solution[:-1].T.to(layer.weight))
    layer.bias.copy_(solution[-1].to(layer.bias))
    residual = (design[keep] @ solution - y[keep]).abs().max()
    return LinearStepFit(float(residual), float(keep.double().mean()))


class StepwiseBodyDynamics(nn.Module):
    """The body rolled out one env step at a time: ``(history proprio [B, Th, P], actions [B, L, A],
    view [B, h, w, c]), normalised -> future proprio [B, Tf, P]``, every ``stride``-th step; the view is
    the newest latent grid, or with ``proprio_glimpse_pixels`` its decoded frame (then ``radius`` pixels).

    Why: on the Wall the agent moves by its action unless a wall stops it. A chunk MLP must learn a
    16-step sum and every stop at once, and it undershot free full-speed runs from a standstill (README,
    "Proprioception on the Wall"); one step at a time the free move is a linear map of the action, and a
    stop is a gate per proprio entry (per axis on the Wall) on that move, read from a glimpse of the latent
    grid where the body is at that step (``glimpse``, ``radius`` > 0), so the wall ahead is seen as the body
    nears it. A gate can
    only shorten the free move: an additive correction instead (measured, README) learnt to slow the
    rare full-speed runs away from any wall too, as its inputs there lay outside the data's usual speeds.
    ``free_fitted``: the free move is not trained by gradient but solved once from the data's free
    transitions (``fit_free``); trained, it ended 4-8% short of a full-speed run (1-2.5 px in 16 steps).
    ``slide`` (``proprio_body_slide``): the net also outputs a move per entry, added as far as the most
    closed gate is closed (an open gate, sigmoid(5), lets 0.7% of it through; it starts at zero): a wall's
    corner pushes the body sideways."""

    def __init__(self, proprio_dim: int, body: list[int], chunk_len: int, action_dim: int, stride: int,
                 width: int, radius: int, channels: int, free_fitted: bool = False, slide: bool = False):
        super().__init__()
        self.body, self.chunk_len, self.stride, self.radius = list(body), chunk_len, stride, radius
        self.slide = slide
        self.free = nn.Linear(proprio_dim + action_dim, proprio_dim)
        n_in = glimpse_size(radius, channels) + proprio_dim + action_dim
        self.net = nn.Sequential(nn.Linear(n_in, width), nn.SiLU(), nn.Linear(width, width), nn.SiLU(),
                                 nn.Linear(width, proprio_dim * (2 if slide else 1)))
        for layer in (self.free, self.net[-1]):  # it starts as "the body stays where it is", the gates open
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)
        self.free.requires_grad_(not free_fitted)

    def fit_free(self, proprio: torch.Tensor, actions: torch.Tensor, next_proprio: torch.Tensor) -> LinearStepFit:
        """Solve the free move from one-step transitions ``proprio [N, P]``, ``actions [N, A]``,
        ``next_proprio [N, P]`` (normalised), leaving out those a wall changed (``solve_linear_step``)."""
        check_transitions(proprio, actions, next_proprio)
        return solve_linear_step(self.free, torch.cat([proprio, actions.to(proprio.dtype)], dim=1),
                                 next_proprio - proprio, trim=True)

    def forward(self, history: torch.Tensor, actions: torch.Tensor, latent: torch.Tensor | None = None) -> torch.Tensor:
        return self.roll(history, actions, latent)[0]

    def roll(self, history: torch.Tensor, actions: torch.Tensor,
             latent: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(future proprio [B, Tf, P], the gate of every step [B, L, P])``: what ``forward`` predicts, and
        how much of the free move each step let through (``benchmarks/body_gate.py`` reads it)."""
        self._check_view(latent)
        state, acts, frames, gates = history[:, -1], actions.to(history.dtype), [], []
        image = None if latent is None else glimpse_image(latent)
        for k in range(self.chunk_len):
            state, gate = self.advance(state, acts[:, k], self._look(image, state))
            gates.append(gate)
            if (k + 1) % self.stride == 0:
                frames.append(state)
        return torch.stack(frames, dim=1), torch.stack(gates, dim=1)

    def sense(self, view: torch.Tensor | None, state: torch.Tensor) -> torch.Tensor | None:
        """What the gate reads of ``view`` round the body at ``state [B, P]``: its glimpse, or None
        without one."""
        self._check_view(view)
        return self._look(None if view is None else glimpse_image(view), state)

    def _check_view(self, view: torch.Tensor | None) -> None:
        if (view is None) != (self.radius == 0):
            raise WorldModelError(f"stepwise body dynamics got {'no' if view is None else 'an unexpected'} latent; "
                                  f"it was built with glimpse radius {self.radius}")

    def _look(self, image: torch.Tensor | None, state: torch.Tensor) -> torch.Tensor | None:
        """The glimpse of a ``glimpse_image`` round the body at ``state``, or None without one."""
        return None if image is None else glimpse_from(image, state[:, self.body], self.radius).to(state.dtype)

    def advance(self, state: torch.Tensor, action: torch.Tensor,
                seen: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """One env step: ``(next state [B, P], gate [B, P])`` from ``state``, ``action [B, A]`` and what
        ``sense`` saw. `uva_plan.label_refinement` inverts it for an action."""
        inp = torch.cat([state, action.to(state.dtype)], dim=1)
        out = self.net(inp if seen is None else torch.cat([seen, inp], dim=1))
        p = state.shape[1]
        gate = torch.sigmoid(out[:, :p] + GATE_OPEN)
        moved = state + self.free(inp) * gate
        if self.slide:  # a move no action commanded, only where something stopped the commanded one
            moved = moved + out[:, p:] * (1.0 - gate.min(dim=1, keepdim=True).values)
        return moved, gate


def check_transitions(proprio: torch.Tensor, actions: torch.Tensor, next_proprio: torch.Tensor) -> None:
    if proprio.ndim != 2 or proprio.shape != next_proprio.shape or actions.ndim != 2 or len(actions) != len(proprio):
        raise WorldModelError(f"a body fit got proprio {tuple(proprio.shape)}, actions {tuple(actions.shape)}, next "
                              f"{tuple(next_proprio.shape)}; expected [N, P], [N, A], [N, P] one-step transitions")
