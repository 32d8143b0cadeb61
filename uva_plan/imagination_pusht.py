"""The imagination measures for PushT: the agent AND the block, since pushing is what the planner needs.

Same windows, sampling and references as Wall's (`imagination.measure_imagination` dispatches here on
``config.env_name``); the objects are read from decoded frames by `pusht_locate.locate_pusht`
(validated on true frames first, `true_frame_check`). Positions are PushT state units (the workspace
is 512 across: 8 units = 1 px at 64x64); block angles are reported in DEGREES (absolute wrapped error).

The block has two position errors: of the pose point state[2:4] (what the env's goal test uses), and of
the T's mass centre. The pose point sits ~41 units from the mass centre along the stem, so a blurred
T whose angle cannot be read is ~50 units off even where its mass is in the right place; the centre
error tells the two apart.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from uva_plan.envs.pusht import WORKSPACE, wrap_angle
from uva_plan.envs.pusht_locate import CENTROID_LOCAL_Y, locate_pusht
from uva_plan.imagination import Episode, HorizonStats, ImaginationReport, SamplingSettings, imagine_windows
from uva_plan.proprio import agent_of_proprio, object_of_proprio


@dataclass
class PushTHorizonStats(HorizonStats):
    """Wall's agent fields (``present``, ``median_error``, ...) plus the block's; each error a median,
    over frames where the imagined object is present, beside the same two references."""

    block_present: float
    block_error: float  # state units, the point state[2:4] names
    block_copy_last_error: float
    block_tokenizer_error: float
    block_centre_error: float  # state units, the T's mass centre (angle-free)
    block_centre_copy_last_error: float
    block_centre_tokenizer_error: float
    angle_error_deg: float  # |wrapped block angle error|, degrees
    angle_copy_last_error_deg: float
    angle_tokenizer_error_deg: float
    # a proprio model's own prediction of the agent (``train --proprio``) and an object-pose model's of the
    # block (``--object-pose``), not read from frames; NaN without them
    predicted_agent_error: float = float("nan")
    predicted_block_error: float = float("nan")
    predicted_angle_error_deg: float = float("nan")


def _median(x: np.ndarray) -> float:
    """Median of the finite values; NaN (no warning) when there are none (object never found)."""
    x = x[np.isfinite(x)]
    return float(np.median(x)) if x.size else float("nan")


def _centre(xy: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """The T's mass centre ``[..., 2]`` (as `locate_pusht` reads it) of pose points and angles."""
    return xy + CENTROID_LOCAL_Y * np.stack([-np.sin(angle), np.cos(angle)], axis=-1)


def _distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.hypot(a[..., 0] - b[..., 0], a[..., 1] - b[..., 1])


def _errors(agent_xy, block_xy, block_angle, states: np.ndarray) -> dict[str, np.ndarray]:
    """Agent / block pose-point / block-centre distances (state units) and block angle error (degrees)
    against ``states [..., 10]``; NaN where the object was not found."""
    return {
        "agent": _distance(agent_xy, states[..., 0:2]),
        "block": _distance(block_xy, states[..., 2:4]),
        "centre": _distance(_centre(block_xy, block_angle), _centre(states[..., 2:4], states[..., 4])),
        "angle": np.degrees(np.abs(wrap_angle(block_angle - states[..., 4]))),
    }


def _found_errors(found, states: np.ndarray) -> dict[str, np.ndarray]:
    return _errors(found.agent_xy, found.block_xy, found.block_angle, states)


def measure_pusht(model, episodes: list[Episode], settings: SamplingSettings, n_chunks: int = 1, every: int = 8,
                  seed: int = 0) -> list[ImaginationReport]:
    """Per episode kind and horizon: agent and block presence, their position errors and the block's
    angle error against the simulator, beside the tokenizer round trip and the copy-last baseline."""
    got = imagine_windows(model, episodes, settings, n_chunks, every, seed)
    wins, offsets, kinds = got["wins"], got["offsets"], got["kinds"]
    true = np.stack([episodes[e].states[t + offsets] for e, t in wins])  # [N, H, 10]
    last = np.stack([episodes[e].states[t] for e, t in wins])[:, None].repeat(len(offsets), axis=1)
    im = locate_pusht(got["imagined"])
    im_err, rt_err = _found_errors(im, true), _found_errors(locate_pusht(got["round_trip"]), true)
    copy_err = _errors(last[..., 0:2], last[..., 2:4], last[..., 4], true)
    proprio = None if got["proprio"] is None else torch.from_numpy(got["proprio"])
    agent = agent_of_proprio(model, proprio)
    agent_err = None if agent is None else _distance(agent.numpy() * WORKSPACE, true[..., 0:2])
    pose = object_of_proprio(model, proprio)
    pred_err = None if pose is None else _errors(true[..., 0:2], pose[..., :2].numpy(), pose[..., 2].numpy(), true)
    reports = []
    for kind in sorted(set(kinds)):
        sel = kinds == kind
        rep = ImaginationReport(settings.name, kind)
        for j, h in enumerate(offsets):
            agent, block = im.agent_present[sel, j], im.block_present[sel, j]
            rep.horizons.append(PushTHorizonStats(
                steps=int(h), present=float(agent.mean()),
                median_error=_median(im_err["agent"][sel, j][agent]),
                copy_last_error=_median(copy_err["agent"][sel, j]),
                tokenizer_error=_median(rt_err["agent"][sel, j]),
                n=int(sel.sum()),
                block_present=float(block.mean()),
                block_error=_median(im_err["block"][sel, j][block]),
                block_copy_last_error=_median(copy_err["block"][sel, j]),
                block_tokenizer_error=_median(rt_err["block"][sel, j]),
                block_centre_error=_median(im_err["centre"][sel, j][block]),
                block_centre_copy_last_error=_median(copy_err["centre"][sel, j]),
                block_centre_tokenizer_error=_median(rt_err["centre"][sel, j]),
                angle_error_deg=_median(im_err["angle"][sel, j][block]),
                angle_copy_last_error_deg=_median(copy_err["angle"][sel, j]),
                angle_tokenizer_error_deg=_median(rt_err["angle"][sel, j]),
                **({} if agent_err is None else {"predicted_agent_error": _median(agent_err[sel, j])}),
                **({} if pred_err is None else {"predicted_block_error": _median(pred_err["block"][sel, j]),
                                                "predicted_angle_error_deg": _median(pred_err["angle"][sel, j])}),
            ))
        reports.append(rep)
    return reports


def true_frame_check(episodes: list[Episode]) -> dict[str, float]:
    """The locator on the episodes' TRUE frames (the measure's own error floor): presence rates and the
    median agent / block errors (state units) and angle error (degrees)."""
    frames = np.concatenate([ep.frames for ep in episodes])
    states = np.concatenate([ep.states for ep in episodes])
    found = locate_pusht(frames)
    err = _found_errors(found, states)
    return {"frames": len(frames), "agent_present": float(found.agent_present.mean()),
            "block_present": float(found.block_present.mean()), "agent_error": _median(err["agent"]),
            "block_error": _median(err["block"]), "block_centre_error": _median(err["centre"]),
            "angle_error_deg": _median(err["angle"])}


__all__ = ["PushTHorizonStats", "measure_pusht", "true_frame_check"]
