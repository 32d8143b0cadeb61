"""Find the PushT agent and block in a frame, real or imagined: are they there, and where.

The PushT counterpart of `wall_locate`: a frame-average figure cannot tell whether an imagined frame
shows the T where the simulator puts it, so this reads the two objects straight from decoded pixels.
Generic image code, no model:

- Colour unmixing against the fixed background (floor, walls, the light-green goal T, rendered once
  per size): each pixel's difference from it is solved as a mix of the agent's blue, the block's grey
  and green-minus-white, so the goal marker (even its blurred edges) is not block, and a block over the
  marker or an agent over the block still reads as a coverage fraction. Linear, so blurred colours
  degrade gracefully; a frame's median difference (an overall tint) is removed first, and fractions
  below `FLOOR` are decoder noise.
- Agent: the blue mass in a disc-sized window around the bluest point (as in `wall_locate`).
- Block: image moments of the grey mass within the T's reach of its centroid. A symmetric blur keeps
  the centroid, the principal axes and the third moments, so moments suit blurry imaginations: the
  long axis is the stem, the third moment along it says which end holds the crossbar (the full angle),
  and the body's position (state[2:4], the middle of the crossbar's outer edge) is the centroid minus
  the rotated centroid offset. Pixels under the agent (drawn on top of the T; its outline also mixes
  into grey) and beyond the canvas are unknown: filled from the T drawn at the current estimate, the
  moments re-read a few times; a large hidden part can swap the long axis, so each quarter turn is
  tried first and the one that best redraws the seen pixels kept.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from uva_plan.envs.pusht import AGENT_RADIUS, WORKSPACE

AGENT_RGB = (78, 126, 255)  # gym-pusht fills RoyalBlue / LightSlateGray shapes 1.2x lighter
BLOCK_RGB = (143, 163, 184)
GOAL_RGB = (144, 238, 144)  # LightGreen, the goal marker
FLOOR = 0.1  # fractions below this are decoder noise
PRESENT_FRACTION = 0.5  # of a rendered object's mass
AGENT_READ = 0.86  # a rendered disc's blue mass / its area (the darker outline reads ~0.8 blue)
# The T as it reads after unmixing, in the block's frame (x0, x1, y0, y1): gym-pusht's bars plus their
# 2-unit outline, whose darker grey reads as more than full cover, so 3.25 (matches the read mass at
# S=64 and 96 within 2%).
OUTLINE = 3.25
T_BARS = ((-60 - OUTLINE, 60 + OUTLINE, -OUTLINE, 30 + OUTLINE), (-15 - OUTLINE, 15 + OUTLINE, 30.0, 120 + OUTLINE))
T_AREA = (120 + 2 * OUTLINE) * (30 + 2 * OUTLINE) + (30 + 2 * OUTLINE) * 90
T_REACH = 92.0  # farthest drawn T point from its centroid (84) plus a margin for blur
CENTROID_LOCAL_Y = 41.2  # the drawn T's mass centroid in the block's frame, (0, this); measured at S=64 and 96
HYPOTHESIS_READS = 3  # fill-and-reads of each quarter-turn hypothesis before they are compared
ITERATIONS = 6  # moment re-reads with the unknown pixels filled from the current estimate


@dataclass(frozen=True)
class PushTLocation:
    """Per frame (leading shape ``[...]``): positions in state units, NaN where absent; masses as a
    fraction of a fully visible rendered object's."""

    agent_xy: np.ndarray  # [..., 2]
    agent_present: np.ndarray  # [...] bool
    agent_mass: np.ndarray  # [...]
    block_xy: np.ndarray  # [..., 2], the point state[2:4] names
    block_angle: np.ndarray  # [...], radians in [0, 2 pi) like state[4]
    block_present: np.ndarray  # [...] bool
    block_mass: np.ndarray  # [...]


@functools.lru_cache(maxsize=8)
def _unmixing(size: int) -> tuple[np.ndarray, np.ndarray]:
    """The background ``[S, S, 3]`` and each pixel's ``[2, 3]`` unmixing rows (block, agent) of the
    solve against grey, blue and green-minus-white."""
    from uva_plan.envs import make_env

    away = np.array([-400.0, -400.0, -400.0, -400.0, 0, 0, 0, 0, 0, 0])  # both bodies off the canvas
    bg = make_env("pusht", image_size=size).render_state(away).astype(np.float64) / 255.0
    goal = np.broadcast_to((np.asarray(GOAL_RGB) - 255.0) / 255.0, bg.shape)
    ends = np.stack([np.asarray(BLOCK_RGB) / 255.0 - bg, np.asarray(AGENT_RGB) / 255.0 - bg, goal], axis=-1)
    pinv = np.linalg.inv(ends)[..., :2, :]
    return bg.astype(np.float32), pinv.astype(np.float32)


