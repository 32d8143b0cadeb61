"""Labels refined by the stepwise body model: they move from a wrong inverse-mode label to the action
the video shows, keep the label where the video shows no agent, report a posterior spread, and refuse
models and envs they cannot read."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from tests.uva_plan.test_imitation import expert_demo, tiny_wall_model
from uva_plan.action_labels import Labels, action_metrics
from uva_plan.errors import UserInputError
from uva_plan.label_refinement import refine_labels, why_not_refined

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def body_model(fitted: bool = True):
    """A tiny untrained Wall model with the stepwise body reading a pixel glimpse; its free move solved
    from a random-action episode's transitions (an untrained gate passes 99.3% of it)."""
    import world_model
    from uva_plan.envs import make_env, proprio_config

    env = make_env("wall")
    torch.manual_seed(0)
    cfg = world_model.make_config("tiny", env.action_low, env.action_high, env_name="wall", **proprio_config("wall"),
                                  dynamics_prior_width=16, proprio_body_stepwise=True, proprio_glimpse=1,
                                  proprio_glimpse_pixels=True, proprio_body_fit=True)
    model = world_model.UVA(cfg).eval()
    if fitted:
        rng = np.random.default_rng(0)
        env.reset(seed=0)
        states, actions = [env.get_state()], []
        for _ in range(200):
            actions.append(rng.uniform(env.action_low, env.action_high).astype(np.float32))
            states.append(env.step_state(actions[-1]))
        s = np.asarray(states, dtype=np.float32)[:, :2]
        model.fit_body_dynamics(s[:-1], np.asarray(actions), s[1:])
    return model


@pytest.fixture(scope="module")
def model():
    return body_model()


@pytest.fixture(scope="module")
def demo():
    return expert_demo(steps=24, seed=5)


def test_refined_labels_recover_the_actions_the_video_shows(model, demo):
    frames, actions, _ = demo
    rng = np.random.default_rng(1)
    noisy = (actions + rng.normal(0.0, 0.8, actions.shape)).astype(np.float32)
    prior = Labels(noisy, np.full_like(noisy, 0.8))
    refined = refine_labels(model, "wall", frames, prior)
    lo, hi = model.config.action_low, model.config.action_high
    before = action_metrics(prior.actions, actions, lo, hi)["action_mse"]
    after = action_metrics(refined.actions, actions, lo, hi)["action_mse"]
    assert after < 0.05 * before
    assert refined.actions.shape == actions.shape and refined.std.shape == actions.shape
    assert np.all(refined.std < prior.std)  # the video narrowed every step's spread
    # a batch of one gives the same labels as the single video, also under no_grad; the weights get no .grad
    with torch.no_grad():
        batched = refine_labels(model, "wall", frames[None], Labels(noisy[None], prior.std[None]))
    np.testing.assert_allclose(batched.actions[0], refined.actions, atol=1e-4)
    assert all(p.grad is None for p in model.parameters())


def test_the_spread_is_the_gaussian_posterior_s(model, demo):
    """With the gate open (untrained: it passes sigmoid(5) of the move) the step is linear in the action,
    J = gate x (the free move per action unit), and each axis's posterior spread is
    1 / sqrt(J^2 / noise^2 + 1 / prior^2), in normalised units."""
    from uva_plan.label_refinement import TRACK_NOISE

    frames, actions, _ = demo
    prior = Labels(actions, np.full_like(actions, 1.5))  # 0.75 normalised: above the floor
    refined = refine_labels(model, "wall", frames, prior)
    cfg = model.config
    half = (np.asarray(cfg.action_high) - np.asarray(cfg.action_low)) / 2.0
    unit = (np.asarray(cfg.proprio_high) - np.asarray(cfg.proprio_low)) / 2.0
    jac = np.diag(model.proprio_dynamics.free.weight.detach().numpy()[:, 2:]) / (1.0 + np.exp(-5.0))
    expected = half / np.sqrt((jac / (TRACK_NOISE / unit)) ** 2 + 1.0 / 0.75**2)
    np.testing.assert_allclose(refined.std, np.broadcast_to(expected, refined.std.shape), rtol=0.02)


def test_steps_without_a_visible_agent_keep_their_label(model, demo):
    frames, actions, _ = demo
    blank = frames.copy()
    blank[10:] = blank[0, 0, 0]  # the background colour of a corner: no agent from frame 10 on
    prior = Labels(actions + 0.5, np.full_like(actions, 0.5))  # some outside the action box: still kept
    refined = refine_labels(model, "wall", blank, prior)
    np.testing.assert_array_equal(refined.actions[9:], prior.actions[9:])
    np.testing.assert_array_equal(refined.std[9:], prior.std[9:])
    assert np.abs(refined.actions[:9] - actions[:9]).max() < 0.2


def test_models_and_envs_it_cannot_read_are_refused(model, demo):
    frames, actions, _ = demo
    assert why_not_refined(model, "wall") is None
    assert "stepwise body" in why_not_refined(tiny_wall_model(), "wall")
    assert "only on the Wall" in why_not_refined(model, "pusht")
    assert "only on the Wall" in why_not_refined(tiny_wall_model(), "pusht")  # the env is what rules it out
    labels = Labels(actions, np.ones_like(actions))
    with pytest.raises(UserInputError, match="stepwise body"):
        refine_labels(tiny_wall_model(), "wall", frames, labels)
    with pytest.raises(UserInputError, match="one per step"):
        refine_labels(model, "wall", frames[:-2], labels)
    with pytest.raises(UserInputError, match="one per step"):
        refine_labels(model, "wall", np.stack([frames, frames]), labels)  # a batch, one video's labels
    with pytest.raises(UserInputError, match="finite"):
        refine_labels(model, "wall", frames, Labels(np.where(actions > 1, np.nan, actions), labels.std))
    with pytest.raises(UserInputError, match="track_noise"):
        refine_labels(model, "wall", frames, labels, track_noise=0.0)


@pytest.mark.parametrize("refine", [True, False])
def test_imitate_label_refines_and_records_what_the_inverse_mode_read(tmp_path, demo, refine):
    from uva_plan.cli import main
    from uva_plan.data import ReplayBuffer, save_replay_buffer
    from world_model import save_checkpoint

    frames, actions, states = demo
    save_checkpoint(body_model(), tmp_path / "run")
    save_replay_buffer(ReplayBuffer(img=frames, action=np.concatenate([actions, actions[-1:]]),
                                    state=states.astype(np.float32), episode_ends=np.array([len(frames)])),
                       tmp_path / "demo.zarr")
    args = ["imitate", "--checkpoint", tmp_path / "run", "--video", tmp_path / "demo.zarr", "--mode", "label",
            "--env", "wall", "--out", tmp_path / "out", "--samples", "1"] + ([] if refine else ["--no-refine"])
    result = CliRunner().invoke(main, list(map(str, args)))
    assert result.exit_code == 0, result.output
    labels = json.loads((tmp_path / "out" / "results.json").read_text())["labels"]
    assert labels["refined"] is refine
    if refine:  # an untrained inverse mode reads little; the body model reads the video
        assert labels["action_r2"] > 0.9 > labels["inverse_mode"]["action_r2"]
        assert "refined by the body model" in result.output
    else:
        assert labels["not_refined_because"] == "--no-refine" and "inverse_mode" not in labels
