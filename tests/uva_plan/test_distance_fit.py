"""`uva-plan fit-distance`: the latent-distance head is refitted, everything else is left alone."""

import json

import pytest
import torch
from click.testing import CliRunner

import world_model
from tests.uva_plan.conftest import tiny_wall_run
from uva_plan.cli import main
from uva_plan.distance_fit import fit_latent_distance
from uva_plan.errors import UserInputError


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return tiny_wall_run(tmp_path_factory.mktemp("fit"))


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_refit_lowers_the_held_out_loss_and_touches_only_the_head(run):
    ckpt, data = run
    before = world_model.load(ckpt).state_dict()
    result = fit_latent_distance(ckpt, data, steps=60, batch_size=64, method="expectile")
    assert result.val_loss_after < 0.7 * result.val_loss_before
    after = world_model.load(ckpt).state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith("latent_distance_head.") for k in changed)
    extra = json.loads((ckpt / "config.json").read_text())["extra_state"]
    assert extra["step"] == 7 and extra["distance_fit"]["steps"] == 60


def test_bad_input_is_one_line_and_leaves_the_checkpoint_alone(run, tmp_path):
    ckpt, data = run
    weights = (ckpt / "model.safetensors").read_bytes()
    res = CliRunner().invoke(main, ["fit-distance", "--checkpoint", str(ckpt), "--data", str(tmp_path / "none.zarr")])
    assert res.exit_code == 2 and "does not exist" in res.output and len(res.output.strip().splitlines()) == 1
    res = CliRunner().invoke(main, ["fit-distance", "--checkpoint", str(ckpt), "--data", str(data), "--steps", "0"])
    assert res.exit_code == 2 and "--steps" in res.output
    with pytest.raises(UserInputError, match="lr is"):
        fit_latent_distance(ckpt, data, steps=1, lr=2.0)
    assert (ckpt / "model.safetensors").read_bytes() == weights


def test_td_pairs_stay_inside_their_episode_and_ground_at_the_goal():
    import numpy as np

    from uva_plan.distance_fit import _td_pairs

    starts, ends = np.array([0, 10, 30]), np.array([10, 30, 32])
    rng = np.random.default_rng(0)
    for reversible in (True, False):
        t, g, kind = _td_pairs(rng, starts, ends, [0, 1, 2], 4000, reversible)
        ep = np.searchsorted(ends, t, side="right")
        assert np.all((t >= starts[ep]) & (t + 1 < ends[ep]))  # the transition t -> t+1 is recorded
        assert np.all((g >= starts[ep]) & (g < ends[ep]))  # the goal is a frame of the same episode
        assert np.all((kind == 0) == (g == t)) and np.all((kind == 1) == (g == t + 1))
        if not reversible:
            assert np.all(g >= t)
        else:
            assert np.any(g < t)  # earlier goals too, where the env can walk back


def test_td_fit_touches_only_the_head_and_records_its_method(run):
    ckpt, data = run
    before = world_model.load(ckpt).state_dict()
    fit_latent_distance(ckpt, data, steps=20, batch_size=64, method="td")
    after = world_model.load(ckpt).state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith("latent_distance_head.") for k in changed)
    assert json.loads((ckpt / "config.json").read_text())["extra_state"]["distance_fit"]["method"] == "td"
    with pytest.raises(UserInputError, match="method is 'qrl'"):
        fit_latent_distance(ckpt, data, steps=1, method="qrl")


def test_cross_episode_goals_come_only_from_episodes_with_the_same_layout():
    import numpy as np

    from uva_plan.distance_fit import _td_pairs, layout_mates

    # Four 5-step episodes; state [x, door]: the door never changes inside an episode, x does.
    starts, ends = np.arange(0, 20, 5), np.arange(5, 25, 5)
    doors = np.repeat([10.0, 10.4, 30.0, 50.0], 5)
    state = np.stack([np.arange(20.0), doors], axis=1)
    mates = layout_mates(state, starts, ends, [0, 1, 2, 3])
    assert [sorted(mates[e].tolist()) for e in range(4)] == [[0, 1], [0, 1], [2], [3]]
    t, g, kind = _td_pairs(np.random.default_rng(0), starts, ends, [0, 1, 2, 3], 4000, True, mates)
    ep_t, ep_g = t // 5, g // 5
    assert np.any(kind == 3) and np.all(ep_t[kind == 3] != ep_g[kind == 3])
    assert np.all(np.abs(doors[t] - doors[g]) <= 1.0)
    assert np.all((kind == 3) == (ep_t != ep_g))


