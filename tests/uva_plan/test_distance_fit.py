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
    result = fit_latent_distance(ckpt, data, steps=60, batch_size=64)
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
