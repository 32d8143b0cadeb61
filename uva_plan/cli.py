"""The `uva-plan` command line: thin click commands over the library.

Heavy libraries (torch, diffusers, gymnasium, zarr) are imported inside the commands, never at module
level, so `uva-plan --help` answers at once. Every error a user can fix is printed as one line and the
process exits with code 2, without a traceback.
"""

from __future__ import annotations

import math
import os

import click

from uva_plan.cli_errors import OneLineErrorGroup, device_option, seed_option, user_errors

ENV_CHOICES = click.Choice(["wall", "pusht"])


@click.group(cls=OneLineErrorGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="uva-plan")
def main():
    """Plan with a learned video-action world model (UVA): collect data, train, plan to goal images,
    and imitate action-free videos."""
    # Before any command loads torch's OpenMP: idle OpenMP threads spin by default, and on a shared
    # CPU busy with other work that made training ~20x slower here (11 vs 183 samples/s, tiny).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


@main.command()
@click.option("--env", "env_name", type=ENV_CHOICES, required=True, help="Environment to collect from.")
@click.option("--episodes", type=click.IntRange(min=1), required=True, help="Number of episodes.")
@click.option("--max-steps", type=click.IntRange(min=2), default=100, show_default=True, help="Steps per episode.")
@click.option(
    "--policy",
    type=click.Choice(["random", "expert", "wander", "box", "dash", "pusher", "mixed"]),
    default="mixed",
    show_default=True,
    help="Scripted policy: random, expert (Wall), wander (Wall: piecewise-constant random velocities), box (Wall: "
         "the same, velocities uniform over the action box like a planner's candidates), dash (Wall: rests, "
         "then fast straight moves, mostly into walls), pusher (PushT) or a per-episode mix (Wall 60% expert / 20% wander / 20% random; PushT 80% pusher / "
         "20% random).",
)
@click.option("--image-size", type=click.IntRange(min=16, max=512), default=64, show_default=True,
              help="Frame side in pixels.")
@seed_option("First episode seed.")
@click.option("--out", type=click.Path(dir_okay=True, file_okay=False), required=True, help="Output PATH.zarr.")
@click.option("--overwrite", is_flag=True, help="Replace an existing output.")
@user_errors
def collect(env_name, episodes, max_steps, policy, image_size, seed, out, overwrite):
    """Roll out a scripted policy and store a Diffusion-Policy replay buffer (zarr)."""
    from uva_plan.collection import collect_dataset

    summary = collect_dataset(
        env_name=env_name,
        episodes=episodes,
        max_steps=max_steps,
        policy=policy,
        image_size=image_size,
        seed=seed,
        out=out,
        overwrite=overwrite,
        progress=True,
    )
    click.echo(
        f"Wrote {summary['episodes']} episodes, {summary['steps']} steps to {out} "
        f"({summary['steps_per_second']:.0f} steps/s)"
    )


@main.command()
@click.option("--data", type=click.Path(), required=True, help="Replay buffer PATH.zarr (from `uva-plan collect`).")
@click.option(
    "--config", "config_name", type=click.Choice(["tiny", "small", "base"]), default="small", show_default=True,
    help="Model size: tiny (tests), small (CPU), base (GPU).",
)
@click.option("--steps", type=click.IntRange(min=1), required=True, help="World-model optimizer steps (total).")
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Run directory (new or empty).")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last saved state.")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default=None, help="Default: cuda if available, else cpu.")
@click.option("--tokenizer-steps", type=click.IntRange(min=0), default=None, help="Tokenizer steps (preset default).")
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Windows per process per step (preset default).")
@click.option("--lr", type=click.FloatRange(min=0, max=1, min_open=True), default=None, help="Peak learning rate (preset default).")
@seed_option("Seed of weights, data order and noise.")
@click.option("--val-every", type=click.IntRange(min=1), default=200, show_default=True, help="Validate every N steps.")
@click.option("--save-every", type=click.IntRange(min=1), default=500, show_default=True, help="Checkpoint every N steps.")
@click.option("--model-option", "model_options", multiple=True, metavar="KEY=VALUE",
              help="Override one field of the model preset (repeatable), e.g. frame_stride=1 or width=192; "
                   "VALUE is read as JSON, else kept as text.")
