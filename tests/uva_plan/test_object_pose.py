"""A world model that predicts PushT's T (`train --object-pose`), through the library: config, training,
the predicted pose cost with the model and the oracle, and the imagination measures."""

import math

import numpy as np
import pytest
import torch

from uva_plan.envs import proprio_config
from uva_plan.errors import UserInputError

from .test_proprio import plans_with_model_and_oracle, proprio_model, pusht_data  # noqa: F401 (a fixture)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def object_model():
    return proprio_model(object_pose=True)


def test_pushts_object_pose_joins_the_agents_proprio_and_the_wall_has_none():
    cfg = proprio_config("pusht", object_pose=True)
    assert cfg["proprio_state_indices"] == [0, 1, 5, 6, 2, 3, 4]
    assert cfg["proprio_object_pose"] == [4, 5, 6] and cfg["actions_image_xy"]
    assert cfg["proprio_low"][6] == pytest.approx(-math.pi) and cfg["proprio_high"][6] == pytest.approx(3 * math.pi)
    with pytest.raises(UserInputError, match="no object to push"):
        proprio_config("wall", object_pose=True)


def test_train_with_object_pose_records_it_and_refuses_it_alone(pusht_data, tmp_path):  # noqa: F811
    from click.testing import CliRunner

    import world_model
    from uva_plan.cli import main

    args = ["train", "--data", str(pusht_data), "--config", "tiny", "--steps", "3", "--tokenizer-steps", "1",
            "--batch-size", "2", "--model-option", "dynamics_prior_width=8"]
    res = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "run"), "--proprio", "--object-pose"])
    assert res.exit_code == 0, res.output
    cfg = world_model.load(tmp_path / "run").config
    assert cfg.proprio_object_pose == [4, 5, 6] and cfg.proprio_state_indices == [0, 1, 5, 6, 2, 3, 4]
    res = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "bad"), "--object-pose"])
    assert res.exit_code == 2 and "--proprio" in res.output and len(res.output.splitlines()) == 1
    assert not (tmp_path / "bad").exists()


