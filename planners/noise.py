"""Power-law ("colored") Gaussian noise along the time axis, for iCEM.

Written here rather than taken from the `colorednoise` package (the one iCEM's authors used) because
that package is numpy-only: planners need a seeded torch.Generator on the objective's device and
batched shapes. Same algorithm (Timmer & Koenig 1995): random Fourier coefficients scaled by f^(-beta/2),
normalised to exactly unit variance per time step in expectation.
"""

from __future__ import annotations

import functools
import math

import torch


@functools.lru_cache(maxsize=64)
def _spectrum(horizon: int, beta: float, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """[F, 2] multipliers of the (real, imag) Gaussian Fourier coefficients, F = H // 2 + 1, such that
    irfft gives unit-variance noise with power ~ 1/f^beta. Cached: iCEM asks for it every iteration."""
    freqs = torch.fft.rfftfreq(horizon, dtype=torch.float64)
    scale = freqs.clamp(min=1.0 / horizon).pow(-beta / 2.0)
    mult = torch.stack([scale, scale], dim=-1)
    # The DC term (and the Nyquist term for even H) must be real; their real part gets sqrt(2).
    mult[0] = torch.tensor([math.sqrt(2.0) * scale[0], 0.0])
    if horizon % 2 == 0:
        mult[-1] = torch.tensor([math.sqrt(2.0) * scale[-1], 0.0])
    # Exact standard deviation of each irfft output sample: the DC (and, for even H, the Nyquist) term
    # contributes 2 s^2 / H^2, every other frequency 4 s^2 / H^2. (`colorednoise` uses an
    # approximation of this that is off by up to 4x for short horizons such as H = 2.)
    weights = torch.full_like(scale, 4.0)
    weights[0] = 2.0
    if horizon % 2 == 0:
        weights[-1] = 2.0
    sigma = math.sqrt(float((weights * scale * scale).sum())) / horizon
    return (mult / sigma).to(device=device, dtype=dtype)


def powerlaw_noise(
    shape: tuple[int, ...],
    horizon: int,
    beta: float,
    generator: torch.Generator,
    device: torch.device,
    dtype: torch.dtype,
) -> torch.Tensor:
    """Noise [*shape, H] with power spectrum ~ 1/f^beta along the last axis and unit variance.

    beta = 0 is white noise; beta = 2 (Brownian-like) gives smooth, low-frequency action sequences,
    which is what iCEM needs for manipulation (the paper uses 2-3).
    """
    if horizon == 1 or beta == 0:
        return torch.randn((*shape, horizon), generator=generator, device=device, dtype=dtype)
    # Work in at least float32: the FFT has no half-precision CPU kernel and needs the precision.
    work = torch.promote_types(dtype, torch.float32)
    mult = _spectrum(horizon, float(beta), device, work)
    coeffs = torch.randn((*shape, mult.shape[0], 2), generator=generator, device=device, dtype=work) * mult
    signal = torch.fft.irfft(torch.view_as_complex(coeffs), n=horizon, dim=-1)
    return signal if signal.dtype == dtype else signal.to(dtype)