@click.option("--init-from", type=click.Path(), default=None, metavar="RUN_DIR",
              help="Start from this run's weights and frozen tokenizer (no tokenizer stage); parts that "
                   "--model-option adds start at their initial values, e.g. a Gaussian warp trained first, "
                   "then action_warp_kernel=gaussian+local.")
@click.option("--proprio", is_flag=True,
              help="Give the world model the agent's proprioception (its position and, on PushT, velocity) "
                   "from the data's states: it predicts where the agent goes and draws it there.")
@click.option("--object-pose", is_flag=True,
              help="With --proprio: also the pose of the object the agent pushes (PushT's T), predicted in the "
                   "object's own frame and drawn where it says (README, \"The block's pose\").")
@click.option("--replica-digest-dir", type=click.Path(file_okay=False), default=None, hidden=True,
              help="Testing only: each process writes the digest of its weights here.")
@user_errors
def train(data, config_name, steps, out, resume, device, tokenizer_steps, batch_size, lr, seed, val_every, save_every,
          model_options, init_from, proprio, object_pose, replica_digest_dir):
    """Train the world model on a replay buffer: the frame tokenizer, then UVA's masked multi-task
    training. Runs as is under `accelerate launch --multi_gpu --num_processes N -m uva_plan.cli train`
    and `torchrun --nproc_per_node N -m uva_plan.cli train`."""
    from uva_plan.errors import UserInputError
    from uva_plan.training import TrainConfig
    from uva_plan.training import train as run_training
    from world_model.errors import WorldModelError

    if init_from is not None and tokenizer_steps is not None:
        raise UserInputError("--tokenizer-steps was given with --init-from, which keeps that run's tokenizer; expected one of them")
    try:
        result = run_training(
            TrainConfig(
                data=data, out=out, config=config_name, steps=steps, resume=resume, device=device,
                tokenizer_steps=tokenizer_steps, batch_size=batch_size, lr=lr, seed=seed, val_every=val_every,
                save_every=save_every, replica_digest_dir=replica_digest_dir,
                model_overrides=_parse_model_options(model_options), init_from=init_from, proprio=proprio,
                object_pose=object_pose,
            )
        )
    except WorldModelError as exc:
        # user_errors decides which errors it handles before this command has imported world_model.
        raise UserInputError(str(exc)) from None
    if result.is_main_process:
        val = ", ".join(f"{k} {v:.4f}" for k, v in result.val_losses.items())
        click.echo(f"Trained {result.step} steps ({result.samples_per_second:.1f} samples/s on {result.num_processes} "
                   f"process(es)); validation loss per mode: {val}")
        click.echo(f"Checkpoint: {result.run_dir} (load with world_model.load)")


@main.command("merge-data")
@click.option("--data", "paths", type=click.Path(), multiple=True, required=True,
              help="A replay buffer to merge (repeat; episodes are written in this order).")
@click.option("--out", type=click.Path(dir_okay=True, file_okay=False), required=True, help="Output PATH.zarr.")
@click.option("--held-out-of", type=click.Path(), default=None,
              help="RUN_DIR whose held-out episodes are left out of the buffer it was trained on.")
@click.option("--overwrite", is_flag=True, help="Replace an existing output.")
@user_errors
def merge_data(paths, out, held_out_of, overwrite):
    """Merge replay buffers of one env into one (e.g. a run's data plus `--policy box` episodes to
    fine-tune it on)."""
    from uva_plan.data.merge import merge_replay_buffers

    r = merge_replay_buffers(paths, out, overwrite=overwrite, held_out_of=held_out_of)
    parts = ", ".join(f"{n} from {p}" for p, n in r["per_input"].items())
    click.echo(f"Wrote {r['episodes']} episodes ({r['steps']} steps: {parts}) to {r['path']}")


