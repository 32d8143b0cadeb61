"""Imitation from action-free videos: how well UVA's inverse dynamics labels held-out demonstrations,
and how well the labels can be executed.

Held-out scripted demonstrations (Wall: the noisy door-aware expert between the protocol's cross-room
start and goal; PushT: the block-aimed pusher from the protocol's start poses), on evaluation seeds that
no training episode uses. Their true actions are hidden from every method and used only for scoring.

Labels: action R^2 and MSE against the true actions, for UVA's inverse-dynamics mode and for a
BCO-style baseline (the same recipe, but the inverse model is a UVA trained only on random-action data).
Execution: success and final distance against the demo's final state, judged after each episode:
- replay of the true actions (upper bound) and of uniform random actions (lower bound);
- open-loop replay of UVA's labels and of BCO's labels;
- closed-loop tracking of the video (goal-image MPC, UVA's labels as warm start, policy as prior);
- the policy before any fine-tuning (reference), and behaviour cloning: the policy fine-tuned on
  OTHER demonstration videos labelled by UVA, by BCO or with their true actions, then run towards
  each held-out demo's last frame.

    python benchmarks/imitation.py --env wall [--checkpoint RUN_DIR] [--demos 16] [--bco-checkpoint RUN_DIR]
        [--bco-steps N] [--out results.json]

Without --bco-checkpoint the baseline is trained here (random-action data, then `uva_plan.training` with
the main checkpoint's recipe) and cached in --work-dir.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

DEMO_STEPS = {"wall": 48, "pusht": 32}
# Offsets on top of EVAL_SEED_OFFSET: demos and BC videos never meet each other, the planning goals
# (seeds EVAL_SEED_OFFSET + 0..) or a training episode (small seeds).
DEMO_SEEDS, BC_SEEDS, BCO_DATA_SEED = 50_000, 60_000, 2_000_000


def make_demos(env_name: str, n: int, steps: int, seed: int, image_size: int, noise: float = 0.0):
    """``n`` demonstrations: frames ``[n, steps+1, S, S, 3]``, actions ``[n, steps, A]``, states
    ``[n, steps+1, D]``. ``noise``: the Wall expert's per-step velocity noise (fraction of the top speed;
    collection draws 0-0.4 per episode). Per-step noise is partly invisible to any labeller that sees
    frames ``frame_stride`` steps apart (only its 4-step sums move the agent), so the default demos are
    clean."""
    from uva_plan.envs import make_env
    from uva_plan.envs.goals import protocol_goals
    from uva_plan.envs.policies import make_policy

    env = make_env(env_name, image_size=image_size)
    pairs = protocol_goals(env_name, n, seed)
    frames, actions, states = [], [], []
    for i, pair in enumerate(pairs):
        if env_name == "wall":
            policy = make_policy("wall", "expert", seed=seed + i, noise=noise)
            policy.reset(np.asarray(pair.start_state), goal_state=np.asarray(pair.goal_state))
        else:
            policy = make_policy("pusht", "pusher", seed=seed + i)
            policy.reset(np.asarray(pair.start_state))
        obs, info = env.reset(options={"state": np.asarray(pair.start_state)})
        f, a, s = [obs], [], [info["state"]]
        for _ in range(steps):
            act = policy(env.get_state())
            obs, _, _, _, info = env.step(act)
            f.append(obs)
            a.append(act)
            s.append(info["state"])
        frames.append(np.stack(f))
        actions.append(np.stack(a).astype(np.float32))
        states.append(np.stack(s))
    return np.stack(frames), np.stack(actions), np.stack(states)


def bco_model(env_name: str, main_checkpoint: Path, args, console):
    """The BCO baseline's inverse model: a UVA trained only on random-action data with the main
    checkpoint's recipe (config, tokenizer and world-model steps, batch size, learning rate)."""
    import world_model
    from uva_plan.collection import collect_dataset
    from uva_plan.training import TrainConfig, train

    if args.bco_checkpoint:
        return world_model.load(args.bco_checkpoint).eval(), args.bco_checkpoint
    recipe = world_model.load_extra_state(main_checkpoint).get("train_config", {})
    steps = args.bco_steps or int(recipe.get("steps", 1000))
    work = Path(args.work_dir) / f"bco_{env_name}_{recipe.get('config', 'small')}_{steps}"
    run = work / "run"
    if (run / "model.safetensors").is_file() and world_model.load_extra_state(run).get("step") == steps:
        console.print(f"BCO inverse model: cached {run}")
        return world_model.load(run).eval(), str(run)
    data = work / "random.zarr"
    if not data.exists():
        console.print(f"BCO: collecting {args.bco_episodes} random-action episodes into {data}")
        collect_dataset(
            env_name,
            args.bco_episodes,
            max_steps=100,
            policy="random",
            image_size=world_model.load_config(main_checkpoint).image_size,
            seed=BCO_DATA_SEED,
            out=data,
            progress=True,
        )
    console.print(
        f"BCO: training a {recipe.get('config', 'small')} UVA for {steps} steps on random-action data"
    )
    resume = (run / "train_state").exists()
    train(
        TrainConfig(
            data=str(data),
            out=str(run),
            config=recipe.get("config", "small"),
            steps=steps,
            tokenizer_steps=recipe.get("tokenizer_steps"),
            batch_size=recipe.get("batch_size"),
            lr=recipe.get("lr"),
            seed=args.seed,
            resume=resume,
            save_every=max(100, steps // 4),
        )
    )
    return world_model.load(run).eval(), str(run)


def specialise(model, checkpoint, args, console):
    """A copy of ``model`` fine-tuned ``--specialise-steps`` steps in the inverse-dynamics mode alone, on
    the very buffer the checkpoint was trained on (read from its recorded train_config): how much
    labelling gains from more inverse-dynamics training, with no new data."""
    import world_model
    from uva_plan import imitation as im
    from uva_plan.data import load_replay_buffer

    recipe = world_model.load_extra_state(checkpoint).get("train_config", {})
    buffer = load_replay_buffer(recipe["data"])
    videos = [buffer.img[buffer.episode(e)] for e in range(buffer.n_episodes)]
    actions = [buffer.action[buffer.episode(e)][:-1] for e in range(buffer.n_episodes)]
    t = time.perf_counter()
    tuned = im.finetune_mode(model, videos, actions, "inverse_dynamics", steps=args.specialise_steps,
                             batch_size=int(recipe.get("batch_size") or 32), lr=float(recipe.get("lr") or 5e-4),
                             seed=args.seed)
    console.print(f"  specialised {checkpoint} for {args.specialise_steps} steps on {recipe['data']} "
                  f"({time.perf_counter() - t:.0f} s)")
    return tuned


def main() -> None:
    from rich.console import Console
    from rich.table import Table

    from uva_plan import imitation as im
    from uva_plan.model_loading import default_checkpoint, load_model_for_env
    from uva_plan.plan_settings import PlanSettings

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", choices=["wall", "pusht"], default="wall")
    parser.add_argument(
        "--checkpoint", default=None, help="RUN_DIR (default: the shipped checkpoint of --env)"
    )
    parser.add_argument("--demos", type=int, default=16, help="held-out demonstrations evaluated")
    parser.add_argument("--steps", type=int, default=None, help="steps per demo (default: wall 48, pusht 32)")
    parser.add_argument("--demo-noise", type=float, default=0.0, help="Wall expert's velocity noise in the demos")
    parser.add_argument("--label-samples", type=int, default=4)
    parser.add_argument("--denoise-steps", type=int, default=4)
    parser.add_argument("--subgoal-every", type=int, default=None)
    parser.add_argument("--label-weight", type=float, nargs="+", default=[0.0],
                        help="tracking rows: cost of leaving the inferred actions (one row per value)")
    parser.add_argument("--track-samples", type=int, default=None,
                        help="planner candidates per iteration (default: the cost's, plan_settings.POPULATIONS)")
    parser.add_argument("--track-cost", default=None,
                        help="tracking's cost against the video (default: subgoal_pose_steps for a stepwise PushT "
                             "object-pose model, else subgoal; PushT: also subgoal_pose_sum)")
    parser.add_argument("--track-iters", type=int, default=None, help="planner iterations (default: the cost's)")
    parser.add_argument("--bc-videos", type=int, default=32, help="other demos the policy is fine-tuned on")
    parser.add_argument("--bc-steps", type=int, default=200)
    parser.add_argument("--bc-lr", type=float, default=im.BC_LR)
    parser.add_argument("--bco-checkpoint", default=None)
    parser.add_argument(
        "--bco-steps", type=int, default=None, help="default: the main checkpoint's step count"
    )
    parser.add_argument("--bco-episodes", type=int, default=200)
    parser.add_argument("--specialise-steps", type=int, default=0,
                        help="also label with copies fine-tuned this long in the inverse-dynamics mode on their own data")
    parser.add_argument("--skip", nargs="*", default=[], choices=["bco", "track", "bc"])
    parser.add_argument("--no-refine", action="store_true",
                        help="use the inverse-dynamics labels as they are (no body-model refinement)")
    parser.add_argument("--work-dir", default="/tmp/uva_plan_imitation_bench")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (1 is fastest on a busy 2-core box)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="write the figures to this JSON file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    console = Console(width=120)
    env = args.env
    checkpoint = Path(args.checkpoint) if args.checkpoint else default_checkpoint(env)
    model = load_model_for_env(checkpoint, env)
    track_cost = None if "track" in args.skip else im.check_track_cost(model, env, args.track_cost)  # before any work
    cfg = model.config
    steps = args.steps or DEMO_STEPS[env]
    t0 = time.perf_counter()
    frames, true_actions, states = make_demos(env, args.demos, steps, DEMO_SEEDS + args.seed, cfg.image_size,
                                              args.demo_noise)
    console.print(f"{args.demos} held-out {env} demos of {steps} steps ({time.perf_counter() - t0:.0f} s)")
    starts, goal_states, goal_frames = states[:, 0], states[:, -1], frames[:, -1]
    low, high = cfg.action_low, cfg.action_high
    labels_rows: dict[str, dict] = {}
    exec_rows: dict[str, dict] = {}

    def timed(fn):
        t = time.perf_counter()
        out = fn()
        return out, time.perf_counter() - t

    def execute(name, fn):
        rollout, seconds = timed(fn)
        exec_rows[name] = {
            **im.judge(env, rollout, goal_states, goal_frames, cfg.image_size),
            "seconds": seconds,
        }
        exec_rows[name].pop("episodes")
        console.print(
            f"  {name}: success {exec_rows[name]['success_rate']:.0%}, "
            f"final distance {exec_rows[name]['mean_final_distance']:.2f} ({seconds:.0f} s)"
        )

    def label(name, m, video_frames, truth, given=None):
        """``given``: labels made already as ``(labels, seconds)``, to score here."""
        labels, seconds = given or timed(
            lambda: im.label_frames(
                m, video_frames, num_samples=args.label_samples, num_steps=args.denoise_steps, seed=args.seed
            )
        )
        row = {
            **im.action_metrics(labels.actions, truth, low, high),
            "mean_std": float(labels.std.mean()),
            "seconds": seconds,
        }
        if env == "wall":  # the label's speed where the demonstrator stands still (true speed < 0.2):
            # what a clone learns to do at its goal
            still = np.linalg.norm(truth, axis=-1) < 0.2
            row["still_label_speed"] = float(np.linalg.norm(labels.actions, axis=-1)[still].mean()) if still.any() else None
        console.print(f"  {name}: R^2 {row['action_r2']:.3f}, MSE {row['action_mse']:.4g} ({seconds:.0f} s)")
        return labels, row

    console.print("labelling")
    uva_labels, labels_rows["UVA inverse dynamics"] = label(
        "UVA inverse dynamics", model, frames, true_actions
    )
    not_refined = "--no-refine" if args.no_refine else im.why_not_refined(model, env)
    if not_refined is None:  # what `uva-plan imitate` labels with, and what tracking and cloning below use
        # its seconds: the refinement alone, on top of the inverse dynamics' row
        uva_labels, labels_rows["UVA + body refinement"] = label(
            "UVA + body refinement", model, frames, true_actions,
            timed(lambda: im.refine_labels(model, env, frames, uva_labels)))
    else:
        console.print(f"  labels not refined: {not_refined}")
    bco = None
    if "bco" not in args.skip:
        bco, bco_path = bco_model(env, checkpoint, args, console)
        bco_labels, labels_rows["BCO (random-data inverse model)"] = label("BCO", bco, frames, true_actions)
        labels_rows["BCO (random-data inverse model)"]["checkpoint"] = str(bco_path)

    specialised = {}
    if args.specialise_steps > 0:
        for name, m, ckpt in (("UVA", model, checkpoint), ("BCO", bco, None if bco is None else bco_path)):
            if m is None:
                continue
            tuned = specialise(m, ckpt, args, console)
            row = f"{name} inverse dynamics + {args.specialise_steps} inverse-mode steps"
            specialised[name], labels_rows[row] = label(row, tuned, frames, true_actions)

    console.print("executing")
    execute(
        "replay true actions (upper bound)",
        lambda: im.replay_actions(env, starts, true_actions, cfg.image_size),
    )
    rng = np.random.default_rng(args.seed)
    random_actions = rng.uniform(low, high, size=true_actions.shape).astype(np.float32)
    execute(
        "random actions (lower bound)", lambda: im.replay_actions(env, starts, random_actions, cfg.image_size)
    )
    execute(
        "replay UVA labels (open loop)",
        lambda: im.replay_actions(env, starts, uva_labels.actions, cfg.image_size),
    )
    if bco is not None:
        execute(
            "replay BCO labels (open loop)",
            lambda: im.replay_actions(env, starts, bco_labels.actions, cfg.image_size),
        )
    for name, lab in specialised.items():
        execute(f"replay {name} labels, specialised (open loop)",
                lambda lab=lab: im.replay_actions(env, starts, lab.actions, cfg.image_size))
    if "track" not in args.skip:
        settings = PlanSettings(
            cost=track_cost,
            samples=args.track_samples,
            iters=args.track_iters,
            denoise_steps=args.denoise_steps,
            seed=args.seed,
        )
        for weight in args.label_weight:
            name = ("track video (closed loop, UVA labels)" + (f", label weight {weight:g}" if weight else "")
                    + ("" if track_cost == im.TRACK_COST else f", cost {track_cost}"))
            execute(name, lambda weight=weight: im.track_video(
                model, env, starts, frames, uva_labels.actions, settings=settings,
                subgoal_every=args.subgoal_every, label_weight=weight, seed=args.seed))
    if "bc" not in args.skip:

        def run(m):
            return im.run_policy(
                m,
                env,
                starts,
                goal_frames,
                budget_steps=steps,
                denoise_steps=args.denoise_steps,
                seed=args.seed,
            )

        execute("policy, not fine-tuned (reference)", lambda: run(model))
        bc_frames, bc_true, _ = make_demos(env, args.bc_videos, steps, BC_SEEDS + args.seed, cfg.image_size,
                                           args.demo_noise)
        sources = {
            "true labels": bc_true,
            "UVA labels": im.label_frames(
                model, bc_frames, num_samples=args.label_samples, num_steps=args.denoise_steps, seed=args.seed
            ),
        }
        if not_refined is None:
            sources["UVA labels"] = im.refine_labels(model, env, bc_frames, sources["UVA labels"])
        sources["UVA labels"] = sources["UVA labels"].actions
        if bco is not None:
            sources["BCO labels"] = im.label_frames(
                bco, bc_frames, num_samples=args.label_samples, num_steps=args.denoise_steps, seed=args.seed
            ).actions
        for name, acts in sources.items():
            tuned, seconds = timed(
                lambda acts=acts: im.finetune_policy(
                    model, list(bc_frames), list(acts), steps=args.bc_steps, lr=args.bc_lr, seed=args.seed
                )
            )
            console.print(f"  fine-tuned on {args.bc_videos} videos with {name} ({seconds:.0f} s)")
            execute(f"BC on {name}", lambda tuned=tuned: run(tuned))

    upper = exec_rows["replay true actions (upper bound)"]["success_rate"]
    title = f"Imitation on {env}: {args.demos} held-out demos of {steps} steps (checkpoint {checkpoint})"
    table = Table(title=title)
    for col in ("labels", "action R^2", "action MSE", "MSE [-1,1]", "mean spread", "speed where still", "s"):
        table.add_column(col, justify="left" if col == "labels" else "right")
    for name, r in labels_rows.items():
        still = r.get("still_label_speed")
        table.add_row(
            name,
            f"{r['action_r2']:.3f}",
            f"{r['action_mse']:.4g}",
            f"{r['action_mse_normalized']:.4f}",
            f"{r['mean_std']:.3g}",
            "-" if still is None else f"{still:.2f}",
            f"{r['seconds']:.0f}",
        )
    console.print(table)
    table = Table()
    for col in ("execution", "success", "of true replay", "final distance", "s"):
        table.add_column(col, justify="left" if col == "execution" else "right")
    for name, r in exec_rows.items():
        share = "-" if not upper else f"{r['success_rate'] / upper:.0%}"
        table.add_row(
            name, f"{r['success_rate']:.0%}", share, f"{r['mean_final_distance']:.2f}", f"{r['seconds']:.0f}"
        )
    console.print(table)
    uva_labels_are = "refined by the body model" if not_refined is None else f"of the inverse mode alone: {not_refined}"
    console.print(f"The 'UVA labels' rows execute and clone the labels {uva_labels_are}.")
    if args.out:
        payload = {
            "env": env,
            "checkpoint": str(checkpoint),
            "uva_labels": uva_labels_are,
            "demos": args.demos,
            "steps": steps,
            "args": vars(args),
            "labels": labels_rows,
            "execution": exec_rows,
        }
        Path(args.out).write_text(json.dumps(payload, indent=2))
        console.print(f"figures written to {args.out}")


if __name__ == "__main__":
    main()
