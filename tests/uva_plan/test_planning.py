"""Goal-image planning end to end on a tiny untrained model: the plumbing, the files, the protocol.

Quality figures come from benchmarks/, not from here; these tests check that every method runs on the
same goals, that results.json carries what it promises, and that bad input is one clear line."""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from uva_plan.cli import main
from uva_plan.envs import make_env
from uva_plan.envs.goals import protocol_goals, save_goals

FAST = ["--samples", "8", "--iters", "1", "--budget-steps", "8", "--denoise-steps", "1"]


def tiny_checkpoint(path, env_name="wall"):
    from world_model import UVA, make_config, save_checkpoint

    env = make_env(env_name)
    torch.manual_seed(0)
    save_checkpoint(UVA(make_config("tiny", env.action_low, env.action_high, env_name=env_name)), path)
    return path


@pytest.fixture(scope="module")
def wall_ckpt(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "wall")


def test_plan_with_baselines_writes_results_gifs_and_plot(wall_ckpt, tmp_path):
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["plan", "--checkpoint", str(wall_ckpt), "--env", "wall", "--episodes", "2",
                                    "--baselines", "--out", str(out), *FAST])
    assert res.exit_code == 0, res.output
    data = json.loads((out / "results.json").read_text())
    assert set(data["methods"]) == {"random", "greedy", "policy", "planner", "planner+prior", "oracle-image",
                                    "oracle-state"}
    for summary in data["methods"].values():
        rows = summary["episodes"]
        assert len(rows) == 2
        # The summary is the episodes' own aggregate, not a separate number that could drift from them.
        assert summary["success_rate"] == pytest.approx(np.mean([r["success"] for r in rows]))
        assert summary["mean_final_distance"] == pytest.approx(np.mean([r["final_distance"] for r in rows]))
        assert summary["reached_rate"] == pytest.approx(np.mean([r["reached"] for r in rows]))
        assert all(r["reached"] or not r["success"] for r in rows)  # ending at the goal is reaching it
    # An episode's success is the env's verdict on its final distance (< 4 units on the Wall).
    for r in data["methods"]["oracle-state"]["episodes"]:
        assert r["success"] == (r["final_distance"] < 4.0)
    # 8 steps cannot cross rooms: random actions stay far, the true-distance oracle gets closer than they do.
    assert data["methods"]["random"]["success_rate"] == 0.0
    assert data["methods"]["oracle-state"]["mean_final_distance"] < data["methods"]["random"]["mean_final_distance"]
    # Every method saw the same goals: the random baseline and the oracle report the same goal indices.
    assert [e["goal_index"] for e in data["methods"]["random"]["episodes"]] == [0, 1]
    assert data["methods"]["planner"]["objective_calls"] > 0
    assert (out / "episode_000.gif").exists() and (out / "episode_001.gif").exists()
    assert (out / "cost_per_iteration.png").exists()


def test_goal_file_and_goal_image_sources(wall_ckpt, tmp_path):
    goals = tmp_path / "goals.json"
    save_goals(goals, protocol_goals("wall", 1, seed=3))
    res = CliRunner().invoke(main, ["plan", "--checkpoint", str(wall_ckpt), "--goals", str(goals),
                                    "--out", str(tmp_path / "a"), *FAST])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "a" / "results.json").read_text())["goal_source"] == "file"

    import imageio.v3 as iio

    env = make_env("wall", image_size=128)
    env.reset(seed=5)
    iio.imwrite(tmp_path / "goal.png", env.render())  # another size: resized, unambiguous
    res = CliRunner().invoke(main, ["plan", "--checkpoint", str(wall_ckpt), "--goal-image", str(tmp_path / "goal.png"),
                                    "--seed", "4", "--out", str(tmp_path / "b"), *FAST])
    assert res.exit_code == 0, res.output
    summary = json.loads((tmp_path / "b" / "results.json").read_text())["methods"]["planner+prior"]
    # No goal state: success cannot be judged; the image distances are reported instead.
    assert summary["success_rate"] is None
    assert np.isfinite(summary["final_pixel_distance"]) and np.isfinite(summary["final_latent_distance"])


