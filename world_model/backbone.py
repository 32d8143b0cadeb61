"""UVA's joint video-action latent and its bidirectional transformer.

One token per spatial position of every future frame. Each token fuses, channel-wise, (1) the future
frame's latent token or a learned mask token where it is masked, (2) the history frame's token at the
same position (history frame i pairs with future frame i), and (3) the embedding of the frame_stride
actions that lead to that future frame (or a learned "no actions" embedding) - then ONE linear layer
projects the concatenation to the model width. Two options of the config widen the fusion:
``fuse_current_frame`` concatenates the current frame's token at the same position to every future
token, and
``action_context="prefix"`` gives future frame i every action of the chunk up to it (zeros after). Learned temporal + spatial position embeddings are
added, goal-image tokens (or a learned "no goal" set) are prepended as a condition, as UVA prepends
language, and a bidirectional transformer mixes everything.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from world_model.config import UVAConfig
from world_model.tokenizer import patchify, unpatchify

SINCOS_SCALE = 0.5  # about the size of the fused token projections at initialisation
WARP_LOCAL_ACTION_CHANNELS = 16  # the actions' share of the per-cell warp correction's input
STEPWISE_KERNELS = ("stepwise", "splat")  # kernels applied frame after frame, each from its own actions


def _sincos_2d(grid: int, width: int) -> torch.Tensor:
    """MAE-style 2-D sin-cos position table ``[grid * grid, width]`` (row-major like the tokens)."""
    y, x = torch.meshgrid(torch.arange(grid, dtype=torch.float32), torch.arange(grid, dtype=torch.float32), indexing="ij")
    quarter = width // 4
    omega = 1.0 / 10000 ** (torch.arange(quarter, dtype=torch.float32) / max(quarter, 1))
    parts = []
    for coord in (x.reshape(-1), y.reshape(-1)):
        angle = coord[:, None] * omega[None]
        parts += [torch.sin(angle), torch.cos(angle)]
    table = torch.cat(parts, dim=1)
    return torch.nn.functional.pad(table, (0, width - table.shape[1]))


class _LocalMixing(nn.Module):
    """Pre-norm residual 3x3 convolution over each frame's token grid: ``[B, T, S, W] -> [B, T, S, W]``."""

    def __init__(self, width: int):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.conv = nn.Conv2d(width, width, 3, padding=1)
        nn.init.zeros_(self.conv.weight)
        nn.init.zeros_(self.conv.bias)

    def forward(self, x: torch.Tensor, grid: int) -> torch.Tensor:
        b, t, s, w = x.shape
        h = torch.nn.functional.gelu(self.norm(x)).reshape(b * t, grid, grid, w).permute(0, 3, 1, 2)
        return x + self.conv(h).permute(0, 2, 3, 1).reshape(b, t, s, w)