@main.command("fit-distance")
@click.option("--checkpoint", type=click.Path(), required=True, help="RUN_DIR of `uva-plan train` (rewritten in place).")
@click.option("--data", type=click.Path(), required=True, help="The replay buffer the run was trained on.")
@click.option("--steps", type=click.IntRange(min=1), default=2000, show_default=True, help="Optimizer steps of the head.")
@click.option("--batch-size", type=click.IntRange(min=2), default=256, show_default=True, help="(frame, goal) pairs per step.")
@click.option("--method", type=click.Choice(["expectile", "td", "graph"]), default="graph", show_default=True,
              help="expectile: a low expectile of hindsight step counts; td: a shortest-path distance by "
                   "temporal differences over recorded transitions (cuts the detours of wandering episodes); "
                   "graph: regress Dijkstra distances over the recorded frames, joined where two frames' "
                   "latents nearly coincide.")
@click.option("--form", type=click.Choice(["pair", "metric"]), default=None,
              help="Replace the head by a fresh one of this form (pair: a conv net on frame and goal side by side; "
                   "metric: the distance between their embeddings). Default: keep the checkpoint's head.")
@click.option("--empty-frames", "empty_fraction", type=click.FloatRange(min=0, max=1, max_open=True), default=0.0,
              show_default=True,
              help="Share of each batch whose frame is replaced by the empty scene (the agent faded out), "
                   "labelled as unreachable, so an imagined future that lost the agent never "
                   "reads as progress (--method graph).")
@seed_option("Seed of the pair draws.")
@device_option("Where to fit.")
@user_errors
def fit_distance(checkpoint, data, steps, batch_size, method, form, empty_fraction, seed, device):
    """Refit the latent-distance head (the default goal cost) on frozen frame latents: cheap, and it
    ranks frames by their distance to a goal better than the joint training leaves it (--method graph
    --form metric made the shipped Wall head). Run it after the last `uva-plan train` of a run."""
    from uva_plan.distance_fit import fit_latent_distance

    r = fit_latent_distance(checkpoint, data, steps=steps, batch_size=batch_size, seed=seed, device=device, progress=True,
                            method=method, form=form, empty_fraction=empty_fraction)
    click.echo(f"Fitted {r.steps} steps on {r.train_episodes} training episodes ({r.pairs_per_second:.0f} pairs/s); "
               f"held-out loss against hindsight step counts (an upper bound of the way; expectile) "
               f"{r.val_loss_before:.4f} -> {r.val_loss_after:.4f}. Checkpoint: {checkpoint}")


@main.command("extract-policy")
@click.option("--checkpoint", type=click.Path(), required=True, help="RUN_DIR of `uva-plan train` (rewritten in place).")
@click.option("--data", type=click.Path(), required=True, help="The replay buffer the run was trained on.")
@click.option("--method", type=click.Choice(["awr", "uniform"]), default="awr", show_default=True,
              help="awr: weigh each recorded chunk by how much closer it brought the agent to its hindsight goal "
                   "(the latent goal distance); uniform: plain hindsight cloning (the control).")
@click.option("--steps", type=click.IntRange(min=1), default=3000, show_default=True, help="Fine-tuning steps.")
@click.option("--batch-size", type=click.IntRange(min=2), default=32, show_default=True, help="Training windows per step.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True, max=1), default=3e-4, show_default=True,
              help="Peak learning rate (cosine schedule, 5% warm-up).")
@click.option("--beta", type=click.FloatRange(min=0, min_open=True), default=4.0, show_default=True,
              help="AWR temperature in env steps: weight = exp(advantage / beta).")
@click.option("--max-weight", type=click.FloatRange(min=1), default=20.0, show_default=True,
              help="Largest AWR weight of one chunk.")
@click.option("--policy-fraction", type=click.FloatRange(min=0, min_open=True, max=1), default=0.5, show_default=True,
              help="Share of steps in the policy mode; the rest keep training the other modes (the world model).")
@click.option("--episode-policy", type=str, default=None,
              help="Only episodes the data records as collected by this policy (e.g. expert).")
@click.option("--policy-skip", type=str, multiple=True,
              help="Keep episodes of this collection policy out of the policy mode only (repeatable; e.g. dash: "
                   "the world model still learns its stops from them).")