@pytest.mark.parametrize(
    "args, match",
    [
        (["--samples", "2"], "samples"),
        (["--horizon", "12"], "multiple of the model's chunk length"),
        (["--execute", "40"], "execute"),
        (["--prior-fraction", "1.5"], "prior-fraction"),
        (["--planner", "nope"], "planner"),
        (["--model-passes", "0"], "model-passes"),
    ],
)
def test_bad_planner_options_exit_2_with_one_line(wall_ckpt, tmp_path, args, match):
    res = CliRunner().invoke(main, ["plan", "--checkpoint", str(wall_ckpt), "--out", str(tmp_path / "o"), *args])
    assert res.exit_code == 2, res.output
    assert match in res.output and "Traceback" not in res.output
    assert not (tmp_path / "o" / "results.json").exists()


def test_checkpoint_of_another_env_is_rejected(tmp_path):
    ckpt = tiny_checkpoint(tmp_path / "pusht", "pusht")
    res = CliRunner().invoke(main, ["plan", "--checkpoint", str(ckpt), "--env", "wall", "--out", str(tmp_path / "o")])
    assert res.exit_code == 2
    assert "trained on env 'pusht'" in res.output


def test_missing_checkpoint_is_one_line(tmp_path):
    res = CliRunner().invoke(main, ["plan", "--checkpoint", str(tmp_path / "nope"), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert len(res.output.strip().splitlines()) == 1


def test_a_fresh_process_reports_a_bad_checkpoint_in_one_line(tmp_path):
    """In a new process world_model is imported only inside the command; its errors must still be one line."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "uva_plan.cli", "plan", "--checkpoint", str(tmp_path / "missing"),
                           "--out", str(tmp_path / "o")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("Error:") and len(proc.stderr.strip().splitlines()) == 1


def test_state_oracle_sums_the_distance_over_frame_times_or_keeps_the_last():
    from uva_plan.simulator_objective import SimulatorObjective

    start, goal = [10.0, 10.0, 32.0], [20.0, 10.0, 32.0]
    actions = torch.zeros(1, 1, 8, 2)
    actions[..., :4, 0] = 2.0  # 8 units right in the first 4 steps, then stand still
    summed = SimulatorObjective("wall", [start], [goal], frame_stride=4)(actions)
    final = SimulatorObjective("wall", [start], [goal], frame_stride=4, state_reduce="final")(actions)
    assert float(final) == pytest.approx(2.0, abs=1e-4)
    assert float(summed) == pytest.approx(4.0, abs=1e-4)  # 2 units short at both frame times
    with pytest.raises(ValueError, match="state_reduce"):
        SimulatorObjective("wall", [start], [goal], state_reduce="mean")


@pytest.mark.parametrize("command", [
    ["plan", "--episodes", "1"],
    ["imitate", "--video", "x.gif", "--env", "wall", "--mode", "label"],
    ["fit-distance", "--checkpoint", "nope", "--data", "nope.zarr"],
])
def test_a_missing_gpu_is_one_line_for_every_command(tmp_path, command, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = [] if command[0] == "fit-distance" else ["--out", str(tmp_path / "o")]
    res = CliRunner().invoke(main, [*command, *out, "--device", "cuda"])
    assert res.exit_code == 2
    assert "no CUDA GPU is available here; expected --device cpu" in res.output
    assert "Traceback" not in res.output and not (tmp_path / "o").exists()


def test_a_failed_plan_leaves_no_output_folder(wall_ckpt, tmp_path):
    out = tmp_path / "o"
    res = CliRunner().invoke(main, ["plan", "--checkpoint", str(wall_ckpt), "--horizon", "10", "--out", str(out)])
    assert res.exit_code == 2 and "horizon 10 (--horizon) must be a multiple" in res.output
    assert not out.exists()


def test_a_rerun_with_fewer_episodes_leaves_no_stale_gifs_and_files_are_readable(wall_ckpt, tmp_path):
    import os

    out = tmp_path / "o"
    old = os.umask(0o022)
    try:
        for episodes in ("2", "1"):
            res = CliRunner().invoke(main, ["plan", "--checkpoint", str(wall_ckpt), "--episodes", episodes,
                                            "--out", str(out), *FAST])
            assert res.exit_code == 0, res.output
    finally:
        os.umask(old)
    assert sorted(p.name for p in out.glob("episode_*.gif")) == ["episode_000.gif"]
    assert ((out / "results.json").stat().st_mode & 0o777) == 0o644


@pytest.mark.parametrize(("plan", "policy", "verdict"), [(0.5, 0.2, "beat"), (0.2, 0.2, "tied with"),
                                                         (0.1, 0.2, "did not beat")])
def test_the_demo_caption_says_what_the_rows_are_and_who_won(plan, policy, verdict):
    from uva_plan.cli import demo_caption

    payload = {"n_goals": 6, "settings": {"planner": "cem", "budget_steps": 64},
               "methods": {"planner+prior": {"success_rate": plan}, "policy": {"success_rate": policy}}}
    line = demo_caption(payload)
    assert f"The planner ({plan:.0%}) {verdict} the policy alone ({policy:.0%})" in line
    assert "within 4 units" in line and "64-step budget" in line and "6 cross-room goals" in line
    pusht = demo_caption({**payload, "env": "pusht", "settings": {"planner": "cem", "budget_steps": 50}})
    assert "under 20 px" in pusht and "under 20 degrees" in pusht and "50-step budget" in pusht
    assert f"The planner ({plan:.0%}) {verdict} the policy alone ({policy:.0%})" in pusht


def test_every_planner_name_builds_its_own_planner_and_an_unknown_one_is_an_error():
    from uva_plan.errors import UserInputError
    from uva_plan.evaluation import make_planner
    from uva_plan.plan_settings import PLANNER_NAMES, PlanSettings

    built = {name: type(make_planner(PlanSettings(planner=name), 0.25)).__name__ for name in PLANNER_NAMES}
    assert len(set(built.values())) == len(PLANNER_NAMES)  # no name falls back to another planner
    with pytest.raises(UserInputError, match="unknown planner 'cme'"):
        make_planner(PlanSettings(planner="cme"), 0.25)


def test_the_subgoal_cost_runs_from_the_cli(wall_ckpt, tmp_path):
    """The planner compares each plan with the way the video predictor imagines towards the goal,
    re-imagined at every replan (it used to fail: nothing passed the subgoals)."""
    out = tmp_path / "o"
    res = CliRunner().invoke(main, ["plan", "--checkpoint", str(wall_ckpt), "--episodes", "1", "--cost", "subgoal",
                                    "--out", str(out), *FAST])
    assert res.exit_code == 0, res.output
    data = json.loads((out / "results.json").read_text())
    assert data["settings"]["cost"] == "subgoal" and data["methods"]["planner+prior"]["objective_calls"] > 0


def test_imagined_subgoals_cover_the_horizon(wall_ckpt):
    from uva_plan.objective import imagine_subgoals
    from world_model import load

    model = load(wall_ckpt)
    history = model.encode(torch.zeros(2, 4, 64, 64, 3, dtype=torch.uint8))
    sub = imagine_subgoals(model, history, history[:, 0], horizon=32, num_steps=1)
    assert sub.shape == (2, 8, 8, 8, 4)


def test_passing_the_goal_without_staying_counts_as_reached_not_success():
    """The overshoot measure: an episode that starts on its goal and drives away has reached it at step 0
    and failed at the end."""
    from uva_plan.env_batch import EnvBatch
    from uva_plan.envs.goals import GoalPair
    from uva_plan.evaluation import Evaluator
    from uva_plan.plan_settings import PlanSettings

    goal = GoalPair([12.0, 30.0, 32.0], [12.0, 30.0, 32.0])
    batch = EnvBatch("wall", [goal.start_state])
    batch.step(np.tile([[2.0, 0.0]], (1, 8, 1)))
    frames = batch.current_frames()
    row = Evaluator(None, "wall", PlanSettings())._judge(batch, [goal], frames, 0.0, 0, 0)[0]
    assert row.reached and not row.success and row.final_distance == pytest.approx(16.0)


def test_the_first_prior_proposal_is_the_policys_own_deterministic_choice(wall_ckpt):
    """With ``first_temperature=0`` the first proposal of each problem is the policy's temperature-0
    chunk (the same whatever the generator), the others keep their spread; without it nothing changes."""
    import world_model
    from uva_plan.objective import PolicyProposals

    model = world_model.load(wall_ckpt)
    env = make_env("wall")
    obs, info = env.reset(seed=0)
    history = torch.from_numpy(np.repeat(obs[None, None], 4, axis=1)).repeat(2, 1, 1, 1, 1)
    goal = torch.from_numpy(env.render_state([52.0, 20.0, info["state"][2]]))[None].repeat(2, 1, 1, 1)

    def draw(seed, first_temperature):
        gen = torch.Generator().manual_seed(seed)
        return PolicyProposals(model, history, goal, generator=gen, first_temperature=first_temperature)(2, 5, 32)

    a, b = draw(0, 0.0), draw(1, 0.0)
    assert a.shape == (2, 5, 32, 2)
    torch.testing.assert_close(a[:, 0], b[:, 0])  # deterministic
    assert not torch.allclose(a[:, 1:], b[:, 1:])  # the rest are samples
    torch.testing.assert_close(a[0, 0], a[1, 0])  # same problem twice, same choice
    plain = draw(0, None)
    assert not torch.allclose(plain[:, 0], draw(1, None)[:, 0])


def test_every_cli_option_says_what_it_is_for_and_states_name_their_layout():
    import click

    bare = [f"{name} {p.opts[0]}" for name, cmd in main.commands.items() for p in cmd.params
            if isinstance(p, click.Option) and not p.help]
    assert bare == []
    for name in ("plan", "imitate"):
        state = next(p for p in main.commands[name].params if p.name == "start_state")
        assert "agent_x,agent_y,door_center_y" in state.help and "block_angle" in state.help


def test_the_policy_anchor_prices_leaving_the_policys_plan_and_nothing_else():
    from uva_plan.objective import PolicyAnchoredObjective

    class Flat:
        n_calls = 3

        def __call__(self, actions):
            return torch.zeros(actions.shape[:2])

    anchor = torch.tensor([[[1.0, -1.0]] * 4, [[0.0, 0.0]] * 4])  # [B=2, H=4, A=2]
    obj = PolicyAnchoredObjective(Flat(), anchor, low=[-2.0, -2.0], high=[2.0, 2.0], weight=8.0)
    cands = torch.stack([anchor, anchor + torch.tensor([2.0, 0.0])], dim=1)  # the anchor itself, then 2 units off in x
    cost = obj(cands)
    assert torch.allclose(cost[:, 0], torch.zeros(2))
    assert torch.allclose(cost[:, 1], torch.full((2,), 8.0 * (0.5 ** 2) / 2))  # (2/4)^2 on one of two dimensions
    assert obj.n_calls == 3


def test_a_planner_with_a_policy_anchor_runs_from_the_cli(wall_ckpt, tmp_path):
    res = CliRunner().invoke(main, ["plan", "--checkpoint", str(wall_ckpt), "--episodes", "1", "--prior-weight", "5",
                                    "--out", str(tmp_path / "out"), *FAST])
    assert res.exit_code == 0, res.output
    settings = json.loads((tmp_path / "out" / "results.json").read_text())["settings"]
    assert settings["prior_weight"] == 5.0
    res = CliRunner().invoke(main, ["plan", "--checkpoint", str(wall_ckpt), "--prior-weight", "-1",
                                    "--out", str(tmp_path / "bad")])
    assert res.exit_code == 2 and "--prior-weight" in res.output


def test_the_goal_is_encoded_once_per_batch_and_the_history_once_per_replan(wall_ckpt, tmp_path, monkeypatch):
    import world_model

    shapes = []
    real = world_model.UVA.encode

    def counting(self, frames):
        shapes.append(tuple(frames.shape[:2]))
        return real(self, frames)

    monkeypatch.setattr(world_model.UVA, "encode", counting)
    # 2 episodes in one batch, 16 steps executing 8: 2 replans; prior and anchor on (they share the encoding)
    res = CliRunner().invoke(main, ["plan", "--checkpoint", str(wall_ckpt), "--episodes", "2", "--prior-weight", "1",
                                    "--budget-steps", "16", "--samples", "8", "--iters", "1", "--denoise-steps", "1",
                                    "--out", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    goals = [s for s in shapes if s == (2, 1)]
    histories = [s for s in shapes if s == (2, 4)]
    assert len(goals) == 1 and len(histories) == 2


@pytest.mark.parametrize("cost, runs", [("latent_distance", ("latent",)), ("distance", ("joint",)), ("latent_l2", ())])
def test_the_objective_runs_only_the_distance_head_its_cost_reads(wall_ckpt, tmp_path, monkeypatch, cost, runs):
    import world_model

    called = []
    for head, method in (("joint", "_distance_steps"), ("latent", "_latent_distance_steps")):
        real = getattr(world_model.UVA, method)

        def counting(self, *args, _real=real, _head=head, **kwargs):
            called.append(_head)
            return _real(self, *args, **kwargs)

        monkeypatch.setattr(world_model.UVA, method, counting)
    res = CliRunner().invoke(main, ["plan", "--checkpoint", str(wall_ckpt), "--episodes", "1", "--cost", cost,
                                    "--budget-steps", "8", "--samples", "8", "--iters", "1", "--denoise-steps", "1",
                                    "--out", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    assert set(called) == set(runs)


def test_the_policy_anchor_reuses_the_proposals_the_planner_drew(wall_ckpt, tmp_path, monkeypatch):
    """--prior-weight anchors to the policy's first proposal: no extra policy pass per replan."""
    import world_model

    calls = []
    real = world_model.UVA.policy

    def counting(self, *args, **kwargs):
        calls.append(1)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(world_model.UVA, "policy", counting)
    counts = []
    for weight in ("0", "3"):
        calls.clear()
        res = CliRunner().invoke(main, ["plan", "--checkpoint", str(wall_ckpt), "--episodes", "1", "--prior-weight", weight,
                                        "--budget-steps", "16", "--samples", "8", "--iters", "2", "--denoise-steps", "1",
                                        "--out", str(tmp_path / f"out{weight}")])
        assert res.exit_code == 0, res.output
        counts.append(len(calls))
    assert counts[0] == counts[1] > 0


def test_the_price_of_leaving_the_policy_defaults_per_env_and_is_recorded(wall_ckpt, tmp_path, monkeypatch):
    from uva_plan.plan_settings import PRIOR_WEIGHTS, PlanSettings, prior_weight_for

    assert prior_weight_for(PlanSettings(), "wall") == PRIOR_WEIGHTS["wall"] == 0.0  # measured: README
    assert prior_weight_for(PlanSettings(), "pusht") == 0.0
    monkeypatch.setitem(PRIOR_WEIGHTS, "wall", 100.0)  # an env whose world model needs a price
    assert prior_weight_for(PlanSettings(), "wall") == 100.0
    assert prior_weight_for(PlanSettings(prior_weight=3.0), "wall") == 3.0
    assert prior_weight_for(PlanSettings(cost="latent_l2"), "wall") == 0.0  # measured for the default cost only
    res = CliRunner().invoke(main, ["plan", "--checkpoint", str(wall_ckpt), "--episodes", "1",
                                    "--out", str(tmp_path / "out"), *FAST])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "out" / "results.json").read_text())["settings"]["prior_weight"] == 100.0