class _ActionWarp(nn.Module):
    """CDNA-style motion kernels (Finn, Goodfellow & Levine 2016) in latent space: each future frame's
    action context ``[B, Tf, A']`` predicts a softmax kernel over ``(2r+1)^2`` offsets that moves the
    current frame's latent grid ``[B, h, w, c]``; returns the moved grids as tokens ``[B, Tf, S, D]``.

    Why: a 16-step chunk at full speed carries the Wall's agent 4 latent cells (2 tokens); through
    attention or 3x3 mixing alone the model learns that slowly (README, "What moves the still-start
    figure"). A kernel is one learned shift per frame, so the moved agent is an input, not something to
    compute. Written here rather than taken from a library:
    torch has no per-sample dynamic convolution; unfold + a weighted sum is that in three lines."""

    def __init__(self, action_slot: int, radius: int, patch_size: int, channels: int, hidden: int = 64,
                 kind: str = "free", step_slot: int | None = None):
        super().__init__()
        self.radius, self.patch_size, self.channels, self.kind = radius, patch_size, channels, kind
        # "stepwise" reads each frame's own actions (step_slot wide), not the whole prefix before it.
        self.step_slot = step_slot if kind in STEPWISE_KERNELS else None
        in_slot = self.step_slot or action_slot
        k = 2 * radius + 1
        out = k * k if kind == "free" else 3  # free logits per offset, or a Gaussian's (mean x, mean y, log std)
        self.kernel = nn.Sequential(nn.Linear(in_slot, hidden), nn.GELU(), nn.Linear(hidden, out))
        # Starts wide: uniform ("free", the frame's local mean) or a Gaussian of std r/2 round "no move".
        # Every offset then gets a gradient, where a kernel peaked on "no move" would hardly learn to move
        # (the current frame is fused anyway).
        nn.init.zeros_(self.kernel[-1].weight)
        nn.init.zeros_(self.kernel[-1].bias)
        self.local = None
        if kind in ("gaussian+local", *STEPWISE_KERNELS):
            # DNA (the same paper): a per-cell correction of the Gaussian's logits from the current frame
            # round that cell (3x3 convs reach 2 cells) and the actions, so a cell beside a wall can
            # take a different move than open space. Zero-initialised: it starts as the Gaussian.
            self.local_actions = nn.Linear(in_slot, WARP_LOCAL_ACTION_CHANNELS)
            self.local = nn.Sequential(nn.Conv2d(channels + WARP_LOCAL_ACTION_CHANNELS, hidden, 3, padding=1), nn.GELU(),
                                       nn.Conv2d(hidden, k * k, 3, padding=1))
            nn.init.zeros_(self.local[-1].weight)
            nn.init.zeros_(self.local[-1].bias)
        self.importance = None
        if kind == "splat":
            # Softmax splatting (Niklaus & Liu 2020): where moved cells meet (at a wall, at the arena's
            # edge), each cell's learned importance decides whose content wins; it starts equal.
            self.importance = nn.Conv2d(channels, 1, 1)
            nn.init.zeros_(self.importance.weight)
            nn.init.zeros_(self.importance.bias)
        if kind != "free":
            with torch.no_grad():
                self.kernel[-1].bias[2] = math.log(max(radius / 2, 0.5))
            offsets = torch.arange(-radius, radius + 1, dtype=torch.float32)
            oy, ox = torch.meshgrid(offsets, offsets, indexing="ij")
            self.register_buffer("offsets", torch.stack([ox.reshape(-1), oy.reshape(-1)], dim=-1), persistent=False)

    def _logits(self, actions: torch.Tensor) -> torch.Tensor:
        out = self.kernel(actions)
        if self.kind == "free":
            return out
        # A Gaussian over the offsets: its mean is nearly linear in the actions (a move is their sum),
        # so it is found in a few hundred steps where free logits take thousands.
        mean, std = out[..., :2], out[..., 2:].exp().clamp(min=0.05)
        return -((self.offsets - mean.unsqueeze(-2)) ** 2).sum(-1) / (2 * std**2)

    def forward(self, actions: torch.Tensor, current: torch.Tensor) -> torch.Tensor:
        b, tf, _ = actions.shape
        grid = current.permute(0, 3, 1, 2)  # [B, c, h, w]
        if self.kind in STEPWISE_KERNELS:
            return self._stepwise(actions, grid)
        h, w = grid.shape[-2:]
        logits = self._logits(actions).unsqueeze(-1)  # [B, Tf, K^2, 1]: one kernel for every cell
        if self.local is not None:
            logits = logits + self._correction(actions, grid.unsqueeze(1).expand(b, tf, -1, h, w))
        moved = self._move(grid.unsqueeze(1), logits)
        return patchify(moved.permute(0, 1, 3, 4, 2), self.patch_size)

    def _stepwise(self, actions: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
        """Frame after frame: each frame's own actions move the previous MOVED grid by a short kernel,
        corrected per cell. Why: a wall stops the agent where it is met, which a cell's correction can
        see when each move spans a cell or two, not when one kernel carries the agent the whole way."""
        b, tf, _ = actions.shape
        own = actions if actions.shape[-1] == self.step_slot else actions[:, -1].reshape(b, tf, self.step_slot)
        frames = []
        for i in range(tf):
            step = own[:, i : i + 1]  # [B, 1, step_slot]
            logits = self._logits(step).unsqueeze(-1) + self._correction(step, grid.unsqueeze(1))
            grid = self._splat(grid, logits[:, 0]) if self.kind == "splat" else self._move(grid.unsqueeze(1), logits)[:, 0]
            frames.append(grid)
        return patchify(torch.stack(frames, dim=1).permute(0, 1, 3, 4, 2), self.patch_size)

    def _splat(self, grid: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """Forward warping: each cell of ``grid [B, c, h, w]`` SENDS its content along its own kernel
        (``logits [B, K^2, 1 or h*w]``, a per-source-cell correction) to cells clamped to the grid, and
        each cell takes the importance-weighted mean of what arrives. Why: gathering (``_move``) can only
        read, so content pushed off the grid or into a wall is lost; sending keeps it at the edge, and a
        cell's own correction can hold it where a wall is beside it."""
        b, c, h, w = grid.shape
        r, k = self.radius, 2 * self.radius + 1
        # Flipped: offset o here SENDS to cell + (-o), so a kernel means the same move as in _move (which
        # READS from cell + o) and a stepwise run can grow into a splat one with --init-from.
        weights = torch.softmax(logits.flip(1), dim=1).expand(b, k * k, h * w)  # [B, K^2, h*w] from each source
        own = self.importance(grid).clamp(-8, 8).exp().reshape(b, 1, h * w)
        mass = weights * own
        sent = torch.cat([(mass.unsqueeze(1) * grid.reshape(b, c, 1, h * w)).reshape(b, c * k * k, h * w), mass], dim=1)
        # fold sums each source's k x k patch centred on it: destination = source + offset (padded by r)
        arrived = torch.nn.functional.fold(sent, (h + 2 * r, w + 2 * r), k)  # [B, c + 1, h + 2r, w + 2r]: content, then mass
        arrived = _clamp_border(arrived, r)
        content, total = arrived[:, :c], arrived[:, c:]
        # A cell nothing reaches keeps its own content (the trailing edge of a move); weighted by its own
        # importance so a shift of every importance changes nothing.
        keep = 1e-4 * own.reshape(b, 1, h, w)
        return (content + keep * grid) / (total + keep)

    def _correction(self, actions: torch.Tensor, grids: torch.Tensor) -> torch.Tensor:
        """Per-cell logits ``[B, T, K^2, h*w]`` from each grid ``[B, T, c, h, w]`` and its actions."""
        b, t, _, h, w = grids.shape
        ctx = self.local_actions(actions)[..., None, None].expand(-1, -1, -1, h, w)
        k2 = (2 * self.radius + 1) ** 2
        return self.local(torch.cat([grids, ctx], dim=2).flatten(0, 1)).reshape(b, t, k2, h * w)

    def _move(self, grids: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """Grids ``[B, 1 or T, c, h, w]`` moved by softmax kernels ``[B, T, K^2, 1 or h*w]`` -> ``[B, T, c, h, w]``."""
        b, t = logits.shape[:2]
        r, k = self.radius, 2 * self.radius + 1
        h, w = grids.shape[-2:]
        weights = torch.softmax(logits, dim=2).unsqueeze(2)  # [B, T, 1, K^2, 1 or h*w]
        padded = torch.nn.functional.pad(grids.flatten(0, 1), (r, r, r, r), mode="replicate")  # the edge extends, as a background does
        patches = torch.nn.functional.unfold(padded, k).reshape(b, grids.shape[1], self.channels, k * k, h * w)
        return (patches * weights).sum(dim=3).reshape(b, t, self.channels, h, w)


def _clamp_border(x: torch.Tensor, r: int) -> torch.Tensor:
    """``[N, C, H + 2r, W + 2r] -> [N, C, H, W]``: what landed in the r-wide border is added to the
    nearest edge cell, so content pushed past the edge stays at the edge."""
    if r == 0:
        return x
    rows = torch.cat([x[:, :, : r + 1].sum(2, keepdim=True), x[:, :, r + 1 : -r - 1], x[:, :, -r - 1 :].sum(2, keepdim=True)], dim=2)
    return torch.cat([rows[..., : r + 1].sum(3, keepdim=True), rows[..., r + 1 : -r - 1], rows[..., -r - 1 :].sum(3, keepdim=True)], dim=3)


def proprio_context_width(config: UVAConfig) -> int:
    """Numbers per token of the proprio context: the proprio itself, and the body's position map
    (``proprio.position_maps``: bump, dx, dy per latent cell) over the token's cells when the proprio
    names the body's image position."""
    return config.proprio_dim + (3 * config.patch_size**2 if config.proprio_image_xy else 0)


class JointBackbone(nn.Module):
    """``(future, history, mask, actions, goal) -> joint latent [B, Tf, S, width]``."""

    def __init__(self, config: UVAConfig):
        super().__init__()
        self.config = config
        d, s, w = config.token_dim, config.tokens_per_frame, config.width
        per_frame = config.frame_stride * config.action_embed_dim
        action_slot = per_frame * (config.n_future if config.action_context == "prefix" else 1)
        self.action_embed = nn.Linear(config.action_dim, config.action_embed_dim)
        self.no_actions = nn.Parameter(torch.randn(action_slot) * 0.02)
        self.mask_token = nn.Parameter(torch.randn(d) * 0.02)
        self.warp = None
        if config.action_warp_radius > 0:
            self.warp = _ActionWarp(action_slot, config.action_warp_radius, config.patch_size,
                                    config.latent_channels, kind=config.action_warp_kernel, step_slot=per_frame)
        self.uses_prior = config.dynamics_prior_width > 0
        n_token_parts = 2 + int(config.fuse_current_frame) + int(self.warp is not None) + int(self.uses_prior)
        self.fuse = nn.Linear(n_token_parts * d + action_slot, w)
        self.local_mixing = nn.ModuleList(_LocalMixing(w) for _ in range(config.local_mixing))
        self.temporal_pos = nn.Parameter(torch.randn(config.n_future, 1, w) * 0.02)
        # Learned, but started from a 2-D sin-cos table, and shared by the goal tokens (plus a learned
        # "goal" type vector): then "the same place" and "how far apart" are easy to read from the
        # start, where independent random tables for frames and goal leave a goal distance unlearnt.
        self.spatial_pos = nn.Parameter(_sincos_2d(config.grid_size, w).unsqueeze(0) * SINCOS_SCALE)
        self.goal_embed = nn.Linear(d, w)
        self.goal_type = nn.Parameter(torch.randn(1, w) * 0.02)
        self.no_goal = nn.Parameter(torch.randn(s, w) * 0.02)
        layer = nn.TransformerEncoderLayer(
            w, config.heads, int(w * config.mlp_ratio), dropout=0.0, activation="gelu",
            batch_first=True, norm_first=True,
        )
        self.transformer = nn.TransformerEncoder(layer, config.depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(w)
        self.proprio_context = self.goal_proprio_context = None
        if config.proprio_context:
            # Zero-initialised, with zero "none" vectors: a run grown from one without them (--init-from)
            # starts as that run.
            n_in = proprio_context_width(config)
            self.proprio_context, self.goal_proprio_context = nn.Linear(n_in, w), nn.Linear(n_in, w)
            for layer in (self.proprio_context, self.goal_proprio_context):
                nn.init.zeros_(layer.weight)
                nn.init.zeros_(layer.bias)
            self.no_proprio = nn.Parameter(torch.zeros(w))
            self.no_goal_proprio = nn.Parameter(torch.zeros(w))

    @staticmethod
    def _context(layer: nn.Linear, none: torch.Tensor, tokens, given, b: int, s: int) -> torch.Tensor:
        """``[B, S, width]``: the proprio context tokens through ``layer``, or ``none`` where not given."""
        if tokens is None:
            return none.expand(b, s, -1)
        ctx = layer(tokens)
        return ctx if given is None else torch.where(given.view(b, 1, 1), ctx, none)

    def forward(
        self,
        future: torch.Tensor,
        history: torch.Tensor,
        future_mask: torch.Tensor,
        actions: torch.Tensor | None = None,
        actions_given: torch.Tensor | None = None,
        goal: torch.Tensor | None = None,
        goal_given: torch.Tensor | None = None,
        prior: torch.Tensor | None = None,
        proprio: torch.Tensor | None = None,
        proprio_given: torch.Tensor | None = None,
        goal_proprio: torch.Tensor | None = None,
        goal_proprio_given: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """future/history tokens ``[B, Tf, S, D]``; ``future_mask`` bool ``[B, Tf, S]`` (True = masked);
        ``actions`` normalised ``[B, L, A]`` with ``actions_given`` bool ``[B]``; ``goal`` tokens
        ``[B, S, D]`` with ``goal_given`` bool ``[B]``; ``prior`` the dynamics prior's tokens ``[B, Tf, S, D]``
        (models with one; without actions the current frame's tokens stand in); ``proprio`` /
        ``goal_proprio`` the proprio context tokens ``[B, S, proprio_context_width]`` of the current frame
        and the goal (models with ``proprio_context``), each with its ``*_given`` bool ``[B]``. Returns the
        future part ``[B, Tf, S, width]``."""
        cfg = self.config
        b, tf, s, _ = future.shape
        fut = torch.where(future_mask.unsqueeze(-1), self.mask_token.to(future.dtype), future)
        if actions is None:
            act = self.no_actions.expand(b, tf, -1)
        else:
            act = self.action_embed(actions).reshape(b, tf, cfg.frame_stride * cfg.action_embed_dim)
            if cfg.action_context == "prefix":
                # frame i sees the embeddings of frames 0..i (zeros for later frames)
                seen = torch.tril(torch.ones(tf, tf, device=act.device, dtype=act.dtype))
                act = (seen.view(1, tf, tf, 1) * act.unsqueeze(1)).reshape(b, tf, -1)
            if actions_given is not None:
                act = torch.where(actions_given.view(b, 1, 1), act, self.no_actions)
        parts = [fut, history]
        if cfg.fuse_current_frame:
            parts.append(history[:, -1:].expand(b, tf, s, history.shape[-1]))
        if self.warp is not None:
            current = unpatchify(history[:, -1], cfg.patch_size, cfg.latent_channels)
            parts.append(self.warp(act, current))
        if self.uses_prior:
            parts.append(prior if prior is not None else history[:, -1:].expand(b, tf, s, history.shape[-1]))
        act = act.unsqueeze(2).expand(b, tf, s, act.shape[-1])
        x = self.fuse(torch.cat([*parts, act], dim=-1))
        if self.proprio_context is not None:
            x = x + self._context(self.proprio_context, self.no_proprio, proprio, proprio_given, b, s).unsqueeze(1)
        for block in self.local_mixing:
            x = block(x, cfg.grid_size)
        x = x + self.temporal_pos + self.spatial_pos
        if goal is None:
            cond = self.no_goal.expand(b, -1, -1)
        else:
            cond = self.goal_embed(goal)
            if goal_given is not None:
                cond = torch.where(goal_given.view(b, 1, 1), cond, self.no_goal)
        cond = cond + self.spatial_pos[0] + self.goal_type
        if self.goal_proprio_context is not None:
            cond = cond + self._context(self.goal_proprio_context, self.no_goal_proprio, goal_proprio,
                                        goal_proprio_given, b, s)
        tokens = torch.cat([cond, x.reshape(b, tf * s, -1)], dim=1)
        out = self.norm(self.transformer(tokens))
        return out[:, s:].reshape(b, tf, s, -1)
