import json

import pytest
import torch

from tests.world_model.conftest import square_windows, tiny_config
from world_model.checkpoint import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    load,
    load_config,
    load_extra_state,
    save_checkpoint,
)
from world_model.errors import CheckpointError
from world_model.model import UVA


@pytest.fixture
def saved(tiny_model, tmp_path):
    with torch.no_grad():
        tiny_model.tokenizer.fit_scale(torch.randn(32, 8, 8, 4) * 3 + 1)
        tiny_model.tokenizer.fit_background(torch.randint(0, 255, (5, 64, 64, 3), dtype=torch.uint8))
        for p in tiny_model.parameters():
            p.add_(torch.randn_like(p) * 0.01)  # not the init values
    run = tmp_path / "run"
    save_checkpoint(tiny_model, run, extra_state={"step": 1234, "note": "test"})
    return tiny_model, run


def test_round_trip_is_bit_exact(saved):
    model, run = saved
    assert sorted(p.name for p in run.iterdir()) == [CONFIG_FILE, WEIGHTS_FILE]
    loaded = load(run)
    assert loaded.config == model.config
    assert loaded.normalizer == model.normalizer
    ref, got = model.state_dict(), loaded.state_dict()
    assert ref.keys() == got.keys()
    for name in ref:
        assert ref[name].dtype == got[name].dtype and torch.equal(ref[name], got[name]), name
    batch = square_windows(model, 2)
    model.eval()  # load() returns eval mode, where torch's encoder layers take their fused fast path
    a = model.policy(batch["history"], batch["goal"], generator=torch.Generator().manual_seed(0))
    b = loaded.policy(batch["history"], batch["goal"], generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, b)
    assert load_extra_state(run) == {"step": 1234, "note": "test"}
    assert load_config(run).env_name == "square"


def test_config_json_names_format_version_and_parts(saved):
    _, run = saved
    data = json.loads((run / CONFIG_FILE).read_text())
    assert data["format"] == "uva-plan/world_model" and data["format_version"] == 1
    assert data["architecture_version"] == 3
    assert set(data) >= {"model", "tokenizer", "normalizer", "weights_sha256", "extra_state"}
    assert data["normalizer"] == {"low": [-2.0, -2.0], "high": [2.0, 2.0]}


def test_overwrite_leaves_no_temp_files(saved):
    model, run = saved
    save_checkpoint(model, run)
    assert sorted(p.name for p in run.iterdir()) == [CONFIG_FILE, WEIGHTS_FILE]


def test_truncated_weights(saved):
    _, run = saved
    data = (run / WEIGHTS_FILE).read_bytes()
    (run / WEIGHTS_FILE).write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated, corrupt or from another run"):
        load(run)


def test_truncated_weights_without_recorded_hash(saved):
    _, run = saved
    data = json.loads((run / CONFIG_FILE).read_text())
    del data["weights_sha256"]
    (run / CONFIG_FILE).write_text(json.dumps(data))
    raw = (run / WEIGHTS_FILE).read_bytes()
    (run / WEIGHTS_FILE).write_bytes(raw[:100])
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        load(run)


def test_foreign_files(saved, tmp_path):
    _, run = saved
    (run / CONFIG_FILE).write_text(json.dumps({"_class_name": "UNet2DModel"}))
    with pytest.raises(CheckpointError, match="expected 'uva-plan/world_model'"):
        load(run)
    (run / CONFIG_FILE).write_text("not json {")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load(run)
    with pytest.raises(CheckpointError, match="no checkpoint directory"):
        load(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="config.json is missing"):
        load(tmp_path / "empty")


def test_other_version(saved):
    _, run = saved
    data = json.loads((run / CONFIG_FILE).read_text())
    data["format_version"] = 99
    (run / CONFIG_FILE).write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match="format version 99; expected 1"):
        load(run)


@pytest.mark.parametrize("version", [None, 1, 99])
def test_other_architecture_version(saved, version):
    _, run = saved
    data = json.loads((run / CONFIG_FILE).read_text())
    if version is None:
        del data["architecture_version"]  # written before the key existed: architecture 1
    else:
        data["architecture_version"] = version
    (run / CONFIG_FILE).write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match=f"architecture version {version or 1}; this code builds version 3 and reads 2, 3"):
        load(run)
    assert load_config(run).env_name == "square"  # the config alone still reads


def test_weights_of_another_model_size(saved, tmp_path):
    _, run = saved
    other = UVA(tiny_config(width=32))
    save_checkpoint(other, tmp_path / "other")
    (run / WEIGHTS_FILE).write_bytes((tmp_path / "other" / WEIGHTS_FILE).read_bytes())
    data = json.loads((run / CONFIG_FILE).read_text())
    del data["weights_sha256"]  # a hand-assembled pair: only the shape check can catch it
    (run / CONFIG_FILE).write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match=r"tensor '.*' has shape .*; expected shape"):
        load(run)


def test_missing_tensor(saved):
    from safetensors.torch import load_file, save_file

    _, run = saved
    tensors = load_file(run / WEIGHTS_FILE)
    tensors.pop("backbone.mask_token")
    save_file(tensors, run / WEIGHTS_FILE)
    data = json.loads((run / CONFIG_FILE).read_text())
    del data["weights_sha256"]
    (run / CONFIG_FILE).write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match=r"missing tensors \['backbone.mask_token'\]"):
        load(run)


def test_invalid_config_values(saved):
    _, run = saved
    data = json.loads((run / CONFIG_FILE).read_text())
    data["model"]["n_future"] = 0
    (run / CONFIG_FILE).write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match="invalid config: n_future"):
        load(run)


def test_extra_state_must_be_json(tiny_model, tmp_path):
    with pytest.raises(CheckpointError, match="extra_state cannot be written as JSON"):
        save_checkpoint(tiny_model, tmp_path / "r", extra_state={"t": torch.zeros(2)})
    assert not (tmp_path / "r").exists()


def test_a_version_2_checkpoint_loads_with_its_own_design(tmp_path):
    """Version 2 configs lack the imagination options; they read as what version 2 was."""
    model = UVA(tiny_config(fuse_current_frame=False, video_target="frame", action_context="frame", local_mixing=0))
    run = tmp_path / "v2"
    save_checkpoint(model, run)
    data = json.loads((run / CONFIG_FILE).read_text())
    data["architecture_version"] = 2
    for key in ("fuse_current_frame", "video_target", "action_context", "local_mixing"):
        del data["model"][key]
    (run / CONFIG_FILE).write_text(json.dumps(data))
    loaded = load(run)
    assert loaded.config.video_target == "frame" and loaded.config.local_mixing == 0
    assert not loaded.config.fuse_current_frame


def test_checkpoint_files_follow_the_users_umask(tiny_model, tmp_path):
    """A shared checkpoint must be readable by colleagues: files get the umask's permissions, not the
    private 0600 of a temporary file."""
    import os

    old = os.umask(0o022)
    try:
        run = save_checkpoint(tiny_model, tmp_path / "run")
    finally:
        os.umask(old)
    for name in ("model.safetensors", "config.json"):
        assert (run / name).stat().st_mode & 0o777 == 0o644
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]
