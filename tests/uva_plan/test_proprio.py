"""A world model with proprioception, through the library: windows, training, planning, imagination."""

import numpy as np
import pytest
import torch

from uva_plan.envs import make_env, proprio_config
from uva_plan.errors import UserInputError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def proprio_model(env_name="pusht", object_pose=False, **options):
    from world_model import UVA, make_config

    env = make_env(env_name)
    torch.manual_seed(0)
    cfg = make_config("tiny", env.action_low, env.action_high, env_name=env_name, dynamics_prior_width=16,
                      **proprio_config(env_name, object_pose=object_pose), **options)
    return UVA(cfg).eval()


@pytest.fixture(scope="module")
def pusht_data(tmp_path_factory):
    from uva_plan.collection import collect_dataset

    path = tmp_path_factory.mktemp("data") / "pusht.zarr"
    collect_dataset(env_name="pusht", episodes=3, max_steps=30, policy="mixed", image_size=64, seed=0, out=str(path))
    return path


def test_windows_carry_the_named_state_entries_at_the_history_and_future_frames(pusht_data):
    from uva_plan.data import WindowDataset, WindowSpec, load_replay_buffer

    buffer = load_replay_buffer(pusht_data)
    spec = WindowSpec(proprio_indices=(0, 1, 5, 6))
    data = WindowDataset(buffer, spec)
    item = data[20]  # step 20 of episode 0: history 8, 12, 16, 20; future 24, 28, 29 (clamped), 29
    states = np.asarray(buffer.state)
    assert np.array_equal(item["history_proprio"], states[[8, 12, 16, 20]][:, [0, 1, 5, 6]])
    assert item["future_valid"].tolist() == [True, True, False, False]  # frames past the episode's end
    assert np.array_equal(item["future_proprio"], states[[24, 28, 29, 29]][:, [0, 1, 5, 6]])
    goal_step = 20 + int(item["goal_steps"])
    assert np.array_equal(item["goal_proprio"], states[goal_step][[0, 1, 5, 6]])
    assert "history_proprio" not in WindowDataset(buffer, WindowSpec())[20]
    with pytest.raises(UserInputError, match="entries"):
        WindowDataset(buffer, WindowSpec(proprio_indices=(0, 12)))


def test_train_with_proprio_records_it_in_the_checkpoint(pusht_data, tmp_path):
    from click.testing import CliRunner

    import world_model
    from uva_plan.cli import main

    out = tmp_path / "run"
    res = CliRunner().invoke(main, ["train", "--data", str(pusht_data), "--config", "tiny", "--steps", "3",
                                    "--tokenizer-steps", "1", "--batch-size", "2", "--out", str(out), "--proprio",
                                    "--model-option", "dynamics_prior_width=8"])
    assert res.exit_code == 0, res.output
    cfg = world_model.load(out).config
    assert cfg.proprio_state_indices == [0, 1, 5, 6] and cfg.proprio_image_xy == [0, 1] and cfg.proprio_dim == 4
    # without the dynamics prior the map has nowhere to go: one line, exit 2
    res = CliRunner().invoke(main, ["train", "--data", str(pusht_data), "--config", "tiny", "--steps", "3",
                                    "--out", str(tmp_path / "bad"), "--proprio"])
    assert res.exit_code == 2 and "dynamics_prior_width=64" in res.output and len(res.output.splitlines()) == 1


def test_train_solves_the_wall_agent_s_free_move_from_the_data(tmp_path):
    """`uva-plan train` on Wall data with the stepwise body and proprio_body_fit: the free move is solved
    on the transitions no wall changed (the Wall moves the agent by its action, so 1 / 16 per normalised
    action unit: x / 32 for proprio, a / 2 for actions) and the run records how many it kept."""
    from click.testing import CliRunner

    import world_model
    from uva_plan.cli import main
    from uva_plan.collection import collect_dataset
    from uva_plan.train_state import load_train_state

    data = tmp_path / "wall.zarr"
    collect_dataset(env_name="wall", episodes=3, max_steps=30, policy="mixed", image_size=64, seed=0, out=str(data))
    out = tmp_path / "run"
    args = ["train", "--data", str(data), "--config", "tiny", "--steps", "2", "--tokenizer-steps", "1",
            "--batch-size", "2", "--out", str(out), "--proprio"]
    for option in ("dynamics_prior_width=8", "proprio_body_stepwise=true", "proprio_glimpse=1", "proprio_body_fit=true"):
        args += ["--model-option", option]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    free = world_model.load(out).proprio_dynamics.free
    assert torch.allclose(free.weight, torch.tensor([[0.0, 0.0, 1 / 16, 0.0], [0.0, 0.0, 0.0, 1 / 16]]), atol=1e-5)
    info = load_train_state(out).info
    assert 0.5 < info["body_fit_kept"] <= 1.0 and info["body_fit_residual"] < 1e-5