@click.option("--hold-at-goal/--no-hold-at-goal", default=True, show_default=True,
              help="Targets past a near hindsight goal hold the agent still there instead of the recorded motion on.")
@click.option("--train-state-models", is_flag=True, default=False,
              help="Also train the proprio / object dynamics (frozen by default: they never read the backbone, "
                   "so the policy gains nothing from their change).")
@seed_option("Seed of the window draws.")
@device_option("Where to train.")
@user_errors
def extract_policy(checkpoint, data, method, steps, batch_size, lr, beta, max_weight, policy_fraction, episode_policy,
                   policy_skip, hold_at_goal, train_state_models, seed, device):
    """Fine-tune the goal-conditioned policy (the planner's proposal prior) to follow the data's better
    trajectories: advantage-weighted regression with the model's own goal distance. Run it after
    `uva-plan fit-distance`."""
    from uva_plan.policy_extraction import extract_policy as extract

    r = extract(checkpoint, data, method=method, steps=steps, batch_size=batch_size, lr=lr, beta=beta,
                max_weight=max_weight, policy_fraction=policy_fraction, episode_policy=episode_policy,
                policy_skip=tuple(policy_skip), hold_at_goal=hold_at_goal, train_state_models=train_state_models,
                seed=seed, device=device, progress=True)
    weights = ", ".join(f"{k} {v:.2f}" for k, v in r.mean_weight_by_policy.items())
    click.echo(f"Fine-tuned {r.steps} steps on {r.train_episodes} training episodes in {r.seconds:.0f} s"
               + (f"; mean AWR weight by collection policy: {weights}" if weights and method == "awr" else "")
               + f". Checkpoint: {checkpoint}")


def _parse_model_options(options) -> dict:
    """``("frame_stride=1", ...)`` -> ``{"frame_stride": 1}``; the model config validates the values."""
    import json

    from uva_plan.errors import UserInputError

    out = {}
    for item in options:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise UserInputError(f"--model-option {item!r} is not KEY=VALUE; expected e.g. frame_stride=1")
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
        out[key.strip()] = value
    return out


