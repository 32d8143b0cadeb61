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


class DynamicsPrior(nn.Module):
    """``(current latent [B, h, w, c], normalised actions [B, L, A]) -> future latents [B, Tf, h, w, c]``:
    the current latent plus a predicted change per future frame; every action of the chunk is broadcast
    over the grid as input channels."""

    def __init__(self, channels: int, chunk_len: int, action_dim: int, n_future: int, width: int, blocks: int):
        super().__init__()
        self.n_future, self.channels = n_future, channels
        groups = 8 if width % 8 == 0 else 1
        self.inp = nn.Conv2d(channels + chunk_len * action_dim, width, 3, padding=1)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.GroupNorm(groups, width), nn.SiLU(), nn.Conv2d(width, width, 3, padding=1),
                          nn.GroupNorm(groups, width), nn.SiLU(), nn.Conv2d(width, width, 3, padding=1))
            for _ in range(blocks))
        self.out = nn.Conv2d(width, n_future * channels, 3, padding=1)

    def forward(self, current: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        b, h, w, c = current.shape
        x = current.permute(0, 3, 1, 2)
        a = actions.reshape(b, -1, 1, 1).expand(b, actions.shape[1] * actions.shape[2], h, w)
        y = self.inp(torch.cat([x, a.to(x.dtype)], dim=1))
        for block in self.blocks:
            y = y + block(y)
        delta = self.out(y).reshape(b, self.n_future, c, h, w).permute(0, 1, 3, 4, 2)
        return current.unsqueeze(1) + delta
