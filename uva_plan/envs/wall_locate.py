"""Find the Wall agent in a frame, real or imagined: is it there, and where.

A frame-average figure (latent MSE, pixel MSE) cannot tell a blank imagination from a good one: the
agent is ~1% of the pixels. This reads the one object that matters straight from decoded pixels, so
benchmarks and tests measure what a user sees. Generic image code, no model: "redness"
(red minus the larger of green and blue) is ~0.72 on the agent and ~0 on the floor and the wall; the
agent is the redness mass inside a disc-sized window around the reddest point (so a faint smudge
elsewhere does not drag the centre), present when that mass is at least `PRESENT_FRACTION` of a
rendered disc's.
"""

from __future__ import annotations

import numpy as np

from uva_plan.envs.wall_geometry import AGENT_RADIUS, WORLD_SIZE
from uva_plan.envs.wall_render import AGENT_RGB

REDNESS_FLOOR = 0.08  # redness below this is decoder noise, not agent
PRESENT_FRACTION = 0.5  # of a rendered disc's redness mass


def _redness(frames: np.ndarray) -> np.ndarray:
    raw = np.asarray(frames)
    x = raw.astype(np.float32)
    if raw.dtype == np.uint8:
        x = x / 255.0
    r = x[..., 0] - np.maximum(x[..., 1], x[..., 2])
    return np.clip(r - REDNESS_FLOOR, 0.0, None)


def disc_mass(image_size: int) -> float:
    """Redness mass of a fully visible rendered agent at `image_size` (the presence reference)."""
    peak = (AGENT_RGB[0] - max(AGENT_RGB[1], AGENT_RGB[2])) / 255.0 - REDNESS_FLOOR
    radius_px = AGENT_RADIUS * image_size / WORLD_SIZE
    return float(np.pi * radius_px**2 * peak)


def locate_agent(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frames ``[..., S, S, 3]`` (uint8 0..255, or float in [0, 1]) -> ``(xy [..., 2], present [...], mass [...])``.

    ``xy`` is the agent centre in WORLD units (the state's coordinates; NaN where absent), ``mass`` the
    found redness mass as a fraction of a rendered disc's."""
    red = _redness(frames)
    lead, s = red.shape[:-2], red.shape[-1]
    flat = red.reshape(-1, s, s)
    scale = WORLD_SIZE / s
    half = int(np.ceil(AGENT_RADIUS / scale)) + 1
    ref = disc_mass(s)
    xy = np.full((flat.shape[0], 2), np.nan)
    mass = np.zeros(flat.shape[0])
    grid = np.arange(s, dtype=np.float64) + 0.5  # pixel centres
    for i, img in enumerate(flat):
        if img.max() <= 0:
            continue
        # the reddest disc-sized window: box-sum the redness, take its peak
        summed = _box_sum(img, half)
        cy, cx = np.unravel_index(int(np.argmax(summed)), summed.shape)
        y0, y1 = max(cy - half, 0), min(cy + half + 1, s)
        x0, x1 = max(cx - half, 0), min(cx + half + 1, s)
        win = img[y0:y1, x0:x1]
        m = float(win.sum())
        mass[i] = m / ref
        if m > 0:
            xy[i, 0] = float((win.sum(axis=0) * grid[x0:x1]).sum() / m) * scale
            xy[i, 1] = float((win.sum(axis=1) * grid[y0:y1]).sum() / m) * scale
    present = mass >= PRESENT_FRACTION
    xy[~present] = np.nan
    return xy.reshape(*lead, 2), present.reshape(lead), mass.reshape(lead)


def _box_sum(img: np.ndarray, half: int) -> np.ndarray:
    """Sum over the (2*half+1)^2 window around every pixel (zero padding), via an integral image."""
    k = 2 * half + 1
    padded = np.pad(img, ((half + 1, half), (half + 1, half)))  # [S, S] out
    integral = padded.cumsum(0).cumsum(1)
    return integral[k:, k:] - integral[:-k, k:] - integral[k:, :-k] + integral[:-k, :-k]
