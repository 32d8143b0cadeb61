"""The PushT agent and block detector that imagination figures rest on: accurate on the simulator's own
frames (validated first, so an error on imagined frames is the model's, not the detector's), blind to a
blank background and the goal marker, and indifferent to the input's dtype and leading shape."""

import math

import cv2
import numpy as np
import pytest

from uva_plan.envs import make_env
from uva_plan.envs.pusht import wrap_angle
from uva_plan.envs.pusht_locate import locate_pusht, pose_errors, validate_on_true_frames, validation_states

AWAY = -400.0  # a body here is off the canvas


@pytest.fixture(scope="module")
def states():
    return validation_states(rollouts=3, steps=40, randoms=60, seed=1)


@pytest.fixture(scope="module")
def env64():
    return make_env("pusht", image_size=64)


def _state(agent, block_xy, angle):
    return np.array([*agent, *block_xy, angle, 0, 0, 0, 0, 0], dtype=np.float64)


def _errors(found, states):
    e = pose_errors(found, states)
    return e["agent"], e["block"], e["angle"]


def test_accurate_on_true_frames_at_64(states):
    # Measured on 500 states (python -m uva_plan.envs.pusht_locate): agent median 0.26 / p90 0.60,
    # block 0.95 / 1.76 state units, angle 0.011 / 0.031 rad, everything present.
    f = validate_on_true_frames(states, image_size=64)
    assert f["agent_present"] >= 0.99 and f["block_present"] >= 0.99
    assert f["agent_median"] <= 0.6 and f["agent_p90"] <= 1.2
    assert f["block_median"] <= 1.6 and f["block_p90"] <= 3.0
    assert f["angle_median"] <= 0.025 and f["angle_p90"] <= 0.06


def test_accurate_at_another_size(states):
    # UVA's own PushT data is 96x96; measured there: agent 0.23 / 0.55, block 0.84 / 1.53, angle 0.008 / 0.024.
    f = validate_on_true_frames(states[::3], image_size=96)
    assert f["agent_present"] >= 0.99 and f["block_present"] >= 0.99
    assert f["agent_median"] <= 0.6 and f["block_median"] <= 1.6 and f["angle_median"] <= 0.025


def test_blank_background_and_goal_marker_have_nothing(env64):
    blank = env64.render_state(_state((AWAY, AWAY), (AWAY, AWAY), 0.0))
    only_agent = env64.render_state(_state((200.0, 300.0), (AWAY, AWAY), 0.0))
    only_block = env64.render_state(_state((AWAY, AWAY), (150.0, 200.0), 2.0))
    found = locate_pusht(np.stack([blank, only_agent, only_block]))
    assert found.agent_present.tolist() == [False, True, False]
    assert found.block_present.tolist() == [False, False, True]
    assert np.isnan(found.agent_xy[[0, 2]]).all() and np.isnan(found.block_xy[:2]).all()
    assert np.isnan(found.block_angle[:2]).all()
    assert found.block_mass[0] < 0.05 and found.agent_mass[0] < 0.05  # the green goal T is not block
    assert np.hypot(*(found.agent_xy[1] - [200.0, 300.0])) < 1.0
    assert np.hypot(*(found.block_xy[2] - [150.0, 200.0])) < 2.0
    assert abs(wrap_angle(found.block_angle[2] - 2.0)) < 0.03


def test_uint8_and_float_frames_agree(states, env64):
    frames = np.stack([env64.render_state(s) for s in states[:20]])
    a, b = locate_pusht(frames), locate_pusht(frames.astype(np.float32) / 255.0)
    for name in ("agent_xy", "block_xy", "block_angle", "agent_mass", "block_mass"):
        assert np.allclose(getattr(a, name), getattr(b, name), atol=1e-3), name


def test_leading_shapes_are_kept(states, env64):
    frames = np.stack([env64.render_state(s) for s in states[:12]])
    flat = locate_pusht(frames)
    assert flat.agent_xy.shape == (12, 2) and flat.block_angle.shape == (12,)
    nested = locate_pusht(frames.reshape(3, 4, 64, 64, 3))
    assert nested.agent_xy.shape == (3, 4, 2) and nested.block_xy.shape == (3, 4, 2)
    assert nested.agent_present.shape == (3, 4) and nested.block_angle.shape == (3, 4)
    assert np.allclose(nested.block_xy.reshape(12, 2), flat.block_xy)
    assert np.allclose(nested.block_angle.reshape(12), flat.block_angle)
    single = locate_pusht(frames[0])
    assert single.agent_xy.shape == (2,) and single.block_present.shape == ()
    assert np.allclose(single.block_xy, flat.block_xy[0])
    with pytest.raises(ValueError):
        locate_pusht(frames[..., :2])


def test_agent_drawn_on_top_of_the_block(env64):
    """The agent is drawn over the T: the hidden pixels must not pull the block's pose, even when they
    hide a stem or crossbar end (which can swap the long axis)."""
    rows = []
    for i, angle in enumerate(np.linspace(0.3, 2 * math.pi + 0.3, 12, endpoint=False)):
        lx, ly = [(0.0, 15.0), (45.0, 15.0), (0.0, 100.0), (0.0, 60.0)][i % 4]  # on the block, its frame
        c, s = math.cos(angle), math.sin(angle)
        block = np.array([240.0, 260.0])
        rows.append(_state(block + [c * lx - s * ly, s * lx + c * ly], block, angle))
    states = np.stack(rows)
    found = locate_pusht(np.stack([env64.render_state(s) for s in states]))
    agent, block, angle = _errors(found, states)
    assert found.agent_present.all() and found.block_present.all()
    assert agent.max() < 1.2  # measured: max 0.62
    assert block.max() < 6.0 and np.median(block) < 2.5  # measured: max 3.3, median 1.1
    assert angle.max() < 0.1 and np.median(angle) < 0.04  # measured: max 0.037, median 0.016


def test_blurred_frames_still_read(states, env64):
    """Decoded imaginations are blurry: a 1-pixel Gaussian blur keeps the reads within a few units."""
    frames = np.stack([cv2.GaussianBlur(env64.render_state(s), (0, 0), 1.0) for s in states[:120]])
    found = locate_pusht(frames)
    agent, block, angle = _errors(found, states[:120])
    assert found.agent_present.mean() >= 0.99 and found.block_present.mean() >= 0.99
    # measured: medians agent 0.54, block 1.03, angle 0.014
    assert np.median(agent) < 1.2 and np.median(block) < 2.0 and np.median(angle) < 0.03