def test_history_states_follow_the_history_frames():
    from uva_plan.env_batch import EnvBatch
    from uva_plan.envs.goals import protocol_goals

    goals = protocol_goals("pusht", 2, 0)
    batch = EnvBatch("pusht", [g.start_state for g in goals])
    first = batch.history_states(4, 4)
    assert first.shape == (2, 4, 10) and np.array_equal(first[:, 0], first[:, 3])  # the start repeated
    batch.step(np.tile(np.array([[256.0, 256.0]], dtype=np.float32), (2, 6, 1)))
    states = batch.history_states(4, 4)
    logged = np.stack([np.stack(log) for log in batch.state_log])
    assert np.array_equal(states, logged[:, [0, 0, 2, 6]])


def test_a_proprio_model_needs_the_history_states():
    from uva_plan.objective import encode_problems
    from uva_plan.proprio import history_proprio

    model = proprio_model()
    frames = torch.zeros(2, 4, 64, 64, 3, dtype=torch.uint8)
    goal = torch.zeros(2, 64, 64, 3, dtype=torch.uint8)
    with pytest.raises(UserInputError, match="proprioception"):
        encode_problems(model, frames, goal)
    problems = encode_problems(model, frames, goal, history_states=np.zeros((2, 4, 10)))
    assert problems.proprio.shape == (2, 4, 4)
    with pytest.raises(UserInputError, match="state entries"):
        history_proprio(model, np.zeros((2, 4, 3)))
    from world_model import UVA, make_config

    plain = UVA(make_config("tiny", [0, 0], [512, 512], env_name="pusht"))
    assert history_proprio(plain, np.zeros((2, 4, 10))) is None


def test_planning_with_a_proprio_model_runs_every_model_method():
    from uva_plan.envs.goals import protocol_goals
    from uva_plan.evaluation import Evaluator
    from uva_plan.plan_settings import PlanSettings

    goals = protocol_goals("pusht", 2, 0)
    # two chunks per plan: the policy prior imagines its second chunk's history, proprio included
    settings = PlanSettings(samples=4, iters=1, horizon=32, execute=16, budget_steps=16, denoise_steps=1)
    ev = Evaluator(proprio_model(), "pusht", settings)
    for method in ("planner", "planner+prior", "policy"):
        out = ev.run(method, goals)
        assert len(out.rows) == 2, method


def test_imagination_measures_a_proprio_model():
    from uva_plan.imagination import (
        SamplingSettings,
        heldout_episodes,
        measure_imagination,
        shuffled_action_loss,
    )

    episodes = heldout_episodes(n_per_kind=1, steps=40, env_name="pusht")
    model = proprio_model()
    reports = measure_imagination(model, episodes, SamplingSettings("planner"), every=16)
    assert [r.kind for r in reports] == ["pusher", "random"]
    true, shuffled = shuffled_action_loss(model, episodes, n_windows=8)
    assert np.isfinite(true) and np.isfinite(shuffled)


def test_the_still_start_test_scores_the_predicted_proprio_beside_the_drawn_agent():
    from uva_plan.imagination import direction_test

    model = proprio_model("wall", proprio_glimpse=2)
    with torch.no_grad():  # an MLP that predicts "no move": right exactly where the simulator is blocked at once
        model.proprio_dynamics.net[-1].weight.zero_()
        model.proprio_dynamics.net[-1].bias.zero_()
    results = direction_test(model, n_starts=6)
    # "no move" ends near the simulator exactly where the simulator's agent ends within 4 px of its start
    from uva_plan.imagination import DIRECTIONS, EVAL_SEED, NEAR_PX

    env = make_env("wall")
    starts = [env.reset(seed=EVAL_SEED + 50_000 + i)[1]["state"] for i in range(6)]
    for d in results:
        dx, dy = DIRECTIONS[d.direction]
        stayed = []
        for st in starts:
            env.set_state(st)
            for _ in range(model.config.chunk_len):
                env.step_state(np.array([dx, dy], dtype=np.float32) * env.action_high[0])
            stayed.append(np.hypot(*(env.get_state()[:2] - st[:2])) <= NEAR_PX)
        assert d.proprio_near == pytest.approx(np.mean(stayed)), d.direction
    from world_model import UVA, make_config

    env = make_env("wall")
    plain = UVA(make_config("tiny", env.action_low, env.action_high, env_name="wall")).eval()
    assert np.isnan(direction_test(plain, n_starts=1)[0].proprio_near)