def test_the_library_records_the_price_it_applied(wall_ckpt, tmp_path, monkeypatch):
    from uva_plan.plan_settings import PRIOR_WEIGHTS, PlanSettings
    from uva_plan.planning import run_planning

    monkeypatch.setitem(PRIOR_WEIGHTS, "wall", 100.0)

    payload = run_planning(env_name="wall", checkpoint=str(wall_ckpt), settings=PlanSettings(samples=8, iters=1,
                           budget_steps=16, denoise_steps=1), episodes=1, methods=["planner+prior"], out=tmp_path / "lib")
    assert payload["settings"]["prior_weight"] == 100.0


def _count_passes(monkeypatch) -> list:
    """Every forward-dynamics call's MAR passes, appended to the returned list."""
    import world_model

    passes = []
    real = world_model.UVA.forward_dynamics

    def counting(self, *args, **kwargs):
        passes.append(kwargs.get("num_iters", 1))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(world_model.UVA, "forward_dynamics", counting)
    return passes


def test_model_passes_reach_every_imagined_chunk_and_are_recorded(wall_ckpt, tmp_path, monkeypatch):
    """`--model-passes N`: the world model imagines each candidate chunk with N MAR passes."""

    passes = _count_passes(monkeypatch)
    res = CliRunner().invoke(main, ["plan", "--checkpoint", str(wall_ckpt), "--episodes", "1", "--model-passes", "2",
                                    "--out", str(tmp_path / "out"), *FAST])
    assert res.exit_code == 0, res.output
    assert passes and set(passes) == {2}
    assert json.loads((tmp_path / "out" / "results.json").read_text())["settings"]["model_passes"] == 2


