"""The agent detector that every imagination figure rests on: exact on rendered frames, blind to
blanks and faint smudges, and not dragged by a ghost elsewhere."""

import numpy as np

from uva_plan.envs import make_env
from uva_plan.envs.wall_locate import locate_agent


def _frames(n=40, seed=0):
    env = make_env("wall")
    frames, states = [], []
    for i in range(n):
        obs, info = env.reset(seed=seed + i)
        frames.append(obs)
        states.append(info["state"])
    return np.stack(frames), np.stack(states)


def test_finds_the_rendered_agent_within_a_tenth_of_a_pixel():
    frames, states = _frames()
    xy, present, mass = locate_agent(frames)
    assert present.all()
    assert np.abs(xy - states[:, :2]).max() < 0.1
    assert np.allclose(mass, 1.0, atol=0.1)


def test_float_frames_read_like_uint8():
    frames, _ = _frames(5)
    a, _, _ = locate_agent(frames)
    b, _, _ = locate_agent(frames.astype(np.float32) / 255.0)
    assert np.allclose(a, b)


def test_a_blank_frame_or_a_faint_smudge_has_no_agent():
    env = make_env("wall")
    _, info = env.reset(seed=3)
    blank = env._renderer.background(info["state"][2]).astype(np.float32)
    frame = env.render_state(info["state"]).astype(np.float32)
    smudge = blank + 0.3 * (frame - blank)  # a washed-out agent, as a blurry imagination draws it
    xy, present, mass = locate_agent(np.stack([blank, smudge]).astype(np.uint8))
    assert not present.any()
    assert np.isnan(xy).all()
    assert mass[1] < 0.5


def test_a_faint_ghost_elsewhere_does_not_move_the_centre():
    env = make_env("wall")
    state = np.array([12.0, 20.0, 32.0])
    ghost_state = np.array([52.0, 50.0, 32.0])
    frame = env.render_state(state).astype(np.float32)
    ghost = env.render_state(ghost_state).astype(np.float32)
    blank = env._renderer.background(32.0).astype(np.float32)
    mixed = frame + 0.3 * (ghost - blank)
    xy, present, _ = locate_agent(np.clip(mixed, 0, 255).astype(np.uint8))
    assert present
    assert np.hypot(*(xy - state[:2])) < 0.2
