"""Resume state (safetensors + JSON) and the stateless data order: the pieces that make resume exact."""

import json

import numpy as np
import pytest
import torch

from uva_plan.errors import UserInputError
from uva_plan.train_state import (
    INDEX_FILE,
    STATE_DIR,
    TrainState,
    load_latents,
    load_train_state,
    save_latents,
    save_train_state,
)
from uva_plan.training import EpochSampler, TrainConfig


def _setup(seed=0):
    from diffusers.optimization import get_cosine_schedule_with_warmup
    from diffusers.training_utils import EMAModel

    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.GELU(), torch.nn.Linear(8, 2))
    model.register_buffer("counter", torch.zeros((), dtype=torch.int64))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, betas=(0.9, 0.95), weight_decay=0.02)
    sched = get_cosine_schedule_with_warmup(opt, 3, 20)
    ema = EMAModel(model.parameters(), decay=0.999, use_ema_warmup=True, power=0.75)
    return model, opt, sched, ema


def _steps(model, opt, sched, ema, start, end):
    for step in range(start, end):
        torch.manual_seed(step)
        x = torch.randn(4, 3)
        loss = model(x).pow(2).mean()
        loss.backward()
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        ema.step(model.parameters())


def test_resume_state_restores_training_exactly(tmp_path):
    ref = _setup()
    _steps(*ref, 0, 10)

    run = _setup()
    _steps(*run, 0, 4)
    model, opt, sched, ema = run
    save_train_state(tmp_path, TrainState("world_model", 4, model.state_dict(), opt.state_dict(), sched.state_dict(),
                                          ema.state_dict(), {"seed": 3}))
    state = load_train_state(tmp_path)
    assert (state.stage, state.step, state.info) == ("world_model", 4, {"seed": 3})

    fresh = _setup(seed=123)  # other initial weights: everything must come from the state
    m2, o2, s2, e2 = fresh
    m2.load_state_dict(state.model)
    o2.load_state_dict(state.optimizer)
    s2.load_state_dict(state.scheduler)
    e2.load_state_dict(state.ema)
    _steps(*fresh, 4, 10)

    for a, b in zip(ref[0].state_dict().values(), m2.state_dict().values()):
        assert torch.equal(a, b)
    for a, b in zip(ref[3].shadow_params, e2.shadow_params):
        assert torch.equal(a, b)
    assert ref[2].get_last_lr() == s2.get_last_lr()


def test_a_new_save_replaces_the_old_tensors_file(tmp_path):
    model, opt, sched, ema = _setup()
    save_train_state(tmp_path, TrainState("tokenizer", 5, model.state_dict(), opt.state_dict(), sched.state_dict()))
    save_train_state(tmp_path, TrainState("tokenizer", 10, model.state_dict(), opt.state_dict(), sched.state_dict()))
    files = sorted(p.name for p in (tmp_path / STATE_DIR).iterdir())
    assert files == [INDEX_FILE, "tensors-tokenizer-00000010.safetensors"]
    assert load_train_state(tmp_path).ema is None


@pytest.mark.parametrize(
    "damage, message",
    [
        ("no_index", "no resume state"),
        ("bad_json", "is corrupt"),
        ("foreign", "not a uva-plan resume state"),
        ("version", "version"),
        ("truncated", "truncated or altered"),
        ("missing_tensors", "is missing"),
    ],
)
def test_damaged_resume_state_gives_one_clear_error(tmp_path, damage, message):
    model, opt, sched, ema = _setup()
    index = save_train_state(tmp_path, TrainState("world_model", 2, model.state_dict(), opt.state_dict(),
                                                  sched.state_dict(), ema.state_dict()))
    meta = json.loads(index.read_text())
    tensors = tmp_path / STATE_DIR / meta["tensors_file"]
    if damage == "no_index":
        index.unlink()
    elif damage == "bad_json":
        index.write_text("{not json")
    elif damage == "foreign":
        index.write_text(json.dumps({"format": "something-else"}))
    elif damage == "version":
        index.write_text(json.dumps({**meta, "version": 99}))
    elif damage == "truncated":
        tensors.write_bytes(tensors.read_bytes()[:-100])
    elif damage == "missing_tensors":
        tensors.unlink()
    with pytest.raises(UserInputError, match=message) as info:
        load_train_state(tmp_path)
    assert "\n" not in str(info.value)


def test_latent_cache_is_tied_to_its_data(tmp_path):
    latents = torch.randn(7, 4, 4, 2)
    assert load_latents(tmp_path, "abc") is None
    save_latents(tmp_path, latents, "abc")
    assert torch.equal(load_latents(tmp_path, "abc"), latents)
    assert load_latents(tmp_path, "other data") is None
    (tmp_path / STATE_DIR / "latents.safetensors").write_bytes(b"garbage")
    assert load_latents(tmp_path, "abc") is None


def test_epoch_sampler_is_stateless_and_splits_batches_across_processes():
    n, bs, world = 23, 4, 2
    sampler = EpochSampler(n, seed=5)
    # One global batch = the two processes' slices; every item once per epoch.
    seen = np.concatenate([sampler.indices(step, bs, rank, world) for step in range(3) for rank in range(world)])
    assert sorted(seen[:n].tolist()) == list(range(n))
    # The order at a step does not depend on the steps asked for before it (resume).
    again = EpochSampler(n, seed=5)
    assert np.array_equal(again.indices(2, bs, 1, world), sampler.indices(2, bs, 1, world))
    assert not np.array_equal(EpochSampler(n, seed=6).indices(0, bs), sampler.indices(0, bs))


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("config", "huge", "expected one of"),
        ("steps", 0, "steps is 0"),
        ("batch_size", -1, "batch_size is -1"),
        ("lr", float("nan"), "lr is nan"),
        ("betas", (0.9, 1.5), "betas"),
        ("device", "tpu", "device is 'tpu'"),
        ("stop_at", 50, "stop_at is 50"),
    ],
)
def test_bad_train_config_values_are_refused(field, value, message):
    cfg = TrainConfig(**{"data": "x.zarr", "out": "run", "config": "tiny", "steps": 10, field: value})
    with pytest.raises(UserInputError, match=message):
        cfg.resolved()


def test_preset_defaults_fill_unset_fields():
    cfg = TrainConfig(data="x.zarr", out="run", config="tiny", steps=400).resolved()
    assert cfg.batch_size > 0 and cfg.lr > 0 and cfg.tokenizer_steps > 0
    assert cfg.warmup_steps == 20  # 5% of a short run, not UVA's 1000
    assert cfg.betas == (0.9, 0.95) and cfg.weight_decay == 0.02
