"""Frame tokenizer: a small KL autoencoder (frames -> latents -> tokens), trained in its own stage and
then frozen, as UVA freezes its VAE.

Why a plain conv KL autoencoder and not ``diffusers.AutoencoderKL``: measured side by side on this
(shared, loaded) 2-core CPU at 64x64 -> 8x8x4, batch 64: AutoencoderKL with block channels
(16, 32, 32, 32), one layer per block, no mid-block attention trains at 30-38 img/s (68 on a quieter
machine) and encodes 80-340 img/s; this conv KL autoencoder with channels (16, 32, 32) and GroupNorm
trains at 91-118 img/s and encodes 600-1450 img/s (190 / 1700 without GroupNorm, which however sat on
a loss plateau for ~50 steps before it placed small objects). Same latent shape, same mean/log-variance
posterior and KL term; the tokenizer stage must fit in minutes of the 20-minute CPU budget, so the
faster one wins.

Small moving objects (an agent disc of a few pixels) carry almost no weight in a plain pixel loss and
blur away; the reconstruction loss therefore up-weights pixels that differ from the dataset's
per-pixel median background (``fit_background``) - generic, no environment knowledge.

Latents are shifted by their per-channel mean and scaled by ``1 / std`` (``fit_scale``, computed from
data like Stable Diffusion's scale factor) so diffusion sees roughly unit-variance latents.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from world_model.config import TokenizerConfig
from world_model.errors import WorldModelError


def _norm(channels: int) -> nn.GroupNorm:
    groups = next(g for g in (8, 4, 2, 1) if channels % g == 0 and channels // g >= 2 or g == 1)
    return nn.GroupNorm(groups, channels)


class _ResBlock(nn.Module):
    """Pre-norm residual conv block. GroupNorm (as in Stable Diffusion's VAE) matters here: without it
    the autoencoder sat on a plateau for ~50 steps before placing small objects; with it, at once."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm1, self.conv1 = _norm(channels), nn.Conv2d(channels, channels, 3, padding=1)
        self.norm2, self.conv2 = _norm(channels), nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x):
        return x + self.conv2(F.silu(self.norm2(self.conv1(F.silu(self.norm1(x))))))