@pytest.mark.parametrize("first_plan", ["hold", "centre"])
def test_the_first_plan_holds_the_agent_where_it_is_or_starts_at_the_box_centre(first_plan, monkeypatch):
    """PushT's hold plan is the agent's own position (proprioception), never the block's; later plans
    start from the previous one. "centre" leaves the planner its own start (the box's centre)."""
    import planners
    from uva_plan.evaluation import Evaluator
    from uva_plan.plan_settings import PlanSettings

    inits = []
    real = planners.CEM.plan

    def spy(self, objective, **kwargs):
        inits.append(kwargs["init"])
        return real(self, objective, **kwargs)

    monkeypatch.setattr(planners.CEM, "plan", spy)
    goals = protocol_goals("pusht", 2, 0)
    settings = PlanSettings(samples=4, iters=1, horizon=4, execute=4, budget_steps=8, first_plan=first_plan)
    Evaluator(None, "pusht", settings, image_size=16).run("oracle-state", goals)
    assert len(inits) == 2 and inits[1] is not None
    if first_plan == "centre":
        assert inits[0] is None
    else:
        agents = torch.tensor([g.start_state[0:2] for g in goals], dtype=torch.float32)
        assert inits[0].shape == (2, 4, 2) and torch.allclose(inits[0], agents[:, None].expand(2, 4, 2))