def test_metric_form_replaces_the_head_and_is_a_distance(run, tmp_path):
    import shutil

    ckpt = tmp_path / "metric"
    shutil.copytree(run[0], ckpt)
    fit_latent_distance(ckpt, run[1], steps=20, batch_size=64, method="td", form="metric")
    model = world_model.load(ckpt)
    assert model.config.latent_distance_form == "metric"
    assert json.loads((ckpt / "config.json").read_text())["extra_state"]["distance_fit"]["form"] == "metric"
    z = torch.randn(3, *model.encode(torch.zeros(1, 64, 64, 3, dtype=torch.uint8)).shape[1:])
    head = model.latent_distance_head
    with torch.no_grad():
        d = lambda a, b: torch.expm1(head(z[a:a + 1], z[b:b + 1]))[0]  # noqa: E731
        assert d(0, 0) < 1e-3 and torch.isclose(d(0, 1), d(1, 0))
        assert d(0, 2) <= d(0, 1) + d(1, 2) + 1e-4  # triangle inequality
    with pytest.raises(UserInputError, match="form is 'cone'"):
        fit_latent_distance(ckpt, run[1], steps=1, form="cone")


def test_graph_fit_learns_the_dijkstra_labels(run, tmp_path):
    import shutil

    ckpt = tmp_path / "graph"
    shutil.copytree(run[0], ckpt)
    result = fit_latent_distance(ckpt, run[1], steps=80, batch_size=64, method="graph", form="metric")
    fit = json.loads((ckpt / "config.json").read_text())["extra_state"]["distance_fit"]
    assert fit["method"] == "graph" and fit["graph_links"] > 0
    assert result.val_loss_after < result.val_loss_before  # a fresh head learns the ways from nothing


def test_a_fresh_head_fit_is_reproducible_by_its_seed(run, tmp_path):
    import shutil

    heads = []
    for name in ("one", "two"):
        shutil.copytree(run[0], tmp_path / name)
        torch.manual_seed(len(name) * 7 + len(heads))  # a different global state before each call
        fit_latent_distance(tmp_path / name, run[1], steps=5, batch_size=32, method="graph", form="metric", seed=3)
        heads.append(world_model.load(tmp_path / name).latent_distance_head.state_dict())
    assert all(torch.equal(heads[0][k], heads[1][k]) for k in heads[0])


def test_empty_frames_are_the_faded_empty_scene_labelled_farthest():
    import numpy as np

    from uva_plan.distance_fit import EMPTY_MAX_FADE, empty_frames

    frames, steps, empty = torch.randn(400, 8, 8, 4), torch.arange(400.0), torch.zeros(8, 8, 4)
    out, target = empty_frames(np.random.default_rng(0), frames, steps, empty, 0.25, 1000.0)
    chosen = target == 1000.0
    assert 60 < int(chosen.sum()) < 140  # about a quarter
    assert torch.equal(out[~chosen], frames[~chosen]) and torch.equal(target[~chosen], steps[~chosen])
    ratio = out[chosen].flatten(1).norm(dim=1) / frames[chosen].flatten(1).norm(dim=1)
    assert ratio.max() <= EMPTY_MAX_FADE + 1e-5  # at most a faint trace of the real frame


def test_a_fit_with_empty_frames_rates_the_empty_scene_farther_than_any_real_frame(run, tmp_path):
    import shutil

    ckpt = tmp_path / "empty"
    shutil.copytree(run[0], ckpt)
    fit_latent_distance(ckpt, run[1], steps=150, batch_size=64, method="graph", form="metric", empty_fraction=0.2)
    model = world_model.load(ckpt)
    assert json.loads((ckpt / "config.json").read_text())["extra_state"]["distance_fit"]["empty_fraction"] == 0.2
    from uva_plan.data import load_replay_buffer

    frames = torch.from_numpy(load_replay_buffer(run[1]).img[:200:10])
    z = model.encode(frames)
    empty = model.encode(model.tokenizer.empty_frame()[None])
    with torch.no_grad():
        real = model.latent_distance_head(z[:-1], z[1:].flip(0))
        lost = model.latent_distance_head(empty.expand_as(z[1:]), z[1:].flip(0))
    assert lost.min() > real.max()
    with pytest.raises(UserInputError, match="--method graph only"):
        fit_latent_distance(ckpt, run[1], steps=1, method="td", empty_fraction=0.1)