class _Encoder(nn.Module):
    def __init__(self, cfg: TokenizerConfig):
        super().__init__()
        ch = cfg.channels
        layers: list[nn.Module] = [nn.Conv2d(3, ch[0], 3, padding=1)]
        prev = ch[0]
        for c in ch:
            layers += [nn.SiLU(), nn.Conv2d(prev, c, 4, stride=2, padding=1), _ResBlock(c)]
            prev = c
        layers += [_norm(prev), nn.SiLU(), nn.Conv2d(prev, 2 * cfg.latent_channels, 3, padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


class _Decoder(nn.Module):
    def __init__(self, cfg: TokenizerConfig):
        super().__init__()
        ch = list(reversed(cfg.channels))
        layers: list[nn.Module] = [nn.Conv2d(cfg.latent_channels, ch[0], 3, padding=1), _ResBlock(ch[0])]
        prev = ch[0]
        for c in ch[1:] + [ch[-1]]:
            layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(prev, c, 3, padding=1), _ResBlock(c)]
            prev = c
        layers += [_norm(prev), nn.SiLU(), nn.Conv2d(prev, 3, 3, padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, z):
        return self.net(z)


class FrameTokenizer(nn.Module):
    """KL autoencoder ``[N, H, W, 3]`` frames in [0, 1] <-> ``[N, h, w, c]`` scaled latents, plus the
    latent <-> token patchification used by the transformer."""

    def __init__(self, config: TokenizerConfig, patch_size: int = 2):
        super().__init__()
        self.config = config
        self.patch_size = patch_size
        self.encoder = _Encoder(config)
        self.decoder = _Decoder(config)
        s, c = config.image_size, config.latent_channels
        self.register_buffer("scale_factor", torch.ones(()))
        self.register_buffer("shift_factor", torch.zeros(c))
        self.register_buffer("background", torch.zeros(s, s, 3))
        self.register_buffer("has_background", torch.zeros((), dtype=torch.bool))

    # ---- shapes -------------------------------------------------------------------------------
    def _check_images(self, images: torch.Tensor) -> torch.Tensor:
        s = self.config.image_size
        if not isinstance(images, torch.Tensor) or images.ndim != 4 or tuple(images.shape[1:]) != (s, s, 3):
            shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
            raise WorldModelError(f"images have shape {shape}; expected [N, {s}, {s}, 3] (RGB frames)")
        if images.dtype == torch.uint8:
            return images.float() / 255.0
        if not images.is_floating_point():
            raise WorldModelError(f"images have dtype {images.dtype}; expected uint8 or float in [0, 1]")
        return images.float()

    def _check_latents(self, latents: torch.Tensor) -> None:
        h, c = self.config.latent_size, self.config.latent_channels
        if latents.ndim != 4 or tuple(latents.shape[1:]) != (h, h, c):
            raise WorldModelError(f"latents have shape {tuple(latents.shape)}; expected [N, {h}, {h}, {c}]")

    # ---- autoencoder --------------------------------------------------------------------------
    def posterior(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``[N, H, W, 3]`` in [0, 1] -> (mean, logvar), each ``[N, c, h, w]`` (unscaled, channels first)."""
        x = self._check_images(images).permute(0, 3, 1, 2) * 2.0 - 1.0
        moments = self.encoder(x)
        mean, logvar = moments.chunk(2, dim=1)
        return mean, logvar.clamp(-30.0, 20.0)

    @torch.no_grad()
    def encode_raw(self, images: torch.Tensor) -> torch.Tensor:
        """Posterior means before scaling: ``[N, H, W, 3] -> [N, h, w, c]`` (the input of ``fit_scale``)."""
        return self.posterior(images)[0].permute(0, 2, 3, 1)

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """``[N, H, W, 3]`` (uint8 or float in [0, 1]) -> scaled latents ``[N, h, w, c]`` (posterior mean)."""
        return (self.encode_raw(images) - self.shift_factor) * self.scale_factor

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Scaled latents ``[N, h, w, c]`` -> frames ``[N, H, W, 3]`` float in [0, 1]."""
        self._check_latents(latents)
        raw = latents / self.scale_factor + self.shift_factor
        return self._decode_raw(raw.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)

    def _decode_raw(self, z: torch.Tensor) -> torch.Tensor:
        return ((self.decoder(z) + 1.0) / 2.0).clamp(0.0, 1.0)

    # ---- training stage -----------------------------------------------------------------------
    def forward(self, images: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict]:
        """The training objective: foreground-weighted reconstruction + KL for a batch ``[N, H, W, 3]``;
        returns (loss, logs)."""
        x = self._check_images(images)
        mean, logvar = self.posterior(x)
        noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        z = mean + torch.exp(0.5 * logvar) * noise
        recon = self.decoder(z).permute(0, 2, 3, 1)  # in [-1, 1] units
        err = (recon - (x * 2.0 - 1.0)).pow(2)
        weight = self.foreground_weights(x).unsqueeze(-1)
        rec = (err * weight).sum() / (weight.sum() * 3.0)
        kl = 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).mean()
        loss = rec + self.config.kl_weight * kl
        mse = ((recon.detach().clamp(-1, 1) + 1.0) / 2.0 - x).pow(2).mean()
        return loss, {"tokenizer_loss": loss.item(), "recon": rec.item(), "kl": kl.item(), "mse": mse.item()}

    def foreground_weights(self, images: torch.Tensor) -> torch.Tensor:
        """Per-pixel loss weights ``[N, H, W]``: ``1 + foreground_weight`` where a frame differs from the
        median background, 1 elsewhere (all ones before ``fit_background``)."""
        if not bool(self.has_background):
            return torch.ones(images.shape[:3], device=images.device)
        diff = (images - self.background).abs().amax(dim=-1)
        return 1.0 + self.config.foreground_weight * (diff > self.config.foreground_threshold).float()

    def empty_frame(self) -> torch.Tensor:
        """The fitted median background as a uint8 frame ``[H, W, 3]``: the scene with nothing that moves
        (what an imagined future looks like when it has lost the agent); black before ``fit_background``."""
        return self.background.mul(255).round().to(torch.uint8)

    @torch.no_grad()
    def fit_background(self, images: torch.Tensor) -> None:
        """Store the per-pixel median of a sample of dataset frames ``[N, H, W, 3]`` as the background."""
        x = self._check_images(images)
        if x.shape[0] < 1:
            raise WorldModelError("fit_background got 0 frames; expected at least one frame of the dataset")
        self.background.copy_(x.median(dim=0).values)
        self.has_background.fill_(True)

    @torch.no_grad()
    def fit_scale(self, raw_latents: torch.Tensor) -> tuple[float, list[float]]:
        """Set shift (per-channel mean) and scale (1 / std) from unscaled latents ``[N, h, w, c]`` (from
        ``encode_raw``) so encoded latents have about zero mean and unit variance; returns them."""
        self._check_latents(raw_latents)
        if not torch.isfinite(raw_latents).all():
            raise WorldModelError("fit_scale got non-finite latents; expected finite encoder outputs")
        flat = raw_latents.reshape(-1, raw_latents.shape[-1]).float()
        shift = flat.mean(dim=0)
        std = (flat - shift).std()
        if not std > 1e-8:
            raise WorldModelError(f"latents have std {float(std):.3g}; expected a varied sample of frames to fit the scale")
        self.shift_factor.copy_(shift)
        self.scale_factor.fill_(1.0 / std)
        return float(self.scale_factor), shift.tolist()

    # ---- tokens -------------------------------------------------------------------------------
    def patchify(self, latents: torch.Tensor) -> torch.Tensor:
        """``[..., h, w, c]`` -> ``[..., (h/p)*(w/p), p*p*c]`` tokens in row-major grid order."""
        return patchify(latents, self.patch_size)

    def unpatchify(self, tokens: torch.Tensor) -> torch.Tensor:
        """Inverse of ``patchify``: ``[..., S, p*p*c]`` -> ``[..., h, w, c]``."""
        return unpatchify(tokens, self.patch_size, self.config.latent_channels)


def patchify(latents: torch.Tensor, p: int) -> torch.Tensor:
    """``[..., h, w, c]`` -> ``[..., (h/p)*(w/p), p*p*c]`` tokens in row-major grid order."""
    *lead, h, w, c = latents.shape
    x = latents.reshape(*lead, h // p, p, w // p, p, c)
    n = len(lead)
    x = x.permute(*range(n), n, n + 2, n + 1, n + 3, n + 4)
    return x.reshape(*lead, (h // p) * (w // p), p * p * c)


def unpatchify(tokens: torch.Tensor, p: int, c: int) -> torch.Tensor:
    """Inverse of ``patchify``: ``[..., S, p*p*c]`` -> ``[..., h, w, c]``."""
    *lead, s, _ = tokens.shape
    g = int(round(s**0.5))
    n = len(lead)
    x = tokens.reshape(*lead, g, g, p, p, c)
    x = x.permute(*range(n), n, n + 2, n + 1, n + 3, n + 4)
    return x.reshape(*lead, g * p, g * p, c)