def plans_with_model_and_oracle(model, cost: str):
    """Two protocol goals planned with ``model`` and with the image oracle under ``cost``, one tiny
    replan each; returns the goals and the settings for the caller's refusal check."""
    from uva_plan.envs.goals import protocol_goals
    from uva_plan.evaluation import Evaluator
    from uva_plan.plan_settings import PlanSettings

    goals = protocol_goals("pusht", 2, 0)
    settings = PlanSettings(samples=4, iters=1, horizon=16, execute=16, budget_steps=16, denoise_steps=1, cost=cost)
    for method in ("planner", "oracle-image"):
        out = Evaluator(model, "pusht", settings).run(method, goals)
        assert len(out.rows) == 2, method
    return goals, settings


def test_the_agent_cost_plans_with_a_proprio_model_and_the_oracle_and_refuses_without():
    from uva_plan.evaluation import Evaluator

    goals, settings = plans_with_model_and_oracle(proprio_model(), "multiscale_sum+agent")
    from world_model import UVA, make_config

    plain = UVA(make_config("tiny", [0, 0], [512, 512], env_name="pusht")).eval()
    with pytest.raises(UserInputError, match="--proprio"):
        Evaluator(plain, "pusht", settings).run("planner", goals)


def test_the_oracles_agent_is_the_true_agent_as_a_fraction_of_the_frame():
    from uva_plan.proprio import agent_of_proprio, agent_of_states

    states = np.array([[128.0, 384.0, 0, 0, 0, 10.0, 20.0, 0, 0, 0]])
    assert np.allclose(agent_of_states("pusht", states).numpy(), [[0.25, 0.75]])
    model = proprio_model()
    assert np.allclose(agent_of_proprio(model, torch.tensor([[128.0, 384.0, 10.0, 20.0]])).numpy(), [[0.25, 0.75]])


def test_behaviour_cloning_a_proprio_model_on_videos_without_states():
    from uva_plan.imagination import heldout_episodes
    from uva_plan.imitation import finetune_mode, finetune_policy

    ep = heldout_episodes(n_per_kind=1, steps=24, env_name="pusht")[0]
    model = proprio_model()
    tuned = finetune_policy(model, [ep.frames], [ep.actions], steps=2, batch_size=2)
    assert tuned is not model
    with pytest.raises(UserInputError, match="states"):
        finetune_mode(model, [ep.frames], [ep.actions], "forward_dynamics", steps=2, batch_size=2)


def test_pushts_default_cost_reads_the_agent_where_it_can_and_records_what_it_applied(tmp_path):
    """A proprio model and protocol goals: the image cost plus the agent; the same model with a user's
    picture (no goal state): the image cost alone; results.json says which."""
    import world_model
    from uva_plan.plan_settings import PlanSettings
    from uva_plan.planning import run_planning

    ckpt = tmp_path / "ckpt"
    world_model.save_checkpoint(proprio_model(), ckpt)
    settings = PlanSettings(samples=4, iters=1, budget_steps=16, denoise_steps=1)
    payload = run_planning(env_name="pusht", checkpoint=str(ckpt), settings=settings, episodes=1,
                           methods=["planner"], out=tmp_path / "out")
    assert payload["settings"]["cost"] == "multiscale_sum+agent"
    env = make_env("pusht")
    env.reset(seed=3)
    picture = tmp_path / "goal.png"
    import imageio.v3 as iio

    iio.imwrite(picture, env.render())
    payload = run_planning(env_name="pusht", checkpoint=str(ckpt), settings=PlanSettings(samples=4, iters=1, budget_steps=16,
                           denoise_steps=1), goal_image=str(picture), start_state=env.get_state().tolist(), episodes=1,
                           methods=["planner"], out=tmp_path / "out2")
    assert payload["settings"]["cost"] == "multiscale_sum"