def test_train_solves_the_agents_step_from_the_data_and_keeps_it_through_training_and_resume(pusht_data, tmp_path,  # noqa: F811
                                                                                              monkeypatch):
    from click.testing import CliRunner

    import uva_plan.training
    import world_model
    from uva_plan.cli import main
    from uva_plan.data import load_replay_buffer
    from uva_plan.proprio import one_step_transitions

    args = ["train", "--data", str(pusht_data), "--config", "tiny", "--tokenizer-steps", "1", "--batch-size", "2",
            "--save-every", "2", "--proprio", "--object-pose", "--out", str(tmp_path / "run")]
    for name in ("dynamics_prior_width=8", "proprio_object_stepwise=true", "proprio_body_fit=true"):
        args += ["--model-option", name]
    # stopped after the tokenizer's state was saved and before the world model's first save: the resumed run
    # must still solve the map (the saved state holds it unsolved)
    with monkeypatch.context() as m:
        m.setattr(uva_plan.training, "_train_world_model", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
        CliRunner().invoke(main, [*args, "--steps", "2"])
    res = CliRunner().invoke(main, [*args, "--steps", "2", "--resume"])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(main, [*args, "--steps", "4", "--resume"])
    assert res.exit_code == 0, res.output
    model = world_model.load(tmp_path / "run")
    buffer = load_replay_buffer(pusht_data)
    now, act, nxt = one_step_transitions(buffer, range(buffer.n_episodes), model.config.proprio_state_indices)
    assert now.shape == (3 * 29, 7) and act.shape == (3 * 29, 2)   # no step across an episode's end
    with torch.no_grad():
        norm = model.proprio_normalizer.normalize
        body = model.object_dynamics.state
        state = norm(torch.from_numpy(now))[:, body]
        stepped = state + model.object_dynamics.body_step(torch.cat([state, model.normalizer.normalize(torch.from_numpy(act))], 1))
    # PushT's agent is linear per step: the solved map steps the held-out episodes' agent too, to float error
    assert torch.allclose(stepped, norm(torch.from_numpy(nxt))[:, body], atol=1e-4)


def test_the_predicted_pose_cost_plans_with_the_model_and_the_oracle_and_refuses_without():
    from uva_plan.evaluation import Evaluator

    goals, settings = plans_with_model_and_oracle(object_model(), "predicted_pose_sum")
    with pytest.raises(UserInputError, match="--object-pose"):
        Evaluator(proprio_model(), "pusht", settings).run("planner", goals)


def test_the_oracle_scores_the_true_poses_in_success_test_units_without_rendering_a_frame(monkeypatch):
    from uva_plan.envs import make_env
    from uva_plan.envs.pusht import ANGLE_SCALE
    from uva_plan.goal_costs import make_cost
    from uva_plan.simulator_objective import SimulatorObjective

    env = make_env("pusht")
    start = np.array([100.0, 100.0, 256.0, 256.0, 0.3, 0, 0, 0, 0, 0])
    goal = start.copy()
    goal[4] = 0.5  # the T a fifth of a radian further round, the agent where it is
    still = torch.tensor([100.0, 100.0]).expand(1, 2, 16, 2).clone()  # hold the agent where it is
    away = still.clone()
    away[0, 1] = torch.tensor([60.0, 100.0])
    model = object_model()
    goal_latents = model.encode(torch.from_numpy(env.render_state(goal)[None, None]))[:, 0]
    objective = SimulatorObjective("pusht", start[None], goal[None], cost=make_cost("predicted_pose_sum"),
                                   model=model, goal_latents=goal_latents)

    def no_frames(*_args, **_kwargs):
        raise AssertionError("a cost on poses rendered a frame")

    monkeypatch.setattr(objective.env, "render_state", no_frames)
    costs = objective(torch.cat([still[:, :1], away[:, 1:]], dim=1))
    # holding still leaves only the T's 0.2 rad; moving the agent away adds its distance
    assert costs[0, 0].item() == pytest.approx(0.2 * ANGLE_SCALE, abs=0.5)
    assert costs[0, 1] > costs[0, 0] + 10


def test_the_every_step_pose_cost_sees_a_plan_that_leaves_between_frames_and_needs_a_stepwise_model():
    from uva_plan.envs import make_env
    from uva_plan.evaluation import Evaluator
    from uva_plan.goal_costs import make_cost
    from uva_plan.simulator_objective import SimulatorObjective

    env = make_env("pusht")
    start = np.array([100.0, 100.0, 256.0, 256.0, 0.3, 0, 0, 0, 0, 0])
    hold = torch.tensor([100.0, 100.0]).expand(1, 1, 16, 2).clone()
    # a step towards (40, 100), then three back, in every 4-step stretch: the agent is 18-21 units out in
    # between, and back to within 6 at the frames
    wander = hold.clone()
    wander[0, 0, 0::4] = torch.tensor([40.0, 100.0])
    plans = torch.cat([hold, wander], dim=1)
    model = object_model()
    goal_latents = model.encode(torch.from_numpy(env.render_state(start)[None, None]))[:, 0]
    costs = {}
    for name in ("predicted_pose_sum", "predicted_pose_steps"):
        objective = SimulatorObjective("pusht", start[None], start[None], cost=make_cost(name), model=model,
                                       goal_latents=goal_latents)
        costs[name] = objective(plans)[0]
    frames, steps = costs["predicted_pose_sum"], costs["predicted_pose_steps"]
    assert frames[0] < 1 and steps[0] < 1                   # holding at the goal costs nothing either way
    assert steps[1] > 2 * frames[1] and steps[1] > 10        # the excursions between the frames are seen
    # the model's own every-step poses: a stepwise object model plans with it, another is refused
    plans_with_model_and_oracle(proprio_model(object_pose=True, proprio_object_stepwise=True), "predicted_pose_steps")
    with pytest.raises(UserInputError, match="proprio_object_stepwise=true"):
        Evaluator(object_model(), "pusht", settings_with_cost("predicted_pose_steps"))


def settings_with_cost(cost):
    from uva_plan.plan_settings import PlanSettings

    return PlanSettings(samples=4, iters=1, budget_steps=16, cost=cost)


def test_imagination_reports_the_predicted_pose_beside_the_drawn_one():
    from uva_plan.imagination import SamplingSettings, heldout_episodes, measure_imagination

    episodes = heldout_episodes(n_per_kind=1, steps=40, env_name="pusht")
    horizon = measure_imagination(object_model(), episodes, SamplingSettings("planner"), every=16)[0].horizons[-1]
    # an untrained object MLP says "the T stays": its error is copy-last's
    assert horizon.predicted_block_error == pytest.approx(horizon.block_copy_last_error, abs=1e-3)
    assert horizon.predicted_angle_error_deg == pytest.approx(horizon.angle_copy_last_error_deg, abs=1e-3)
    assert math.isfinite(horizon.predicted_agent_error)
    plain = measure_imagination(proprio_model(), episodes, SamplingSettings("planner"), every=16)[0].horizons[-1]
    assert math.isnan(plain.predicted_block_error) and math.isfinite(plain.predicted_agent_error)


def test_pushts_default_cost_reads_the_predicted_poses_where_the_model_and_the_goal_carry_them():
    from uva_plan.plan_settings import PlanSettings, cost_for

    model = object_model()
    assert cost_for(PlanSettings(), "pusht", model) == "predicted_pose_sum"
    stepwise = proprio_model(object_pose=True, proprio_object_stepwise=True)
    assert cost_for(PlanSettings(), "pusht", stepwise) == "predicted_pose_steps"  # the poses after every step
    assert cost_for(PlanSettings(), "pusht", stepwise, goal_states=False) == "multiscale_sum"
    assert cost_for(PlanSettings(), "pusht", model, goal_states=False) == "multiscale_sum"  # a user's picture
    assert cost_for(PlanSettings(), "pusht", proprio_model()) == "multiscale_sum+agent"
    assert cost_for(PlanSettings(cost="pose_sum"), "pusht", model) == "pose_sum"


def test_the_population_follows_the_cost_unless_asked_and_results_record_the_one_used(tmp_path):
    import world_model
    from uva_plan.plan_settings import PlanSettings, make_planner, population_for
    from uva_plan.planning import run_planning

    assert population_for(PlanSettings(), "predicted_pose_sum") == (512, 6)
    assert population_for(PlanSettings(), "multiscale_sum+agent") == (64, 3)
    assert population_for(PlanSettings(samples=8), "predicted_pose_sum") == (8, 6)
    assert make_planner(PlanSettings(), 0.25, "predicted_pose_sum").population == 512
    ckpt = tmp_path / "ckpt"
    world_model.save_checkpoint(object_model(), ckpt)
    payload = run_planning(env_name="pusht", checkpoint=str(ckpt), settings=PlanSettings(iters=1, budget_steps=8,
                           denoise_steps=1), episodes=1, methods=["planner"], out=tmp_path / "out")
    assert payload["settings"]["cost"] == "predicted_pose_sum"
    assert (payload["settings"]["samples"], payload["settings"]["iters"]) == (512, 1)


def test_plan_ranking_splits_the_predicted_poses_into_the_agents_and_the_ts_share():
    """benchmarks/cost_ranking.py with the predicted-pose cost: with BOTH true poses swapped in the cost
    would be the truth; with one, each share is a rank correlation."""
    import importlib.util
    from pathlib import Path

    from uva_plan.envs.goals import protocol_goals
    from uva_plan.plan_settings import PlanSettings

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "cost_ranking.py"
    spec = importlib.util.spec_from_file_location("cost_ranking", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = bench.rank_batch(object_model(), "pusht", protocol_goals("pusht", 2, seed=0), ["predicted_pose_sum"], 8,
                           PlanSettings(denoise_steps=1), seed=0)["predicted_pose_sum"]
    assert min(out["true_frames"]) > 0.99  # the true poses order plans exactly as the true distance
    assert len(out["true_T"]) == len(out["true_agent"]) == 2
    assert all(-1 <= r <= 1 for r in out["true_T"] + out["true_agent"])
    # the every-step cost (the stepwise model's default) splits the same way, on every step's poses
    import warnings

    stepwise = proprio_model(object_pose=True, proprio_object_stepwise=True)
    with warnings.catch_warnings():  # untrained, it says "everything stays": some costs are constant
        warnings.simplefilter("ignore")
        out = bench.rank_batch(stepwise, "pusht", protocol_goals("pusht", 2, seed=0), ["predicted_pose_steps"], 8,
                               PlanSettings(denoise_steps=1), seed=0)["predicted_pose_steps"]
    assert len(out["true_T"]) == len(out["true_agent"]) == 2


def test_pusht_tracking_follows_the_poses_read_from_the_video_at_every_step(pusht_data):  # noqa: F811
    """With a stepwise object model the default tracking cost is the success test's terms after every env
    step against the poses the locator reads from the video; labels pushed 60 units off in x are what the
    planner starts from, and following the video's agent brings the executed run back towards its path."""
    from uva_plan import imitation as im
    from uva_plan.data import load_replay_buffer
    from uva_plan.plan_settings import PlanSettings
    from uva_plan.proprio import agent_of_states, object_of_states, one_step_transitions

    model = proprio_model(object_pose=True, proprio_object_stepwise=True, proprio_body_fit=True)
    buffer = load_replay_buffer(pusht_data)
    model.fit_body_dynamics(*one_step_transitions(buffer, range(buffer.n_episodes), model.config.proprio_state_indices))
    assert im.default_track_cost(model, "pusht") == "subgoal_pose_steps"
    assert im.default_track_cost(object_model(), "pusht") == im.TRACK_COST  # no every-step poses: the frames
    ep = buffer.episode(0)
    frames, actions = np.asarray(buffer.img[ep])[:17], np.asarray(buffer.action[ep])[:16]
    states = np.asarray(buffer.state[ep])[:17]
    agent, block = im.video_poses("pusht", frames[None])
    assert torch.allclose(agent[0], agent_of_states("pusht", states), atol=4 / 512)  # the locator on true frames
    assert torch.allclose(block[0, :, :2], object_of_states("pusht", states)[:, :2], atol=4)
    labels = actions + np.array([60.0, 0.0], dtype=np.float32)
    settings = PlanSettings(samples=32, iters=3, denoise_steps=1, prior_fraction=0.25)
    tracked = im.track_video(model, "pusht", [states[0]], frames[None], labels[None], settings=settings)
    replayed = im.replay_actions("pusht", [states[0]], labels[None])
    off = lambda r: float((im.video_poses("pusht", r.frames[0][None])[0] - agent).norm(dim=-1).mean()) * 512  # noqa: E731
    assert off(replayed) > 30 and off(tracked) < 0.5 * off(replayed), (off(tracked), off(replayed))
    with pytest.raises(UserInputError, match="does not read it"):
        im.track_video(model, "pusht", [states[0]], frames[None], labels[None], settings=PlanSettings(cost="latent_l2"))
    with pytest.raises(UserInputError, match="only for pusht"):
        im.video_poses("wall", frames[None])
    from uva_plan.evaluation import Evaluator

    with pytest.raises(UserInputError, match="follows a video's poses step by step"):  # not a goal cost
        Evaluator(model, "pusht", PlanSettings(cost="subgoal_pose_steps"))
    with pytest.raises(UserInputError, match="does not roll them out step by step"):
        im.check_track_cost(object_model(), "pusht", "subgoal_pose_steps")
