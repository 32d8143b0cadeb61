"""Imitation from action-free videos: window averaging, metrics, label files, the replay harness (true
actions must reproduce the demo), and the plumbing of tracking and behaviour cloning on a tiny UVA."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from uva_plan import imitation as im
from uva_plan.errors import UserInputError


def expert_demo(env_name: str = "wall", steps: int = 24, seed: int = 3, image_size: int = 64):
    """A scripted demonstration: frames ``[steps + 1, S, S, 3]``, actions ``[steps, A]``, states ``[steps + 1, D]``."""
    from uva_plan.envs import make_env
    from uva_plan.envs.policies import make_policy

    env = make_env(env_name, image_size=image_size)
    obs, info = env.reset(seed=seed)
    policy = make_policy(env_name, "expert" if env_name == "wall" else "pusher", seed=seed)
    policy.reset(info["state"])
    frames, states, actions = [obs], [info["state"]], []
    for _ in range(steps):
        a = policy(env.get_state())
        obs, _, _, _, info = env.step(a)
        frames.append(obs)
        states.append(info["state"])
        actions.append(a)
    return np.stack(frames), np.stack(actions).astype(np.float32), np.stack(states)


def tiny_wall_model(seed: int = 0):
    from world_model.config import make_config
    from world_model.model import UVA

    torch.manual_seed(seed)
    return UVA(make_config("tiny", [-2.0, -2.0], [2.0, 2.0], env_name="wall", image_size=64)).eval()


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny_model():
    return tiny_wall_model()


@pytest.fixture(scope="module")
def demo():
    return expert_demo()


# ------------------------------------------------------------------------------- window averaging


class DiffModel:
    """A stand-in with UVA's inverse-dynamics contract whose "prediction" is exactly known: the change of
    frame value between consecutive frames (std 0), plus ``bias[offset]`` for the call on the video
    shifted by ``offset`` (recognised from its length)."""

    def __init__(self, t: int, stride: int = 4, bias=None):
        from types import SimpleNamespace

        self.config = SimpleNamespace(frame_stride=stride, image_size=8, chunk_len=4 * stride, action_dim=1)
        self.t = t
        self.bias = bias or {}

    def encode(self, x):
        return x.float()

    def inverse_dynamics(self, latents, num_samples, return_std, num_steps, generator):
        v = latents[:, :, 0, 0, :1]
        offset = self.t - latents.shape[1]
        mean = v[:, 1:] - v[:, :-1] + self.bias.get(offset, 0.0)
        return mean, torch.zeros_like(mean)


def ramp_video(values) -> np.ndarray:
    return np.broadcast_to(np.asarray(values, np.uint8)[:, None, None, None], (len(values), 8, 8, 3)).copy()


def test_dense_labels_stay_aligned_with_the_steps():
    values = np.array([10, 12, 15, 15, 20, 26, 27, 30, 30, 41, 45])
    labels = im.label_frames(DiffModel(len(values)), ramp_video(values))
    np.testing.assert_allclose(labels.actions[:, 0], np.diff(values))
    np.testing.assert_allclose(labels.std, 0.0)


def test_overlapping_predictions_are_averaged_over_the_windows_covering_each_step():
    t = 12
    model = DiffModel(t, bias={0: 0.0, 1: 4.0, 2: 8.0, 3: 12.0})
    labels = im.label_frames(model, ramp_video(np.full(t, 50)))
    # Step i is covered by the shifted videos with offset <= i: their biases are averaged ...
    expected = [np.mean([0.0, 4.0, 8.0, 12.0][: min(i, 3) + 1]) for i in range(t - 1)]
    np.testing.assert_allclose(labels.actions[:, 0], expected)
    # ... and their disagreement is the step's spread (population std of the biases).
    np.testing.assert_allclose(labels.std[:, 0], [np.std([0.0, 4.0, 8.0, 12.0][: min(i, 3) + 1]) for i in range(t - 1)],
                               atol=1e-5)
    sparse = im.label_frames(model, ramp_video(np.full(t, 50)), dense=False)
    np.testing.assert_allclose(sparse.actions, 0.0)


def test_average_overlapping_pools_spreads_and_rejects_bad_parts():
    mean_a = np.array([[[1.0], [3.0]]])
    mean_b = np.array([[[5.0]]])
    mean, std = im.average_overlapping([(0, mean_a, np.ones_like(mean_a)), (1, mean_b, np.zeros_like(mean_b))], 2)
    np.testing.assert_allclose(mean[0, :, 0], [1.0, 4.0])
    # step 1: samples N(3, 1) and 5 pooled -> variance 0.5 * (1 + 9 + 25) - 16 = 1.5
    np.testing.assert_allclose(std[0, :, 0], [1.0, np.sqrt(1.5)], rtol=1e-6)
    with pytest.raises(UserInputError, match="expected"):
        im.average_overlapping([(1, mean_b, mean_b)], 2)  # step 0 uncovered
    with pytest.raises(UserInputError, match="expected"):
        im.average_overlapping([(0, mean_b, mean_b)], 2)  # wrong length


def test_tiny_uva_labels_have_the_video_shape_and_are_reproducible(tiny_model, demo):
    frames = demo[0][:18]
    a = im.label_frames(tiny_model, frames, num_samples=2, seed=1)
    b = im.label_frames(tiny_model, frames, num_samples=2, seed=1)
    assert a.actions.shape == (17, 2) and a.std.shape == (17, 2)
    assert np.all(np.isfinite(a.actions)) and np.all(a.std >= 0) and a.std.mean() > 0
    np.testing.assert_array_equal(a.actions, b.actions)
    batch = im.label_frames(tiny_model, np.stack([frames, frames]), num_samples=1)
    assert batch.actions.shape == (2, 17, 2)
    with pytest.raises(UserInputError, match=r"expected \[T, 64, 64, 3\]"):
        im.label_frames(tiny_model, frames[:, :32])


# --------------------------------------------------------------------------- metrics and files


def test_action_metrics_on_known_cases():
    rng = np.random.default_rng(0)
    true = rng.uniform(-2, 2, size=(50, 2))
    perfect = im.action_metrics(true, true, [-2, -2], [2, 2])
    assert perfect["action_r2"] == pytest.approx(1.0) and perfect["action_mse"] == 0.0
    mean_only = im.action_metrics(np.broadcast_to(true.mean(0), true.shape), true, [-2, -2], [2, 2])
    assert mean_only["action_r2"] == pytest.approx(0.0, abs=1e-12)
    shifted = im.action_metrics(true + 1.0, true, [-2, -2], [2, 2])
    assert shifted["action_mse"] == pytest.approx(1.0) and shifted["action_mse_normalized"] == pytest.approx(0.25)
    with pytest.raises(UserInputError, match="equal shapes"):
        im.action_metrics(true[:10], true, [-2, -2], [2, 2])


def test_label_files_are_written_whole(tmp_path):
    labels = im.Labels(np.arange(10, dtype=np.float32).reshape(5, 2), np.full((5, 2), 0.5, np.float32))
    true = labels.actions + 1
    npz, csv_path = im.save_labels(tmp_path, labels, true)
    data = np.load(npz)
    np.testing.assert_array_equal(data["actions"], labels.actions)
    np.testing.assert_array_equal(data["true_actions"], true)
    lines = csv_path.read_text().splitlines()
    assert lines[0] == "step,action_0,action_1,std_0,std_1,true_action_0,true_action_1"
    assert len(lines) == 6 and lines[3].startswith("2,4,5,0.5,0.5,5,6")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["actions.csv", "actions.npz"]  # no temp files left


# ------------------------------------------------------------------------------ the replay harness


@pytest.mark.parametrize("env_name", ["wall", "pusht"])
def test_replaying_the_true_actions_reproduces_the_demo(env_name):
    frames, actions, states = expert_demo(env_name, steps=20, seed=11)
    rollout = im.replay_actions(env_name, [states[0]], actions[None])
    np.testing.assert_allclose(rollout.final_states[0], states[-1], atol=1e-6)
    np.testing.assert_array_equal(rollout.frames[0], frames)
    result = im.judge(env_name, rollout, states[-1:], frames[-1:])
    assert result["success_rate"] == 1.0 and result["mean_final_distance"] == pytest.approx(0.0, abs=1e-6)
    assert result["final_pixel_distance"] == 0.0


def test_replaying_other_actions_misses_the_demo(demo):
    frames, actions, states = demo
    rollout = im.replay_actions("wall", [states[0]], -actions[None])
    result = im.judge("wall", rollout, states[-1:], frames[-1:])
    assert result["success_rate"] == 0.0 and result["mean_final_distance"] > 4.0


def test_replay_rejects_bad_actions(demo):
    _, actions, states = demo
    with pytest.raises(UserInputError, match="expected"):
        im.replay_actions("wall", [states[0]], actions[None, :, :1])
    bad = actions[None].copy()
    bad[0, 3, 0] = np.nan
    with pytest.raises(UserInputError, match="NaN"):
        im.replay_actions("wall", [states[0]], bad)


# -------------------------------------------------------------------------- tracking and cloning


def test_tracking_runs_the_whole_video_inside_the_action_box(tiny_model, demo):
    from uva_plan.plan_settings import PlanSettings

    frames, actions, states = demo
    frames, actions = frames[:17], actions[:16]
    settings = PlanSettings(cost="subgoal", samples=8, iters=1, denoise_steps=1, prior_fraction=0.25)
    rollout = im.track_video(tiny_model, "wall", [states[0]], frames[None], actions[None], settings=settings,
                             subgoal_every=8)
    assert rollout.actions.shape == (1, 16, 2) and len(rollout.frames[0]) == 17
    assert np.all(np.abs(rollout.actions) <= 2.0)
    with pytest.raises(UserInputError, match="inferred actions have shape"):
        im.track_video(tiny_model, "wall", [states[0]], frames[None], actions[None, :5], settings=settings)


def test_a_heavy_label_prior_makes_tracking_execute_the_labels(tiny_model, demo):
    """The inferred actions reach the planner as a candidate: with leaving them priced out, tracking
    executes them exactly (here the true actions, so the demo's end is reached)."""
    from uva_plan.plan_settings import PlanSettings

    frames, actions, states = demo
    settings = PlanSettings(cost="subgoal", samples=8, iters=1, denoise_steps=1, prior_fraction=0.25)
    rollout = im.track_video(tiny_model, "wall", [states[0]], frames[None], actions[None], settings=settings,
                             label_weight=1e6)
    np.testing.assert_allclose(rollout.actions[0], actions, atol=1e-5)
    assert im.judge("wall", rollout, states[-1:], frames[-1:])["success_rate"] == 1.0


def test_label_prior_adds_the_scaled_deviation():
    labels = torch.tensor([[[1.0, -1.0], [0.0, 0.0]]])  # [B=1, H=2, A=2]
    prior = im.LabelPrior(lambda a: torch.zeros(a.shape[:2]), labels, torch.tensor([-2.0, -2.0]),
                          torch.tensor([2.0, 2.0]), weight=3.0)
    cands = torch.stack([labels[0], labels[0] + 2.0], dim=0)[None]  # [1, 2, 2, 2]
    np.testing.assert_allclose(prior(cands).numpy(), [[0.0, 3.0]])


def test_behaviour_cloning_fits_the_labels_and_leaves_the_model_untouched(tiny_model, demo):
    frames, actions, _ = demo
    before = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    losses = []
    tuned = im.finetune_policy(tiny_model, [frames], [actions], steps=30, batch_size=8, lr=1e-3, seed=0,
                               progress=lambda step, loss: losses.append(loss))
    assert len(losses) == 30 and tuned is not tiny_model
    assert np.mean(losses[-5:]) < np.mean(losses[:5])
    for k, v in tiny_model.state_dict().items():
        assert torch.equal(v, before[k]), k
    with pytest.raises(UserInputError, match="expected"):
        im.finetune_policy(tiny_model, [frames], [actions[:-1]], steps=1)


def test_policy_rollout_covers_the_budget(tiny_model, demo):
    frames, _, states = demo
    rollout = im.run_policy(tiny_model, "wall", [states[0]], frames[-1:], budget_steps=12,
                            denoise_steps=1)
    assert len(rollout.frames[0]) == 13 and rollout.final_states.shape == (1, 3)
    # The rollout's frames are the env's renders of its states: its last frame is its final state's.
    from uva_plan.envs import make_env

    assert np.array_equal(rollout.frames[0][-1], make_env("wall").render_state(rollout.final_states[0]))
    verdict = im.judge("wall", rollout, states[-1:], frames[-1:])
    distance = float(np.hypot(*(rollout.final_states[0, :2] - states[-1, :2])))
    assert verdict["mean_final_distance"] == pytest.approx(distance)
    assert verdict["success_rate"] == float(distance < 4.0)