def test_an_unknown_first_plan_is_one_line(wall_ckpt, tmp_path):
    res = CliRunner().invoke(main, ["plan", "--checkpoint", str(wall_ckpt), "--first-plan", "middle",
                                    "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "--first-plan" in res.output and "Traceback" not in res.output


@pytest.mark.parametrize(("env_name", "asked", "applied"), [("wall", None, "latent_distance_sum"),
                                                            ("pusht", None, "multiscale_sum"),
                                                            ("pusht", "latent_l2", "latent_l2")])
def test_the_goal_cost_defaults_per_env_and_the_one_applied_is_recorded(tmp_path, env_name, asked, applied,
                                                                         monkeypatch):
    """No --cost: the env's measured default cost scores the plans, and results.json says which."""
    import uva_plan.evaluation as evaluation
    from uva_plan.plan_settings import PlanSettings
    from uva_plan.planning import run_planning

    built = []
    real = evaluation.make_cost
    monkeypatch.setattr(evaluation, "make_cost", lambda name: (built.append(name), real(name))[1])
    ckpt = tiny_checkpoint(tmp_path / "ckpt", env_name)
    settings = PlanSettings(samples=4, iters=1, budget_steps=16, denoise_steps=1, cost=asked)
    payload = run_planning(env_name=env_name, checkpoint=str(ckpt), settings=settings, episodes=1,
                           methods=["planner"], out=tmp_path / "out")
    assert built == [applied] and payload["settings"]["cost"] == applied


def test_settings_errors_reach_python_callers_without_a_model_and_env_names_resolve():
    """A mistyped first plan is an error for the simulator oracles too (no model to validate against), and
    the per-env defaults accept the gymnasium id but not an unknown env."""
    from uva_plan.envs import ENV_IDS
    from uva_plan.errors import UserInputError
    from uva_plan.evaluation import Evaluator
    from uva_plan.plan_settings import PlanSettings, cost_for

    with pytest.raises(UserInputError, match="first_plan"):
        Evaluator(None, "pusht", PlanSettings(first_plan="middle"))
    assert cost_for(PlanSettings(), ENV_IDS["pusht"]) == "multiscale_sum+agent"  # no model: the oracles' true states
    assert cost_for(PlanSettings(), ENV_IDS["pusht"], goal_states=False) == "multiscale_sum"  # a user's picture
    with pytest.raises(UserInputError, match="unknown environment"):
        cost_for(PlanSettings(), "maze")


@pytest.mark.parametrize(("env_name", "asked", "applied"), [("wall", None, 1), ("pusht", None, 2), ("pusht", 1, 1)])
def test_model_passes_default_per_env_and_the_ones_applied_are_recorded(tmp_path, env_name, asked, applied,
                                                                        monkeypatch):
    """No --model-passes: the env's measured default (PushT 2, Wall 1) imagines every chunk."""
    from uva_plan.plan_settings import PlanSettings
    from uva_plan.planning import run_planning

    passes = _count_passes(monkeypatch)
    ckpt = tiny_checkpoint(tmp_path / "ckpt", env_name)
    settings = PlanSettings(samples=4, iters=1, budget_steps=16, denoise_steps=1, model_passes=asked)
    payload = run_planning(env_name=env_name, checkpoint=str(ckpt), settings=settings, episodes=1,
                           methods=["planner"], out=tmp_path / "out")
    assert passes and set(passes) == {applied} and payload["settings"]["model_passes"] == applied


@pytest.mark.parametrize(("env_name", "asked", "applied"), [("wall", None, 8), ("pusht", None, 4), ("pusht", 8, 8)])
def test_steps_per_replan_default_per_env_and_the_ones_applied_are_recorded(tmp_path, env_name, asked, applied):
    """No --execute: the env's measured default (PushT 4, Wall 8) sets how often the planner replans."""
    from uva_plan.plan_settings import PlanSettings
    from uva_plan.planning import run_planning

    ckpt = tiny_checkpoint(tmp_path / "ckpt", env_name)
    settings = PlanSettings(samples=4, iters=1, budget_steps=16, denoise_steps=1, execute=asked)
    payload = run_planning(env_name=env_name, checkpoint=str(ckpt), settings=settings, episodes=1,
                           methods=["planner"], out=tmp_path / "out")
    assert payload["settings"]["execute"] == applied
    assert payload["methods"]["planner"]["objective_calls"] == 16 // applied  # one CEM iteration per replan


def test_a_horizon_shorter_than_the_envs_default_interval_is_refused_by_name():
    from uva_plan.errors import UserInputError
    from uva_plan.plan_settings import PlanSettings

    with pytest.raises(UserInputError, match=r"horizon 4 \(--horizon\) is shorter than wall's default 8 steps"):
        PlanSettings(horizon=4).validate(4, "wall")
    PlanSettings(horizon=4).validate(4, "pusht")  # PushT replans every 4: fits
    PlanSettings(horizon=4, execute=2).validate(4, "wall")


def test_a_cost_that_reads_pixels_sees_the_decoded_imagined_frames_and_goal(tmp_path):
    """The pose cost reads objects from frames: the objective decodes the imagined latents it scores
    and the goal's latents (the same decoder on both sides), and the CLI runs it on PushT."""
    import world_model
    from uva_plan.goal_costs import GoalCost
    from uva_plan.objective import UVAObjective

    ckpt = tiny_checkpoint(tmp_path / "pusht", "pusht")
    model = world_model.load(ckpt)
    seen = {}

    class Recording(GoalCost):
        needs_latents, needs_frames = False, True

        def __call__(self, traj):
            seen.update(latents=traj.latents, frames=traj.frames, goal_frames=traj.goal_frames,
                        subgoal_frames=traj.subgoal_frames)
            return torch.zeros(traj.frames.shape[0])

    s = model.config.image_size
    history = torch.randint(0, 255, (2, model.config.n_history, s, s, 3), dtype=torch.uint8)
    goal = torch.randint(0, 255, (2, s, s, 3), dtype=torch.uint8)
    objective = UVAObjective(model, history, goal, Recording(), num_steps=1)
    env = make_env("pusht")
    actions = torch.as_tensor(env.action_low, dtype=torch.float32).expand(2, 3, model.config.chunk_len, 2).clone()
    assert objective(actions).shape == (2, 3)
    assert seen["frames"].shape == (6, model.config.n_future, s, s, 3)
    assert torch.allclose(seen["frames"], model.decode(seen["latents"]))
    assert torch.allclose(seen["goal_frames"][::3], model.decode(model.encode(goal.unsqueeze(1))[:, 0]))
    Recording.needs_subgoals = True  # tracking: the video's frames, decoded once per objective
    subgoals = model.encode(history)
    decoded = []
    real_decode = model.decode
    model.decode = lambda z: decoded.append(tuple(z.shape)) or real_decode(z)
    objective = UVAObjective(model, history, goal, Recording(), num_steps=1, subgoals=subgoals)
    objective(actions)
    objective(actions)
    assert torch.allclose(seen["subgoal_frames"][::3], real_decode(subgoals))
    assert decoded.count(tuple(subgoals.shape)) == 1  # the subgoals once; no goal decode (the cost reads none)
    assert len(decoded) == 1 + 2  # + the imagined frames of each call
    # subgoals too short for a longer plan are imagined afresh, and decoded again
    objective(torch.cat([actions, actions], dim=2))
    assert seen["subgoal_frames"].shape[1] == 2 * model.config.n_future
    res = CliRunner().invoke(main, ["plan", "--env", "pusht", "--checkpoint", str(ckpt), "--episodes", "1", "--cost",
                                    "pose_sum", *FAST, "--execute", "4", "--out", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "out" / "results.json").read_text())["settings"]["cost"] == "pose_sum"


def test_the_plan_ranking_benchmark_lines_up_each_plans_costs_with_its_true_outcome(tmp_path):
    """benchmarks/cost_ranking.py: the pose cost on the TRUE frames orders plans as the true distance
    does (whatever the model), so a misaligned plan, goal or frame time would show here."""
    import importlib.util
    from pathlib import Path

    import world_model
    from uva_plan.envs.goals import protocol_goals
    from uva_plan.plan_settings import PlanSettings

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "cost_ranking.py"
    spec = importlib.util.spec_from_file_location("cost_ranking", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    model = world_model.load(tiny_checkpoint(tmp_path / "pusht", "pusht"))
    out = bench.rank_batch(model, "pusht", protocol_goals("pusht", 2, seed=0), ["pose_sum"], 8,
                           PlanSettings(denoise_steps=1), seed=0)["pose_sum"]
    assert min(out["true_frames"]) > 0.8
    assert all(-1 <= r <= 1 for r in out["imagined"]) and min(out["regret_imagined"]) >= 0
    assert 0 <= min(out["regret_true_frames"]) and max(out["regret_true_frames"]) < 15  # it picks the best plan, near enough


def test_the_price_of_moving_anchors_the_plan_that_holds_still_and_is_recorded(wall_ckpt, tmp_path, monkeypatch):
    from uva_plan import objective
    from uva_plan.plan_settings import HOLD_WEIGHTS, PlanSettings, hold_weight_for

    monkeypatch.setitem(HOLD_WEIGHTS, "predicted_pose_sum", 300.0)  # a cost whose planner needs a price
    assert hold_weight_for(PlanSettings(), "predicted_pose_sum") == 300.0
    assert hold_weight_for(PlanSettings(), "latent_distance_sum") == 0.0  # measured per cost
    assert hold_weight_for(PlanSettings(hold_weight=2.0), "latent_distance_sum") == 2.0
    seen = []
    original = objective.PolicyAnchoredObjective.__init__

    def record(self, obj, anchor, low, high, weight):
        seen.append((anchor() if callable(anchor) else anchor, weight))
        original(self, obj, anchor, low, high, weight)

    monkeypatch.setattr(objective.PolicyAnchoredObjective, "__init__", record)
    res = CliRunner().invoke(main, ["plan", "--checkpoint", str(wall_ckpt), "--episodes", "1", "--hold-weight", "7",
                                    "--out", str(tmp_path / "out"), *FAST])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "out" / "results.json").read_text())["settings"]["hold_weight"] == 7.0
    anchor, weight = seen[0]
    assert weight == 7.0 and anchor.shape[1:] == (16, 2) and torch.all(anchor == 0)  # the Wall holds at zero velocity
    seen.clear()  # every planning method pays it, the simulator oracles too (which imagine nothing)
    res = CliRunner().invoke(main, ["plan", "--checkpoint", str(wall_ckpt), "--episodes", "1", "--hold-weight", "7",
                                    "--baselines", "--out", str(tmp_path / "all"), *FAST])
    assert res.exit_code == 0, res.output
    assert len(seen) >= 4 and all(w == 7.0 for _, w in seen)
    res = CliRunner().invoke(main, ["plan", "--checkpoint", str(wall_ckpt), "--hold-weight", "-1",
                                    "--out", str(tmp_path / "bad")])
    assert res.exit_code == 2 and "--hold-weight" in res.output