def fractions(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Frames ``[..., S, S, 3]`` -> (block, agent) coverage fractions, each ``[..., S, S]`` in [0, 1]."""
    raw = np.asarray(frames)
    x = raw.astype(np.float32) / (255.0 if raw.dtype == np.uint8 else 1.0)
    if x.ndim < 3 or x.shape[-1] != 3 or x.shape[-2] != x.shape[-3]:
        raise ValueError(f"expected frames [..., S, S, 3], got shape {raw.shape}")
    bg, pinv = _unmixing(x.shape[-2])
    diff = x - bg
    # A decoder's overall tint: the median pixel is floor, whatever the objects cover.
    diff -= np.median(diff.reshape(*diff.shape[:-3], diff.shape[-2] ** 2, 3), axis=-2)[..., None, None, :]
    out = []
    for k in range(2):  # block, agent
        mix = diff[..., 0] * pinv[:, :, k, 0] + diff[..., 1] * pinv[:, :, k, 1] + diff[..., 2] * pinv[:, :, k, 2]
        out.append(np.where(mix >= FLOOR, np.minimum(mix, 1.0), 0.0).astype(np.float32))
    return out[0], out[1]


def _peak(img: np.ndarray, half: int) -> np.ndarray:
    """Integer pixel ``[N, 2]`` (row, col) of each frame's heaviest (2*half+1)^2 window of ``[N, S, S]``
    (box sums from an integral image, zero padding)."""
    k = 2 * half + 1
    c = np.pad(img, ((0, 0), (half + 1, half), (half + 1, half))).cumsum(1).cumsum(2)
    summed = c[:, k:, k:] - c[:, :-k, k:] - c[:, k:, :-k] + c[:, :-k, :-k]
    flat = summed.reshape(len(img), summed.shape[1] * summed.shape[2]).argmax(axis=1)
    return np.stack(np.unravel_index(flat, img.shape[1:]), axis=1)


def _windows(img: np.ndarray, centre: np.ndarray, half: int, pad_value: float) -> tuple[np.ndarray, ...]:
    """Windows ``[N, W, W]`` of ``img [N, S, S]`` around integer pixels ``centre [N, 2]`` (row, col),
    padded with `pad_value` beyond the canvas, and their pixel rows and columns ``[N, W]``."""
    padded = np.pad(img, ((0, 0), (half, half), (half, half)), constant_values=pad_value)
    rows, cols = centre[:, 0:1] + np.arange(-half, half + 1), centre[:, 1:2] + np.arange(-half, half + 1)
    win = padded[np.arange(len(img))[:, None, None], rows[:, :, None] + half, cols[:, None, :] + half]
    return win, rows, cols


def _locate_agent(agent: np.ndarray, scale: float):
    half = int(math.ceil(AGENT_RADIUS / scale)) + 1
    win, rows, cols = _windows(agent, _peak(agent, half), half, 0.0)
    mass = win.sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        x = (win.sum(axis=1) * (cols + 0.5)).sum(axis=1) / mass * scale
        y = (win.sum(axis=2) * (rows + 0.5)).sum(axis=1) / mass * scale
    mass = mass / (AGENT_READ * math.pi * AGENT_RADIUS**2 / scale**2)
    present = mass >= PRESENT_FRACTION
    xy = np.where(present[:, None], np.stack([x, y], axis=1), np.nan)
    return xy, present, mass


def t_coverage(px: np.ndarray, py: np.ndarray, pose: np.ndarray, scale: float, k: int | None = None) -> np.ndarray:
    """Fraction of each pixel (centres ``px, py`` in state units, ``[N, ...]``) that the drawn T covers
    at ``pose [N, 3]`` (x, y, angle), by sampling ``k x k`` points in the pixel."""
    k = int(np.clip(math.ceil(scale / 2), 1, 4)) if k is None else k
    sub = ((np.arange(k) + 0.5) / k - 0.5) * scale
    extra = (1,) * (px.ndim - 1)
    c = np.cos(pose[:, 2]).reshape(-1, *extra, 1, 1)
    s = np.sin(pose[:, 2]).reshape(-1, *extra, 1, 1)
    dx = px[..., None, None] + sub[None, :] - pose[:, 0].reshape(-1, *extra, 1, 1)
    dy = py[..., None, None] + sub[:, None] - pose[:, 1].reshape(-1, *extra, 1, 1)
    lx, ly = c * dx + s * dy, -s * dx + c * dy  # the block's frame
    inside = np.zeros(lx.shape, dtype=bool)
    for x0, x1, y0, y1 in T_BARS:
        inside |= (lx >= x0) & (lx <= x1) & (ly >= y0) & (ly <= y1)
    return inside.mean(axis=(-2, -1))


def _pose_from_moments(w: np.ndarray, xs: np.ndarray, ys: np.ndarray):
    """Mass ``[N]``, centroid ``[N, 2]`` and angle ``[N]`` from weights ``w [N, W, W]`` on pixels at
    columns ``xs [N, W]`` and rows ``ys [N, W]`` (state units); separable sums, so cheap."""
    m = w.sum(axis=(1, 2))
    safe = np.maximum(m, 1e-9)
    px, py = w.sum(axis=1), w.sum(axis=2)  # per column, per row
    dx = xs - ((px * xs).sum(1) / safe)[:, None]
    dy = ys - ((py * ys).sum(1) / safe)[:, None]
    wdx, wdx2 = (w @ dx[:, :, None])[..., 0], (w @ (dx * dx)[:, :, None])[..., 0]  # per row
    sxx, syy, sxy = (px * dx**2).sum(1), (py * dy**2).sum(1), (wdx * dy).sum(1)
    axis = 0.5 * np.arctan2(2 * sxy, sxx - syy)  # the long axis: the stem's direction, up to its sign
    ux, uy = np.cos(axis), np.sin(axis)
    skew = (ux**3 * (px * dx**3).sum(1) + 3 * ux**2 * uy * (wdx2 * dy).sum(1)
            + 3 * ux * uy**2 * (wdx * dy**2).sum(1) + uy**3 * (py * dy**3).sum(1))
    sign = np.where(skew >= 0, 1.0, -1.0)  # the stem is the long tail: the block's +y points along it
    angle = np.arctan2(-ux * sign, uy * sign)  # local +y = (-sin a, cos a)
    return m, np.stack([xs[:, 0] - dx[:, 0], ys[:, 0] - dy[:, 0]], 1), angle


def _pose(centroid: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """The pose ``[N, 3]`` (state[2:5]) of a T with this mass centroid and angle."""
    body = centroid - CENTROID_LOCAL_Y * np.stack([-np.sin(angle), np.cos(angle)], axis=1)
    return np.concatenate([body, angle[:, None]], axis=1)


def _near(xs, ys, centroid):
    """Pixels ``[N, W, W]`` within the T's reach of ``centroid``."""
    return ((xs - centroid[:, :1]) ** 2)[:, None, :] + ((ys - centroid[:, 1:]) ** 2)[:, :, None] <= T_REACH**2


def _fill_and_read(win, unk, xs, ys, centroid, angle, scale, keep_angle=False):
    """One read with the hidden pixels filled from the T drawn at the current estimate (the angle too,
    unless `keep_angle`)."""
    near = _near(xs, ys, centroid)
    filled = win * near
    at = np.nonzero(near & (unk > 0))
    if at[0].size:
        px, py = xs[at[0], at[2], None], ys[at[0], at[1], None]
        filled[at] += t_coverage(px, py, _pose(centroid, angle)[at[0]], scale)[:, 0] * unk[at]
    _, centroid, read = _pose_from_moments(filled, xs, ys)
    return centroid, angle if keep_angle else read


def _locate_block(block: np.ndarray, unknown: np.ndarray, scale: float):
    """Block pose from coverage ``block [N, S, S]``; ``unknown [N, S, S]`` marks pixels hidden by the agent."""
    seen = block * (1.0 - unknown)
    half = int(math.ceil((T_REACH + 50.0) / scale))
    centre = _peak(seen, max(1, int(round(40.0 / scale))))
    win, rows, cols = _windows(seen, centre, half, 0.0)
    unk, _, _ = _windows(unknown, centre, half, 1.0)  # beyond the canvas is unknown too
    x, y = (cols + 0.5) * scale, (rows + 0.5) * scale
    # The first read: the whole window; the second inside the T's reach of the centroid.
    _, centroid, angle = _pose_from_moments(win, x, y)
    near = _near(x, y, centroid)
    visible, centroid, angle = _pose_from_moments(win * near, x, y)
    hidden = np.nonzero((near & (unk > 0)).any(axis=(1, 2)) & (visible > 0))[0]
    if hidden.size:
        h = (win[hidden], unk[hidden], x[hidden], y[hidden])
        c, a = centroid[hidden], angle[hidden]
        # A hidden stem end or crossbar end can swap the long axis or the skew: try each quarter turn
        # (angle held, centroid re-read with fills), keep the one whose drawn T best matches the seen
        # pixels, then let the angle move too.
        cs, turns, errors = np.empty((4, *c.shape)), np.empty((4, *a.shape)), np.empty((4, *a.shape))
        for turn in range(4):
            cs[turn], turns[turn] = c, a + turn * math.pi / 2
            for _ in range(HYPOTHESIS_READS):
                cs[turn], turns[turn] = _fill_and_read(*h, cs[turn], turns[turn], scale, keep_angle=True)
            model = t_coverage(h[2][:, None, :], h[3][:, :, None], _pose(cs[turn], turns[turn]), scale, k=2)
            errors[turn] = (((model - h[0]) * (1.0 - h[1])) ** 2).sum(axis=(1, 2))
        best, pick = np.argmin(errors, axis=0), np.arange(len(hidden))
        c, a = cs[best, pick], turns[best, pick]
        for _ in range(ITERATIONS):
            c, a = _fill_and_read(*h, c, a, scale)
        centroid[hidden], angle[hidden] = c, a
    mass_fraction = visible / (T_AREA / scale**2)
    present = mass_fraction >= PRESENT_FRACTION
    xy = np.where(present[:, None], _pose(centroid, angle)[:, :2], np.nan)
    angle = np.where(present, np.mod(angle, 2 * math.pi), np.nan)
    return xy, angle, present, mass_fraction


def locate_pusht(frames: np.ndarray) -> PushTLocation:
    """Frames ``[..., S, S, 3]`` (uint8 0..255, or float in [0, 1]) -> agent and block per frame."""
    block, agent = fractions(frames)
    lead, s = block.shape[:-2], block.shape[-1]
    block, agent = block.reshape(-1, s, s), agent.reshape(-1, s, s)
    scale = WORKSPACE / s
    a_xy, a_present, a_mass = _locate_agent(agent, scale)
    # The agent's disc (plus a pixel) hides the block beneath it and mixes its outline into grey.
    grid, (ax, ay) = (np.arange(s) + 0.5) * scale, np.where(a_present[:, None], a_xy, -1e6).T[:, :, None, None]
    unknown = ((grid - ax) ** 2 + (grid[:, None] - ay) ** 2 <= (AGENT_RADIUS + scale) ** 2).astype(np.float32)
    b_xy, b_angle, b_present, b_mass = _locate_block(block, unknown, scale)
    return PushTLocation(
        agent_xy=a_xy.reshape(*lead, 2),
        agent_present=a_present.reshape(lead),
        agent_mass=a_mass.reshape(lead),
        block_xy=b_xy.reshape(*lead, 2),
        block_angle=b_angle.reshape(lead),
        block_present=b_present.reshape(lead),
        block_mass=b_mass.reshape(lead),
    )


def validation_states(rollouts: int = 6, steps: int = 50, randoms: int = 200, seed: int = 0) -> np.ndarray:
    """``[rollouts * steps + randoms, 10]`` states: noisy pusher rollouts (the agent often touching the
    block, the block pushed about) and gym-pusht's random starts (any angle, the T partly off-canvas)."""
    from uva_plan.envs import make_env
    from uva_plan.envs.policies import make_policy

    env, out = make_env("pusht"), []
    for r in range(rollouts):
        state = env.reset(seed=seed + r)[1]["state"]
        policy = make_policy("pusht", "pusher", seed=seed + r)
        policy.reset(state)
        for _ in range(steps):
            state = env.step_state(policy(state))
            out.append(state)
    out += [env.reset(seed=seed + 10_000 + i)[1]["state"] for i in range(randoms)]
    return np.stack(out)


def pose_errors(found, states: np.ndarray) -> dict[str, np.ndarray]:
    """Agent and block position errors (state units) and block angle error (rad) of ``found`` (a
    `locate_pusht` result) against ``states [N, 10]``; NaN where an object was not found."""
    from uva_plan.envs.pusht import wrap_angle

    return {
        "agent": np.hypot(*(found.agent_xy - states[:, 0:2]).T),
        "block": np.hypot(*(found.block_xy - states[:, 2:4]).T),
        "angle": np.abs(wrap_angle(found.block_angle - states[:, 4])),
    }


def validate_on_true_frames(states: np.ndarray, image_size: int = 64) -> dict:
    """`locate_pusht` on the simulator's own frames of ``states [N, 10]``: presence rates and the
    median / 90th percentile / max of the agent and block position errors (state units) and the block
    angle error (rad)."""
    from uva_plan.envs import make_env

    env = make_env("pusht", image_size=image_size)
    found = locate_pusht(np.stack([env.render_state(s) for s in states]))
    errors = pose_errors(found, states)
    out = {"frames": len(states), "agent_present": float(found.agent_present.mean()),
           "block_present": float(found.block_present.mean())}
    for name, e in errors.items():
        out.update({f"{name}_median": float(np.nanmedian(e)), f"{name}_p90": float(np.nanpercentile(e, 90)),
                    f"{name}_max": float(np.nanmax(e))})
    return out


if __name__ == "__main__":  # python -m uva_plan.envs.pusht_locate: the validation figures
    import time

    states = validation_states()
    for size in (64, 96):
        start = time.perf_counter()
        figures = validate_on_true_frames(states, size)
        print(f"S={size} ({time.perf_counter() - start:.1f} s with rendering):",
              ", ".join(f"{k} {v:.3g}" for k, v in figures.items()))
