"""Proprioception: the future of what the robot knows of itself, and where that puts its body on the grid.

Why: PushT's agent is a 2 px disc. A conv on the frozen latents, told nothing but the frames and the
action targets, lost it in a quarter of its predicted frames and put it 2-6 px off; the same conv given a
map of where the agent will be found it in 91% and 1-2 px off (README, "Proprioception"). Where the agent
will be is easy from its own state: an MLP on the history's proprio and the chunk's actions predicts it
within ~1 px, 8x closer than copying the last position. DINO-WM feeds proprio beside its patches for the
same reason.
"""

from __future__ import annotations

import torch
from torch import nn


class ProprioDynamics(nn.Module):
    """``(history proprio [B, Th, P], actions [B, L, A])``, both normalised -> future proprio
    ``[B, Tf, P]`` normalised: the current proprio plus a predicted change per future frame."""

    def __init__(self, proprio_dim: int, n_history: int, chunk_len: int, action_dim: int, n_future: int, width: int):
        super().__init__()
        self.n_future, self.proprio_dim = n_future, proprio_dim
        self.net = nn.Sequential(
            nn.Linear(n_history * proprio_dim + chunk_len * action_dim, width), nn.SiLU(),
            nn.Linear(width, width), nn.SiLU(),
            nn.Linear(width, n_future * proprio_dim),
        )

    def forward(self, history: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        b = history.shape[0]
        delta = self.net(torch.cat([history.reshape(b, -1), actions.reshape(b, -1).to(history.dtype)], dim=1))
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