def test_the_evaluators_cost_is_decided_per_run_not_by_the_run_before():
    """A run on a goal picture (no state) takes the image-only cost; a later run on protocol goals gets the
    agent cost back."""
    from uva_plan.envs.goals import GoalPair, protocol_goals
    from uva_plan.evaluation import Evaluator
    from uva_plan.plan_settings import PlanSettings

    goals = protocol_goals("pusht", 1, 0)
    ev = Evaluator(proprio_model(), "pusht", PlanSettings(samples=4, iters=1, horizon=16, execute=16, budget_steps=16,
                                                          denoise_steps=1))
    picture = [GoalPair(start_state=goals[0].start_state, goal_state=None)]
    ev.run("planner", picture, goal_frames=ev._goal_frames(goals))
    assert ev.cost_name == "multiscale_sum"
    ev.run("planner", goals)
    assert ev.cost_name == "multiscale_sum+agent"


def test_only_a_model_that_places_the_agent_gets_the_agent_cost():
    from uva_plan.plan_settings import PlanSettings, cost_for
    from world_model import UVA, make_config

    spec = {**proprio_config("pusht"), "proprio_image_xy": []}
    blind = UVA(make_config("tiny", [0, 0], [512, 512], env_name="pusht", dynamics_prior_width=8, **spec))
    assert cost_for(PlanSettings(), "pusht", blind) == "multiscale_sum"
    assert cost_for(PlanSettings(), "pusht", proprio_model()) == "multiscale_sum+agent"


def test_init_from_refuses_to_switch_proprioception_in_one_line(pusht_data, tmp_path):
    from click.testing import CliRunner

    from uva_plan.cli import main

    base = ["train", "--data", str(pusht_data), "--config", "tiny", "--steps", "2", "--batch-size", "2",
            "--model-option", "dynamics_prior_width=8"]
    res = CliRunner().invoke(main, [*base, "--tokenizer-steps", "1", "--out", str(tmp_path / "plain")])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(main, [*base, "--proprio", "--init-from", str(tmp_path / "plain"), "--out", str(tmp_path / "p")])
    assert res.exit_code == 2 and "without --proprio" in res.output and len(res.output.splitlines()) == 1


def _spy_on_policy(model):
    seen = []
    real = model.policy

    def policy(*args, **kwargs):
        seen.append((kwargs.get("history_proprio"), kwargs.get("goal_proprio")))
        return real(*args, **kwargs)

    model.policy = policy
    return seen


def test_the_policy_is_told_its_own_state_and_the_goals_where_they_are_known():
    """proprio_context: the policy alone and the planner's prior hand the policy the agent's state at
    each replan, and the goal's where the goal carries a state (protocol goals do, a picture does not)."""
    from uva_plan.envs.goals import protocol_goals
    from uva_plan.evaluation import Evaluator
    from uva_plan.plan_settings import PlanSettings

    goals = protocol_goals("pusht", 2, 0)
    settings = PlanSettings(samples=4, iters=1, horizon=16, execute=8, budget_steps=16, denoise_steps=1)
    model = proprio_model(proprio_context=True)
    seen = _spy_on_policy(model)
    ev = Evaluator(model, "pusht", settings)
    for method in ("policy", "planner+prior"):
        seen.clear()
        ev.run(method, goals)
        assert seen and all(h is not None and g is not None for h, g in seen), method
        hist, goal = seen[0]
        assert hist.shape[1:] == (4, 4) and goal.shape[-1] == 4
        true_goal_agent = torch.tensor([g.goal_state[:2] for g in goals], dtype=torch.float32)
        assert torch.allclose(goal[:: len(goal) // 2][:, :2].cpu(), true_goal_agent, atol=1e-3), method
    # a goal picture without a state: the history's proprio, no goal's
    from uva_plan.video_tracking import run_policy

    seen.clear()
    frames = np.stack([make_env("pusht").render_state(g.goal_state) for g in goals])
    run_policy(model, "pusht", [g.start_state for g in goals], frames, budget_steps=8)
    assert seen and all(h is not None and g is None for h, g in seen)
