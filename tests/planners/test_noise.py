"""Power-law noise: unit variance, white at beta = 0, low-frequency (smooth) at beta = 2, seeded."""

from __future__ import annotations

import torch

from planners import powerlaw_noise


def draw(beta, horizon=32, n=4000, seed=0):
    g = torch.Generator().manual_seed(seed)
    return powerlaw_noise((n,), horizon, beta, g, torch.device("cpu"), torch.float32)


def lag_one_correlation(x):
    x = x - x.mean(dim=-1, keepdim=True)
    return float((x[:, 1:] * x[:, :-1]).mean() / (x * x).mean())


def test_unit_variance_for_every_exponent_and_horizon():
    for beta in (0.0, 1.0, 2.0, 3.0):
        for horizon in (2, 7, 16, 33):
            x = draw(beta, horizon=horizon)
            assert x.shape == (4000, horizon)
            assert abs(float(x.var()) - 1.0) < 0.12, (beta, horizon, float(x.var()))


def test_higher_exponents_are_smoother():
    white, pink, brown = (lag_one_correlation(draw(b)) for b in (0.0, 1.0, 2.0))
    assert abs(white) < 0.05
    assert white < pink < brown
    assert brown > 0.8


def test_seeded_and_shaped():
    a = draw(2.5, n=3, seed=5)
    assert torch.equal(a, draw(2.5, n=3, seed=5)) and not torch.equal(a, draw(2.5, n=3, seed=6))
    g = torch.Generator().manual_seed(0)
    out = powerlaw_noise((2, 3, 4), 1, 2.0, g, torch.device("cpu"), torch.float64)
    assert out.shape == (2, 3, 4, 1) and out.dtype == torch.float64
