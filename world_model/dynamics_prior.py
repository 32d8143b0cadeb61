"""A deterministic forward model on the latent grid whose prediction joins UVA's joint tokens.

Why: a plain residual conv net on the same frozen latents (`benchmarks/reference_forward_model.py`),
trained 10 minutes, keeps an agent pushed into a wall in place in 98% of cases, where UVA's transformer
with its action warp carries it through or loses it (README, "What stops it: a dynamics prior inside
UVA"). Convolutions at the
latent resolution see the agent's exact cell beside the wall; a token is 2x2 cells and the transformer
must learn that contact from few examples. The prior is regressed onto the future latents (an auxiliary
loss), and its prediction becomes one more part of each future token, like the current frame's, so the
video head denoises the remaining change and UVA stays one joint latent with two diffusion heads.
"""

from __future__ import annotations

import torch
from torch import nn

from world_model.errors import WorldModelError


class DynamicsPrior(nn.Module):
    """``(latest history latents [B, frames, h, w, c], normalised actions [B, L, A]) -> future latents
    [B, Tf, h, w, c]``: the current (newest) latent plus a predicted change per future frame; every action
    of the chunk is broadcast over the grid as input channels.

    Two options for actions and dynamics unlike the Wall's (README, "The Wall's lever on PushT"):
    ``coords`` adds each cell's (x, y) in [-1, 1] as two channels, so an action that is a target POSITION
    can be compared with the cell it concerns (a convolution learns where it is only slowly, from the zero
    padding: a toy jump to the named cell is 92% right after 100 steps with them, 42% without);
    ``frames`` > 1 also shows the frames before the current one, for an agent carried by its own speed.
    On PushT's reference net each moved the agent's error by a few units only.
    """

    def __init__(self, channels: int, chunk_len: int, action_dim: int, n_future: int, width: int, blocks: int,
                 coords: bool = False, frames: int = 1, map_channels: int = 0):
        super().__init__()
        self.n_future, self.channels, self.coords, self.frames = n_future, channels, coords, frames
        self.map_channels = map_channels
        groups = 8 if width % 8 == 0 else 1
        self.inp = nn.Conv2d(frames * channels + chunk_len * action_dim + (2 if coords else 0) + map_channels,
                             width, 3, padding=1)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.GroupNorm(groups, width), nn.SiLU(), nn.Conv2d(width, width, 3, padding=1),
                          nn.GroupNorm(groups, width), nn.SiLU(), nn.Conv2d(width, width, 3, padding=1))
            for _ in range(blocks))
        self.out = nn.Conv2d(width, n_future * channels, 3, padding=1)

    def forward(self, recent: torch.Tensor, actions: torch.Tensor, maps: torch.Tensor | None = None) -> torch.Tensor:
        """``maps [B, map_channels, h, w]``: extra per-cell inputs (``proprio.position_maps``), required
        when the prior was built with ``map_channels``."""
        b, k, h, w, c = recent.shape
        if k != self.frames:
            raise WorldModelError(f"dynamics prior got {k} history frames; expected its {self.frames}")
        if (maps is None) != (self.map_channels == 0):
            raise WorldModelError(f"dynamics prior got {'no' if maps is None else 'unexpected'} maps; it was built "
                                  f"with {self.map_channels} map channels")
        current = recent[:, -1]
        x = recent.permute(0, 1, 4, 2, 3).reshape(b, k * c, h, w)
        a = actions.reshape(b, -1, 1, 1).expand(b, actions.shape[1] * actions.shape[2], h, w)
        parts = [x, a.to(x.dtype)] + ([maps.to(x.dtype)] if maps is not None else [])
        if self.coords:
            ys, xs = torch.meshgrid(torch.linspace(-1, 1, h, device=x.device, dtype=x.dtype),
                                    torch.linspace(-1, 1, w, device=x.device, dtype=x.dtype), indexing="ij")
            parts.insert(2, torch.stack([xs, ys]).expand(b, 2, h, w))
        y = self.inp(torch.cat(parts, dim=1))
        for block in self.blocks:
            y = y + block(y)
        delta = self.out(y).reshape(b, self.n_future, c, h, w).permute(0, 1, 3, 4, 2)
        return current.unsqueeze(1) + delta
