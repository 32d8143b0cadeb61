"""`uva-plan extract-policy`: advantage weights that favour progress towards the goal, a fine-tune
that moves the policy and keeps the refit goal distance, and one-line errors."""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import world_model
from tests.uva_plan.conftest import tiny_wall_run
from uva_plan.cli import main
from uva_plan.errors import UserInputError
from uva_plan.policy_extraction import advantage_weights, extract_policy

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return tiny_wall_run(tmp_path_factory.mktemp("extract"))


class _DistanceAlongChannel0(torch.nn.Module):
    """A stand-in latent distance: log(1 + |mean of channel 0 of frame - goal|) env steps."""

    def forward(self, frames, goals):
        return torch.log1p((frames[..., 0] - goals[..., 0]).abs().mean(dim=(1, 2)))


def test_advantage_weights_favour_chunks_that_close_in_on_the_goal():
    cfg = world_model.make_config("tiny", [-2.0, -2.0], [2.0, 2.0], env_name="wall")
    model = world_model.UVA(cfg)
    model.latent_distance_head = _DistanceAlongChannel0()
    h, w, c = cfg.latent_size, cfg.latent_size, cfg.latent_channels
    s, tf = cfg.frame_stride, cfg.n_future

    def window(now, after_chunk, goal_steps):
        fut = torch.zeros(tf, h, w, c)
        fut[..., 0] = torch.linspace(now, after_chunk, tf + 1)[1:].view(tf, 1, 1)
        hist = torch.zeros(cfg.n_history, h, w, c)
        hist[..., 0] = now
        return {"history_latents": hist, "future_latents": fut, "goal_latents": torch.zeros(h, w, c),
                "goal_steps": torch.tensor(float(goal_steps))}

    chunk = s * tf
    items = [window(40.0, 40.0 - chunk, 64), window(40.0, 40.0, 64), window(40.0, 40.0 + chunk, 64),
             window(6.0, 0.0, 6)]  # the goal is reached inside the chunk: judged at the frame just past it
    batch = {k: torch.stack([it[k] for it in items]) for k in items[0]}
    weights = advantage_weights(model, batch, beta=4.0, max_weight=20.0)
    on_path, standing, away, near = weights.tolist()
    assert on_path == pytest.approx(1.0, abs=1e-4)  # progress equals the steps spent: advantage 0
    assert standing == pytest.approx(np.exp(-chunk / 4.0), rel=1e-3)
    assert away == pytest.approx(np.exp(-2 * chunk / 4.0), rel=1e-3)
    # 6 steps away, judged at the frame 8 steps in (channel value 6 - 8 * 6 / 16 = 3): 6 - 3 - 8 = -5
    assert near == pytest.approx(np.exp(-5 / 4.0), rel=1e-3)
    assert advantage_weights(model, batch, beta=0.1, max_weight=2.0).max() <= 2.0


def test_extraction_moves_the_policy_and_keeps_the_refit_distance_head(run):
    ckpt, data = run
    before = world_model.load(ckpt).state_dict()
    result = extract_policy(ckpt, data, steps=6, batch_size=4)
    after = world_model.load(ckpt).state_dict()
    changed = {k.split(".")[0] for k in before if not torch.equal(before[k], after[k])}
    assert "action_head" in changed and "backbone" in changed
    assert "latent_distance_head" not in changed and "tokenizer" not in changed
    assert set(result.mean_weight_by_policy) <= {"expert", "wander", "random"}
    assert all(0.0 < w <= 20.0 for w in result.mean_weight_by_policy.values())
    extra = json.loads((ckpt / "config.json").read_text())["extra_state"]
    assert extra["step"] == 7 and extra["policy_extraction"]["method"] == "awr"


@pytest.fixture(scope="module")
def proprio_run(tmp_path_factory):
    """A tiny untrained Wall checkpoint with the stepwise body model, on the ``run`` fixture's data."""
    from uva_plan.envs import make_env, proprio_config

    root = tmp_path_factory.mktemp("extract-proprio")
    _, data = tiny_wall_run(root)
    env = make_env("wall")
    torch.manual_seed(0)
    cfg = world_model.make_config("tiny", env.action_low, env.action_high, env_name="wall",
                                  **proprio_config("wall"), dynamics_prior_width=16, proprio_body_stepwise=True)
    world_model.save_checkpoint(world_model.UVA(cfg), root / "proprio", extra_state={"step": 7})
    return root / "proprio", data