def _plan_options(fn):
    """Options shared by `plan` and `demo`: the planner, its budget and the goal cost."""
    from uva_plan.plan_settings import COST_NAMES, FIRST_PLANS, PLANNER_NAMES, PlanSettings

    d = PlanSettings()
    options = [
        click.option("--planner", type=click.Choice(PLANNER_NAMES), default=d.planner, show_default=True,
                     help="Optimiser over action sequences."),
        click.option("--samples", type=click.IntRange(min=4), default=None,
                     help="Candidates per planner iteration [default: 64; 512 with PushT's predicted-pose cost]."),
        click.option("--iters", type=click.IntRange(min=1), default=None,
                     help="Planner iterations per replan [default: 3; 6 with PushT's predicted-pose cost]."),
        click.option("--horizon", type=click.IntRange(min=1), default=d.horizon, show_default=True,
                     help="Planned actions (a multiple of the model's chunk length)."),
        click.option("--execute", type=click.IntRange(min=1), default=None,
                     help="Actions executed before replanning  [default: the env's, measured: Wall 8, PushT 4]."),
        click.option("--prior-fraction", type=click.FloatRange(0.0, 1.0, max_open=True), default=d.prior_fraction,
                     show_default=True, help="Share of each population drawn from the UVA policy head."),
        click.option("--prior-weight", type=click.FloatRange(min=0.0), default=None,
                     help="Price of leaving the policy's own plan, added to the goal cost (planner + prior; 0 = none) "
                          "[default: the env's measured price with the default cost (plan_settings.PRIOR_WEIGHTS: 0 "
                          "on Wall and PushT), else 0]."),
        click.option("--hold-weight", type=click.FloatRange(min=0.0), default=None,
                     help="Price of leaving the plan that holds the agent still, added to the goal cost (0 = none) "
                          "[default: the cost's measured price (plan_settings.HOLD_WEIGHTS: none so far), else 0]."),
        click.option("--budget-steps", type=click.IntRange(min=1), default=None,
                     help="Env steps per episode [default: 64 on Wall, 50 on PushT]."),
        click.option("--time-budget", type=click.FloatRange(min=0.0, min_open=True), default=None,
                     help="Wall-clock seconds per replan (best found so far is used)."),
        click.option("--cost", type=click.Choice(list(COST_NAMES)), default=None,
                     help="Goal cost [default: the env's measured one (plan_settings.DEFAULT_COSTS: "
                          "latent_distance_sum on Wall, multiscale_sum+agent on PushT, multiscale_sum there for "
                          "a model without --proprio or a goal picture without state)]."),
        click.option("--denoise-steps", type=click.IntRange(1, 100), default=d.denoise_steps, show_default=True,
                     help="DDIM steps of the diffusion heads."),
        click.option("--policy-temperature", type=click.FloatRange(0.0, 10.0), default=d.policy_temperature,
                     show_default=True, help="Sampling temperature of the policy's own choice (the policy-alone "
                                             "method and the first prior proposal; 0 = deterministic)."),
        click.option("--model-samples", type=click.IntRange(min=1), default=d.model_samples, show_default=True,
                     help="Score each candidate this many times and average (stochastic model)."),
        click.option("--model-passes", type=click.IntRange(min=1), default=None,
                     help="MAR passes of the world model per imagined chunk (more keep the agent in every frame, "
                          "at more time per replan) [default: the env's, Wall 1, PushT 2]."),
        click.option("--first-plan", type=click.Choice(FIRST_PLANS), default=d.first_plan, show_default=True,
                     help="Mean of each episode's first plan: hold still (the agent's own position on PushT) or "
                          "the action box's centre."),
        seed_option("Seed of the goals and all sampling."),
        device_option("Where the model runs."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _settings(env_name, planner, samples, iters, horizon, execute, prior_fraction, prior_weight, hold_weight, budget_steps,
              time_budget, cost, denoise_steps, policy_temperature, model_samples, model_passes, first_plan, seed):
    from uva_plan.plan_settings import BUDGET_STEPS, PlanSettings, passes_for, prior_weight_for

    settings = PlanSettings(planner=planner, samples=samples, iters=iters, horizon=horizon, execute=execute,
                            prior_fraction=prior_fraction, prior_weight=prior_weight, hold_weight=hold_weight,
                            budget_steps=budget_steps or BUDGET_STEPS[env_name],
                            time_budget=time_budget, cost=cost, denoise_steps=denoise_steps,
                            policy_temperature=policy_temperature, model_samples=model_samples,
                            model_passes=model_passes, first_plan=first_plan, seed=seed)
    settings.prior_weight = prior_weight_for(settings, env_name)  # the env's measured default, recorded as applied
    settings.model_passes = passes_for(settings, env_name)
    # the cost stays None (the env's default) here: which default applies depends on the model and the
    # goals (`cost_for`), and results.json records the one applied
    return settings


@main.command()
@click.option("--checkpoint", type=click.Path(), default=None, help="RUN_DIR of `uva-plan train` [default: shipped].")
@click.option("--env", "env_name", type=ENV_CHOICES, default="wall", show_default=True, help="Environment of the goals.")
@click.option("--episodes", type=click.IntRange(min=1), default=10, show_default=True,
              help="Held-out protocol goals to plan for (without --goals / --goal-image).")
@click.option("--goals", "goals_file", type=click.Path(), default=None, help="Goal file from `uva-plan goals`.")
@click.option("--goal-image", type=click.Path(), default=None, help="Plan towards your own picture.")
@click.option("--start-state", type=str, default=None, help="Comma-separated start state (with --goal-image): Wall "
              "agent_x,agent_y,door_center_y; PushT agent_x,agent_y,block_x,block_y,block_angle,"
              "agent_vx,agent_vy,block_vx,block_vy,block_angular_velocity.")
@click.option("--baselines", is_flag=True, help="Also run random, greedy, policy-only, no-prior and oracles.")
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Output folder.")
@_plan_options
@user_errors
def plan(checkpoint, env_name, episodes, goals_file, goal_image, start_state, baselines, out, planner, samples, iters,
         horizon, execute, prior_fraction, prior_weight, hold_weight, budget_steps, time_budget, cost, denoise_steps,
         policy_temperature, model_samples, model_passes, first_plan, seed, device):
    """Goal-image MPC: UVA imagines each candidate's future, the planner picks the best, replans."""
    from uva_plan.errors import UserInputError
    from uva_plan.planning import run_planning

    settings = _settings(env_name, planner, samples, iters, horizon, execute, prior_fraction, prior_weight, hold_weight,
                         budget_steps, time_budget, cost, denoise_steps, policy_temperature, model_samples, model_passes, first_plan,
                         seed)
    state = None
    if start_state is not None:
        try:
            state = [float(x) for x in start_state.split(",")]
        except ValueError:
            raise UserInputError(f"--start-state {start_state!r} is not a comma-separated list of numbers") from None
    if goal_image and goals_file:
        raise UserInputError("give either --goals or --goal-image, not both")
    methods = (["random", "greedy", "policy", "planner", "planner+prior", "oracle-image", "oracle-state"]
               if baselines else ["planner+prior" if prior_fraction > 0 else "planner"])
    run_planning(env_name=env_name, checkpoint=checkpoint, settings=settings, episodes=episodes, methods=methods,
                 out=out, goals_file=goals_file, goal_image=goal_image, start_state=state, device=device)


@main.command()
@click.option("--env", "env_name", type=ENV_CHOICES, required=True, help="Environment of the goals.")
@click.option("--n", "n", type=click.IntRange(min=1), required=True, help="Number of goal pairs.")
@seed_option("Goal pair i uses evaluation seed 1,000,000 + seed + i.")
@click.option("--out", type=click.Path(dir_okay=False), required=True, help="Output FILE.json.")
@user_errors
def goals(env_name, n, seed, out):
    """Write the evaluation protocol's start/goal pairs to a JSON file."""
    from uva_plan.envs.goals import protocol_goals, save_goals

    save_goals(out, protocol_goals(env_name, n, seed))
    click.echo(f"Wrote {n} {env_name} goal pairs to {out}")


@main.command()
@click.option("--env", "env_name", type=ENV_CHOICES, default="wall", show_default=True,
              help="wall: cross-room goals; pusht: the ends of 25-step pusher segments (DINO-WM's protocol).")
@click.option("--episodes", type=click.IntRange(min=1), default=6, show_default=True, help="Goals to plan for.")
@click.option("--out", type=click.Path(file_okay=False), default="uva-plan-demo", show_default=True,
              help="Output folder: results.json, one GIF per episode, the planner's cost plot.")
@seed_option("Goal and sampling seed.")
@user_errors
def demo(env_name, episodes, out, seed):
    """The main job in one command: goal-image planning with the shipped checkpoint on a handful of
    held-out goals, against random, greedy and policy-only baselines."""
    from uva_plan.plan_settings import BUDGET_STEPS, PlanSettings
    from uva_plan.planning import run_planning

    settings = PlanSettings(seed=seed, budget_steps=BUDGET_STEPS[env_name])
    payload = run_planning(env_name=env_name, checkpoint=None, settings=settings, episodes=episodes,
                           methods=["random", "greedy", "policy", "planner+prior"], out=out)
    click.echo(demo_caption(payload))


def demo_caption(payload: dict) -> str:
    """The line under the demo's table: what the rows are, what success means, who won."""
    methods = payload["methods"]
    plan, policy = methods["planner+prior"]["success_rate"], methods["policy"]["success_rate"]
    verdict = ("beat" if plan > policy else "tied with" if plan == policy else "did not beat")
    budget = payload["settings"]["budget_steps"]
    if payload.get("env", "wall") == "pusht":
        from uva_plan.envs.pusht import ANGLE_TOLERANCE, POSITION_TOLERANCE

        goals = f"{payload['n_goals']} held-out PushT goals (the end of a 25-step pusher segment)"
        greedy = "the agent straight to the goal's agent position"
        success = (f"agent + block position error under {POSITION_TOLERANCE:g} px and block angle error under "
                   f"{math.degrees(ANGLE_TOLERANCE):.0f} degrees after the {budget}-step budget; final distance = "
                   "that position error + 1 px per degree")
    else:
        from uva_plan.envs.wall_geometry import SUCCESS_RADIUS

        goals = f"{payload['n_goals']} cross-room goals"
        greedy = "a greedy straight line"
        success = (f"the agent's centre ends within {SUCCESS_RADIUS:g} units (px) of the goal's after the "
                   f"{budget}-step budget; final distance in the same units")
    return (f"Rows: random actions, {greedy}, UVA's policy alone, and the UVA planner ({payload['settings']['planner']}"
            f" scoring imagined futures, seeded by the policy) on the same {goals}. Success: {success}. "
            f"The planner ({plan:.0%}) {verdict} the policy alone ({policy:.0%}).")


@main.command()
@click.option("--checkpoint", type=click.Path(), default=None, help="RUN_DIR of `uva-plan train` [default: shipped].")
@click.option("--video", type=click.Path(), required=True,
              help="Demonstration without actions: MP4/GIF, a folder of PNG frames or a .zarr episode.")
@click.option("--mode", type=click.Choice(["label", "replay", "track", "bc"]), required=True,
              help="label: infer actions; replay: run them open-loop; track: MPC towards the video's frames; "
                   "bc: fine-tune the policy on the labels and run it.")
@click.option("--env", "env_name", type=ENV_CHOICES, required=True, help="Environment the video shows.")
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Output folder.")
@click.option("--start-state", type=str, default=None,
              help="Comma-separated env state the video starts from [default: the zarr episode's first state]: "
                   "Wall agent_x,agent_y,door_center_y; PushT agent_x,agent_y,block_x,block_y,block_angle,"
                   "agent_vx,agent_vy,block_vx,block_vy,block_angular_velocity.")
@click.option("--episode", type=click.IntRange(min=0), default=0, show_default=True, help="Episode of a .zarr video.")
@click.option("--subgoal-every", type=click.IntRange(min=1), default=None,
              help="Env steps between the subgoal frames tracked [default: the model's frame stride].")
@click.option("--samples", type=click.IntRange(min=1), default=4, show_default=True,
              help="Inverse-dynamics samples per window (their spread is the uncertainty).")
@click.option("--label-weight", type=click.FloatRange(min=0.0), default=0.0, show_default=True,
              help="Tracking: cost of leaving the inferred actions (0: pure goal-image MPC).")
@click.option("--bc-steps", type=click.IntRange(min=1), default=200, show_default=True,
              help="Fine-tuning steps of the policy in bc mode.")
@click.option("--track-cost", type=click.Choice(["subgoal", "subgoal_pose_steps"]), default=None,
              help="Tracking: subgoal = latent distance to the video's frames; subgoal_pose_steps = the poses a "
                   "stepwise PushT object-pose model predicts after every step against those read from the video "
                   "[default: subgoal_pose_steps where the model can, else subgoal].")
@click.option("--refine/--no-refine", default=True, show_default=True,
              help="Refine the inverse-dynamics labels one env step at a time with the model's stepwise body model "
                   "and the agent located in each frame (Wall models with proprio_body_stepwise; others skip it).")
@seed_option("Seed of labelling, planning and fine-tuning.")
@device_option("Where the model runs.")
@user_errors
def imitate(checkpoint, video, mode, env_name, out, start_state, episode, subgoal_every, samples, label_weight,
            bc_steps, track_cost, refine, seed, device):
    """Imitate an action-free video: infer its actions with UVA's inverse dynamics, then replay them,
    track the video with goal-image MPC, or clone them into the policy. Writes actions.npz/.csv,
    results.json and a demo|executed GIF to --out."""
    from uva_plan.imitation import ImitationOptions, parse_state, run_imitation

    options = ImitationOptions(label_samples=samples, subgoal_every=subgoal_every, label_weight=label_weight,
                               bc_steps=bc_steps, track_cost=track_cost, refine=refine, seed=seed)
    run_imitation(checkpoint=checkpoint, video=video, mode=mode, env_name=env_name, out=out,
                  start_state=parse_state(start_state), episode=episode, options=options, device=device)


if __name__ == "__main__":
    main()
