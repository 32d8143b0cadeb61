"""End-to-end training runs on a tiny Wall dataset: checkpoint, exact resume, two processes, CLI errors."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from uva_plan.cli import main
from uva_plan.errors import UserInputError
from uva_plan.train_state import load_train_state, save_train_state
from uva_plan.training import METRICS_FILE, TrainConfig, train

REPO = Path(__file__).resolve().parents[2]
MODES = {"video_prediction", "forward_dynamics", "policy", "inverse_dynamics", "joint"}


@pytest.fixture(scope="module")
def wall_data(tmp_path_factory):
    from uva_plan.collection import collect_dataset

    path = tmp_path_factory.mktemp("data") / "wall.zarr"
    collect_dataset(env_name="wall", episodes=6, max_steps=40, policy="mixed", image_size=64, seed=0, out=str(path))
    return path


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _config(data, out, **kw):
    base = dict(data=str(data), out=str(out), config="tiny", steps=6, tokenizer_steps=4, batch_size=4,
                tokenizer_batch_size=8, val_every=3, val_batches=1, save_every=3, log_every=2, progress=False)
    return TrainConfig(**{**base, **kw})


def test_a_run_writes_a_loadable_checkpoint_metrics_and_resume_state(wall_data, tmp_path):
    import world_model

    result = train(_config(wall_data, tmp_path / "run"))
    assert result.step == 6 and result.num_processes == 1
    assert set(result.val_losses) == MODES and all(v > 0 for v in result.val_losses.values())
    model = world_model.load(tmp_path / "run")
    assert model.config.env_name == "wall"
    assert world_model.load_extra_state(tmp_path / "run")["step"] == 6
    # The checkpoint holds the EMA weights, not the raw ones.
    raw = load_train_state(tmp_path / "run").model
    name = "backbone.fuse.weight"
    assert not torch.equal(model.state_dict()[name], raw[name])
    records = [json.loads(line) for line in (tmp_path / "run" / METRICS_FILE).read_text().splitlines()]
    val = [r for r in records if r.get("split") == "val" and r["stage"] == "world_model"]
    assert [r["step"] for r in val] == [3, 6]
    assert all({f"loss/{m}" for m in MODES} <= set(r) for r in val)
    # Each mode's loss terms: video terms for video modes, action terms for action modes.
    assert {"video_loss/video_prediction", "action_loss/policy", "action_loss/joint", "video_loss/joint"} <= set(val[0])
    assert "action_loss/video_prediction" not in val[0] and "video_loss/policy" not in val[0]
    # The latent-distance head (the default goal cost) is validated and logged in every mode.
    assert all({f"latent_distance_loss/{m}" for m in MODES} <= set(r) for r in val)
    assert any(r["stage"] == "tokenizer" for r in records)

    # A resume state that does not fit the model code is refused with one clear error.
    state = load_train_state(tmp_path / "run")
    state.model.pop(name)
    save_train_state(tmp_path / "run", state)
    with pytest.raises(UserInputError, match="does not fit this version of the model"):
        train(_config(wall_data, tmp_path / "run", steps=8, resume=True))


def test_resume_continues_the_step_count_and_matches_an_uninterrupted_run(wall_data, tmp_path):
    whole = train(_config(wall_data, tmp_path / "whole", steps=8, val_every=4, save_every=4))
    first = train(_config(wall_data, tmp_path / "split", steps=8, val_every=4, save_every=4, stop_at=4))
    assert first.step == 4 and load_train_state(tmp_path / "split").step == 4
    # An interrupted session may have logged past its last saved state, and torn its last line.
    with open(tmp_path / "split" / METRICS_FILE, "a") as f:
        f.write('{"stage": "world_model", "step": 5, "loss/policy": 1.0}\n{"stage": "world_m')
    second = train(_config(wall_data, tmp_path / "split", steps=8, val_every=4, save_every=4, resume=True))
    assert second.step == 8

    a, b = load_train_state(tmp_path / "whole"), load_train_state(tmp_path / "split")
    assert a.step == b.step == 8
    assert all(torch.equal(a.model[k], b.model[k]) for k in a.model)
    assert all(torch.equal(x, y) for x, y in zip(a.ema["shadow_params"], b.ema["shadow_params"]))
    assert whole.val_losses == second.val_losses
    steps = [json.loads(line)["step"] for line in (tmp_path / "split" / METRICS_FILE).read_text().splitlines()
             if '"world_model"' in line and '"val"' not in line]
    assert steps == [2, 4, 6, 8]


def test_two_processes_keep_equal_replicas(wall_data, tmp_path):
    digests = tmp_path / "digests"
    cmd = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
        "-m", "uva_plan.cli", "train", "--data", str(wall_data), "--config", "tiny", "--steps", "4",
        "--tokenizer-steps", "2", "--batch-size", "2", "--val-every", "4", "--save-every", "4",
        "--out", str(tmp_path / "run"), "--replica-digest-dir", str(digests),
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=90)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "on 2 process(es)" in proc.stdout
    files = sorted(digests.iterdir())
    assert [f.name for f in files] == ["rank0.sha256", "rank1.sha256"]
    assert files[0].read_text() == files[1].read_text()
    info = json.loads((tmp_path / "run" / "train_config.json").read_text())
    assert info["num_processes"] == 2


def _cli(args):
    result = CliRunner().invoke(main, ["train", *args])
    return result.exit_code, result.output.strip()


def test_cli_refuses_bad_input_with_one_line(wall_data, tmp_path):
    code, out = _cli(["--data", str(tmp_path / "nope.zarr"), "--steps", "2", "--out", str(tmp_path / "r1")])
    assert code == 2 and "does not exist" in out and len(out.splitlines()) == 1

    corrupt = tmp_path / "corrupt.zarr"
    corrupt.mkdir()
    (corrupt / "zarr.json").write_text("{broken")
    code, out = _cli(["--data", str(corrupt), "--steps", "2", "--config", "tiny", "--out", str(tmp_path / "r2")])
    assert code == 2 and str(corrupt) in out and len(out.splitlines()) == 1

    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "something.txt").write_text("x")
    code, out = _cli(["--data", str(wall_data), "--steps", "2", "--out", str(busy)])
    assert code == 2 and "not empty" in out and len(out.splitlines()) == 1

    code, out = _cli(["--data", str(wall_data), "--steps", "2", "--out", str(tmp_path / "fresh"), "--resume"])
    assert code == 2 and "no resume state" in out and len(out.splitlines()) == 1

    code, out = _cli(["--data", str(wall_data), "--steps", "0", "--out", str(tmp_path / "r3")])
    assert code == 2 and "--steps" in out

    code, out = _cli(["--data", str(wall_data), "--steps", "2", "--config", "huge", "--out", str(tmp_path / "r4")])
    assert code == 2 and "--config" in out

    if not torch.cuda.is_available():
        code, out = _cli(["--data", str(wall_data), "--steps", "2", "--device", "cuda", "--out", str(tmp_path / "r5")])
        assert code == 2 and "no CUDA GPU" in out and len(out.splitlines()) == 1


def test_model_options_reshape_the_model_and_its_windows(wall_data, tmp_path):
    import world_model

    out = tmp_path / "stride1"
    code, text = _cli(["--data", str(wall_data), "--config", "tiny", "--steps", "2", "--tokenizer-steps", "1",
                       "--batch-size", "2", "--out", str(out), "--model-option", "frame_stride=1",
                       "--model-option", "n_history=2", "--model-option", "n_future=2"])
    assert code == 0, text
    cfg = world_model.load(out).config
    assert (cfg.frame_stride, cfg.n_history, cfg.n_future, cfg.chunk_len) == (1, 2, 2, 2)


@pytest.mark.parametrize(
    "option, fragment",
    [("colour=blue", "unknown model option(s) ['colour']"), ("frame_stride", "not KEY=VALUE"),
     ("n_future=3", "n_history=4 and n_future=3"), ("width=-1", "width")],
)
def test_bad_model_options_give_one_line(wall_data, tmp_path, option, fragment):
    out = tmp_path / "bad"
    code, text = _cli(["--data", str(wall_data), "--config", "tiny", "--steps", "2", "--out", str(out),
                       "--model-option", option])
    assert code == 2 and fragment in text and len(text.splitlines()) == 1
    assert not out.exists() or not any(out.iterdir())


def test_init_from_keeps_the_runs_weights_and_starts_added_parts_fresh(wall_data, tmp_path):
    import world_model

    source = tmp_path / "gaussian"
    warp = {"action_warp_radius": 2, "action_warp_kernel": "gaussian"}
    train(_config(wall_data, source, model_overrides=warp))
    before = world_model.load(source).state_dict()
    grown = tmp_path / "local"
    result = train(_config(wall_data, grown, steps=3, init_from=str(source),
                           model_overrides={**warp, "action_warp_kernel": "gaussian+local"}))
    assert result.step == 3
    after = world_model.load(grown)
    state = after.state_dict()
    # The tokenizer is the source's, frozen: bit-identical.
    tok = [k for k in before if k.startswith("tokenizer.")]
    assert tok and all(torch.equal(before[k], state[k]) for k in tok)
    # The added correction exists and was trained from its zero start; the rest went on from the source.
    assert after.config.action_warp_kernel == "gaussian+local"
    for name in ("backbone.fuse.weight", "backbone.warp.kernel.0.weight"):
        assert torch.allclose(state[name], before[name], atol=0.05)  # 3 small steps from the source's weights
    assert not torch.equal(state["backbone.warp.local.2.weight"], torch.zeros_like(state["backbone.warp.local.2.weight"]))
    info = json.loads((grown / "train_config.json").read_text())["train_config"]
    assert info["init_from"] == str(source)
    assert "backbone.warp.local.2" in load_train_state(grown).info["init_from"]["new"]
    # A run started this way resumes without repeating --init-from, and keeps the record.
    assert train(_config(wall_data, grown, steps=5, resume=True,
                         model_overrides={**warp, "action_warp_kernel": "gaussian+local"})).step == 5
    assert "backbone.warp.local.2" in load_train_state(grown).info["init_from"]["new"]


def test_init_from_refuses_a_run_of_another_size(wall_data, tmp_path):
    source = tmp_path / "narrow"
    train(_config(wall_data, source, steps=3))
    code, text = _cli(["--data", str(wall_data), "--config", "tiny", "--steps", "2", "--out", str(tmp_path / "wide"),
                       "--init-from", str(source), "--model-option", "width=96"])
    assert code == 2 and "--init-from" in text and "does not fit" in text and len(text.splitlines()) == 1
    assert not (tmp_path / "wide").exists() or not any((tmp_path / "wide").iterdir())
    code, text = _cli(["--data", str(wall_data), "--config", "tiny", "--steps", "2", "--out", str(tmp_path / "w2"),
                       "--init-from", str(source), "--tokenizer-steps", "3"])
    assert code == 2 and "--tokenizer-steps" in text
    code, text = _cli(["--data", str(wall_data), "--config", "tiny", "--steps", "2", "--out", str(tmp_path / "w3"),
                       "--init-from", str(tmp_path / "nowhere")])
    assert code == 2 and "--init-from" in text and len(text.splitlines()) == 1


def test_init_from_refuses_to_change_what_the_source_has(wall_data, tmp_path):
    source = tmp_path / "warped"
    train(_config(wall_data, source, steps=3, model_overrides={"action_warp_radius": 2, "action_warp_kernel": "gaussian"}))
    # options that leave out the source's warp would drop it: refused, naming what the source has
    with pytest.raises(UserInputError, match='action_warp_kernel="gaussian", action_warp_radius=2'):
        train(_config(wall_data, tmp_path / "plain", steps=2, init_from=str(source)))
    # a setting the options do not name may not change either (here the kernel, back to its default)
    with pytest.raises(UserInputError, match='made with action_warp_kernel="gaussian"'):
        train(_config(wall_data, tmp_path / "free", steps=2, init_from=str(source), model_overrides={"action_warp_radius": 2}))
    assert not (tmp_path / "plain").exists() and not (tmp_path / "free").exists()


def test_init_from_a_checkpoint_older_than_a_setting_reads_it_at_its_default(wall_data, tmp_path):
    """A checkpoint saved before a config field existed has no such key; it was made at the default."""
    source = tmp_path / "old"
    train(_config(wall_data, source, steps=2))
    config_file = source / "config.json"
    saved = json.loads(config_file.read_text())
    for key in ("proprio_glimpse", "proprio_context", "proprio_context_dropout"):
        saved.get("model", saved).pop(key, None)
    config_file.write_text(json.dumps(saved))
    assert train(_config(wall_data, tmp_path / "grown", steps=2, init_from=str(source))).step == 2


def test_a_run_saved_before_proprio_existed_resumes(wall_data, tmp_path):
    """Resume states written before `--proprio` have no such key: they were trained without it."""
    out = tmp_path / "old"
    train(_config(wall_data, out, steps=4, val_every=2, save_every=2, stop_at=2))
    state_file = out / "train_state" / "state.json"
    state = json.loads(state_file.read_text())
    del state["info"]["train_config"]["proprio"]
    state_file.write_text(json.dumps(state))
    assert train(_config(wall_data, out, steps=4, val_every=2, save_every=2, resume=True)).step == 4
