"""The imagination measures can tell a model that follows the simulator from one that ignores the
actions: checked with two stand-in models whose answers are known (Wall, and PushT's agent and block),
plus the PushT path end to end on an untrained tiny model."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from uva_plan.envs import make_env
from uva_plan.envs.wall_locate import locate_agent
from uva_plan.errors import UserInputError
from uva_plan.imagination import (
    EVAL_SEED,
    SamplingSettings,
    direction_test,
    heldout_episodes,
    imagination_sheet,
    inverse_r2,
    measure_imagination,
    pressed_test,
    shuffled_action_loss,
)
from uva_plan.imagination_pusht import PushTHorizonStats, true_frame_check

CONFIG = SimpleNamespace(frame_stride=4, n_history=4, n_future=4, chunk_len=16, image_size=64)
PUSHT_CONFIG = SimpleNamespace(**vars(CONFIG), env_name="pusht")


class _StandIn:
    """forward_dynamics answers from a lookup of the true futures (oracle) or repeats the current frame
    (copy-last); encode/decode are the identity on float frames."""

    def __init__(self, futures: dict | None, config=CONFIG):
        self.futures = futures
        self.config = config

    def forward_dynamics(self, history, actions, decode=True, **_):
        hist = history.numpy()
        out = []
        for h, a in zip(hist, actions.numpy()):
            key = (h[-1].tobytes(), a.tobytes())
            if self.futures is not None and key in self.futures:
                out.append(self.futures[key])
            else:
                out.append(np.repeat(h[-1:], CONFIG.n_future, axis=0))
        return SimpleNamespace(frames=torch.from_numpy(np.stack(out).astype(np.float32) / 255.0), proprio=None)

    def encode(self, frames):
        return frames

    def decode(self, latents):
        return latents.float() / 255.0 if latents.dtype == torch.uint8 else latents


@pytest.fixture(scope="module")
def episodes():
    return heldout_episodes(n_per_kind=2, steps=40)


@pytest.fixture(scope="module")
def pusht_episodes():
    return heldout_episodes(n_per_kind=2, steps=40, env_name="pusht")


def _oracle(episodes, config=CONFIG):
    futures = {}
    for ep in episodes:
        for t in range(len(ep.frames) - CONFIG.chunk_len):
            key = (ep.frames[t].tobytes(), ep.actions[t : t + CONFIG.chunk_len].tobytes())
            futures[key] = ep.frames[t + CONFIG.frame_stride * np.arange(1, CONFIG.n_future + 1)]
    return _StandIn(futures, config)


def test_held_out_episodes_are_reproducible_and_disjoint_from_training_seeds(episodes):
    again = heldout_episodes(n_per_kind=2, steps=40)
    assert all(np.array_equal(a.frames, b.frames) for a, b in zip(episodes, again))
    assert {ep.kind for ep in episodes} == {"expert", "random"}
    assert episodes[0].frames.shape == (41, 64, 64, 3) and episodes[0].actions.shape == (40, 2)


def test_an_oracle_is_present_and_exact_and_copy_last_is_not(episodes):
    settings = SamplingSettings("planner")
    for rep in measure_imagination(_oracle(episodes), episodes, settings, every=4):
        for h in rep.horizons:
            assert h.present == 1.0
            assert h.median_error < 0.1
    expert = next(r for r in measure_imagination(_StandIn(None), episodes, settings, every=4) if r.kind == "expert")
    last = expert.horizons[-1]
    assert last.median_error == pytest.approx(last.copy_last_error, abs=0.1)
    assert last.median_error > 5.0  # the expert moves: ignoring the actions is far off


def test_direction_test_fails_a_model_that_ignores_the_actions():
    results = direction_test(_StandIn(None), n_starts=4)
    assert [r.direction for r in results] == ["right", "left", "down", "up"]
    assert all(r.moved_right_way == 0.0 for r in results)
    # staying put is right only where a wall blocks the way
    assert np.mean([r.near for r in results]) < 0.5
    assert all(r.near_free == 0.0 for r in results if r.n_free)  # never on a chunk that runs its whole way
    assert 0 < sum(r.n_free for r in results) < sum(r.n for r in results)  # both kinds occur
    assert all(r.missing_blocked == 0.0 for r in results if r.n > r.n_free)  # copy-last keeps the agent
    for r in results:  # the overall share is the two parts' weighted mean
        parts = [(r.near_free, r.n_free), (r.near_blocked, r.n - r.n_free)]
        assert r.near == pytest.approx(sum(v * n for v, n in parts if n) / r.n)


def test_sheet_is_a_png(tmp_path, episodes):
    path = tmp_path / "sheet.png"
    imagination_sheet(_StandIn(None), episodes, path, n_rows=2)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ---- PushT ---------------------------------------------------------------------------------------


def test_pusht_held_out_episodes_are_the_simulators_own_and_reproducible(pusht_episodes):
    again = heldout_episodes(n_per_kind=2, steps=40, env_name="pusht")
    assert all(np.array_equal(a.frames, b.frames) for a, b in zip(pusht_episodes, again))
    assert [ep.kind for ep in pusht_episodes] == ["pusher", "pusher", "random", "random"]
    ep = pusht_episodes[0]
    assert ep.frames.shape == (41, 64, 64, 3) and ep.states.shape == (41, 10) and ep.actions.shape == (40, 2)
    env = make_env("pusht")
    _, info = env.reset(seed=EVAL_SEED)  # the first held-out seed, far from the training seeds (from 0)
    assert np.array_equal(info["state"], ep.states[0])
    for t in (0, 17, 40):
        assert np.array_equal(env.render_state(ep.states[t]), ep.frames[t])
    assert any(np.hypot(*(e.states[-1, 2:4] - e.states[0, 2:4])) > 20 for e in pusht_episodes if e.kind == "pusher")
    found = true_frame_check(pusht_episodes)
    assert found["agent_present"] == 1.0 and found["block_present"] >= 0.95
    assert found["agent_error"] < 1.0 and found["block_error"] < 3.0 and found["angle_error_deg"] < 2.0
    assert found["block_centre_error"] < 3.0


def test_a_pusht_oracle_finds_agent_and_block_and_copy_last_does_not(pusht_episodes):
    settings = SamplingSettings("planner")
    oracle = measure_imagination(_oracle(pusht_episodes, PUSHT_CONFIG), pusht_episodes, settings, every=4)
    assert [r.kind for r in oracle] == ["pusher", "random"]
    for rep in oracle:
        assert [h.steps for h in rep.horizons] == [4, 8, 12, 16]
        for h in rep.horizons:
            assert isinstance(h, PushTHorizonStats) and h.n == 8
            assert h.present == 1.0 and h.block_present >= 0.9
            assert h.median_error < 1.5 and h.block_error < 4.0 and h.angle_error_deg < 2.0
            assert h.block_centre_error < 3.0
            # identity "tokenizer": its round trip reads the same true frames
            assert h.tokenizer_error == pytest.approx(h.median_error)
    copy = measure_imagination(_StandIn(None, PUSHT_CONFIG), pusht_episodes, settings, every=4)
    for o, c in zip(oracle, copy):
        for ho, hc in zip(o.horizons, c.horizons):
            # the references come from the states alone, whatever the model imagines
            assert (ho.copy_last_error, ho.block_copy_last_error) == (hc.copy_last_error, hc.block_copy_last_error)
            # a model that repeats the current frame is as far off as copying the last state
            assert hc.median_error == pytest.approx(hc.copy_last_error, abs=2.0)
            assert hc.block_error == pytest.approx(hc.block_copy_last_error, abs=4.0)
            assert hc.block_centre_error == pytest.approx(hc.block_centre_copy_last_error, abs=3.0)
    last = copy[1].horizons[-1]  # random targets move the agent far in 16 steps
    assert last.median_error > 40.0 and last.copy_last_error > 40.0
    pusher = copy[0].horizons[-1]  # and the pusher moves the block
    assert pusher.block_error > 10.0 and pusher.block_centre_error > 10.0 and pusher.angle_copy_last_error_deg > 2.0


def test_pusht_path_end_to_end_on_an_untrained_model(pusht_episodes, tmp_path, one_torch_thread):
    import world_model

    env = make_env("pusht")
    torch.manual_seed(0)
    model = world_model.UVA(world_model.make_config("tiny", env.action_low, env.action_high, env_name="pusht"))
    model.eval()
    reports = measure_imagination(model, pusht_episodes, SamplingSettings("planner"), every=8)
    copy = measure_imagination(_StandIn(None, PUSHT_CONFIG), pusht_episodes, SamplingSettings("planner"), every=8)
    assert [r.kind for r in reports] == ["pusher", "random"]
    for rep, ref in zip(reports, copy):
        for h, hr in zip(rep.horizons, ref.horizons):
            assert isinstance(h, PushTHorizonStats) and h.n == 4
            assert hr.present == 1.0 and hr.block_present == 1.0  # a copied true frame shows both objects
            assert h.copy_last_error == hr.copy_last_error and h.angle_copy_last_error_deg == hr.angle_copy_last_error_deg
    true, shuffled = shuffled_action_loss(model, pusht_episodes)
    assert np.isfinite(true) and np.isfinite(shuffled) and true > 0
    r2 = inverse_r2(model, pusht_episodes)
    assert set(r2) == {"pusher", "random"} and all(np.isfinite(v) for v in r2.values())
    path = tmp_path / "pusht.png"
    imagination_sheet(model, pusht_episodes, path, n_rows=2)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(UserInputError, match="Wall"):
        direction_test(model, n_starts=2)


class _Blank(_StandIn):
    """Imagines the background only: the agent is gone from every frame."""

    def forward_dynamics(self, history, actions, decode=True, **_):
        frames = super().forward_dynamics(history, actions).frames
        return SimpleNamespace(frames=torch.ones_like(frames), proprio=None)


def test_direction_test_counts_an_agent_that_vanishes_at_the_wall():
    results = direction_test(_Blank(None), n_starts=4)
    assert all(r.missing_blocked == 1.0 for r in results if r.n > r.n_free)
    assert all(r.near == 0.0 for r in results)


class _Pusher(_StandIn):
    """Carries the agent on with the actions as if nothing stopped it: through edges and walls."""

    def forward_dynamics(self, history, actions, decode=True, **_):
        env = make_env("wall", image_size=64)
        out = []
        for h, a in zip(history.numpy(), actions.numpy()):
            xy = locate_agent(h[-1])[0]
            moved = [xy + a[: CONFIG.frame_stride * (k + 1)].sum(axis=0) for k in range(CONFIG.n_future)]
            # clipped at the frame (as a decoder would), blank where it would sit inside the wall
            out.append([env.render_state(np.array([*np.clip(p, 3.0, 61.0), 32.0])) if not 27 < p[0] < 37
                        else np.full((64, 64, 3), 255, np.uint8) for p in moved])
        return SimpleNamespace(frames=torch.from_numpy(np.asarray(out, np.float32) / 255.0), proprio=None)


def test_pressed_test_holds_a_model_that_keeps_the_agent_and_not_one_that_loses_or_carries_it():
    kept = pressed_test(_StandIn(None), n_starts=4)  # copy-last: exactly what the simulator does here
    assert {r.place for r in kept} == {"right edge", "left edge", "bottom edge", "top edge", "wall"}
    assert {r.speed_fraction for r in kept} == {0.5, 1.0}
    assert all(r.present == [1.0] * CONFIG.n_future and r.held == 1.0 and r.median_error < 0.1 for r in kept)
    lost = pressed_test(_Blank(None), n_starts=4)
    assert all(r.present == [0.0] * CONFIG.n_future and r.held == 0.0 for r in lost)
    carried = {(r.place, r.speed_fraction): r for r in pressed_test(_Pusher(None), n_starts=4)}
    assert carried[("wall", 1.0)].held == 0.0  # through the wall, or lost inside it
    assert carried[("right edge", 1.0)].held == 1.0  # clipped at the frame: in place after all


def test_direction_test_hands_back_each_miss_as_a_picture_row():
    """misses: one row per chunk that ended off (start | true frames | imagined frames), none for a hit."""
    misses: list = []
    results = direction_test(_StandIn(None), n_starts=4, misses=misses)
    n_off = round(sum((1 - r.near) * r.n for r in results))
    assert len(misses) == n_off > 0
    cfg = _StandIn(None).config
    for row in misses:
        assert len(row) == 1 + 2 * cfg.n_future
        assert all(f.dtype == np.uint8 and f.shape == (cfg.image_size, cfg.image_size, 3) for f in row)
    # copy-last imagines the start frame again: the last imagined panel is the start, the last true one is not
    assert all(np.array_equal(row[-1], row[0]) and not np.array_equal(row[cfg.n_future], row[0]) for row in misses)