@pytest.mark.parametrize("train_state_models", [False, True])
def test_the_body_model_is_frozen_unless_asked(proprio_run, train_state_models):
    ckpt, data = proprio_run
    before = world_model.load(ckpt).state_dict()
    extract_policy(ckpt, data, steps=4, batch_size=4, train_state_models=train_state_models)
    after = world_model.load(ckpt).state_dict()
    changed = {k.split(".")[0] for k in before if not torch.equal(before[k], after[k])}
    assert "action_head" in changed
    assert ("proprio_dynamics" in changed) == train_state_models
    extra = json.loads((ckpt / "config.json").read_text())["extra_state"]
    assert extra["policy_extraction"]["train_state_models"] == train_state_models


def test_episode_policy_keeps_only_the_recorded_kind(run):
    ckpt, data = run
    expert = extract_policy(ckpt, data, steps=1, batch_size=2, method="uniform", episode_policy="expert")
    everything = extract_policy(ckpt, data, steps=1, batch_size=2, method="uniform")
    assert 0 < expert.train_episodes < everything.train_episodes
    with pytest.raises(UserInputError, match="no training episode .* 'greedy'"):
        extract_policy(ckpt, data, steps=1, episode_policy="greedy")


def test_policy_skip_keeps_a_kind_out_of_the_policy_mode_only(run, monkeypatch):
    import uva_plan.finetuning as finetuning
    from uva_plan.data.replay_buffer import load_replay_buffer
    from uva_plan.policy_extraction import _episode_policies

    ckpt, data = run
    recorded = _episode_policies(load_replay_buffer(data))
    real, drawn, fine_tuning = finetuning.finetune_windows, {}, [False]

    def counted(dataset, name):
        """Record the episode of every window the fine-tune draws (a dunder is looked up on the class,
        hence the subclass; draws after it, e.g. the weight report, are not counted)."""
        class Counting(type(dataset)):
            def __getitem__(self, index):
                if fine_tuning[0]:
                    drawn.setdefault(name, []).append(int(self.episode_of([index])[0]))
                return super().__getitem__(index)

        dataset.__class__ = Counting

    def spy(model, dataset, modes, **kwargs):
        counted(dataset, "all")
        counted(kwargs["mode_datasets"]["policy"], "policy")
        fine_tuning[0] = True
        try:
            return real(model, dataset, modes, **kwargs)
        finally:
            fine_tuning[0] = False

    monkeypatch.setattr(finetuning, "finetune_windows", spy)
    extract_policy(ckpt, data, steps=12, batch_size=4, policy_fraction=0.5, policy_skip=("random",))
    assert {recorded[e] for e in drawn["policy"]} <= {"expert", "wander"} and drawn["policy"]
    assert "random" in {recorded[e] for e in drawn["all"]}  # the world-model modes still see them
    extra = json.loads((ckpt / "config.json").read_text())["extra_state"]["policy_extraction"]
    assert extra["policy_skip"] == ["random"]
    with pytest.raises(UserInputError, match="--policy-skip greedy"):
        extract_policy(ckpt, data, steps=1, policy_skip=("greedy",))
    with pytest.raises(UserInputError, match="leaves no policy windows"):
        extract_policy(ckpt, data, steps=1, policy_skip=("expert", "wander", "random"))


@pytest.mark.parametrize("kwargs, message", [
    ({"method": "ppo"}, "method is 'ppo'"),
    ({"beta": 0.0}, "beta is 0.0"),
    ({"policy_fraction": 1.5}, "policy_fraction is 1.5"),
    ({"steps": 0}, "steps is 0"),
])
def test_bad_settings_are_refused_before_any_work(run, kwargs, message):
    ckpt, data = run
    with pytest.raises(UserInputError, match=message):
        extract_policy(ckpt, data, **kwargs)


def test_cli_answers_bad_input_in_one_line(run, tmp_path):
    ckpt, data = run
    missing = CliRunner().invoke(main, ["extract-policy", "--checkpoint", str(tmp_path / "none"), "--data", str(data)])
    assert missing.exit_code == 2 and "Traceback" not in missing.output
    assert len(missing.output.strip().splitlines()) == 1
    bad = CliRunner().invoke(main, ["extract-policy", "--checkpoint", str(ckpt), "--data", str(data), "--beta", "-1"])
    assert bad.exit_code == 2
