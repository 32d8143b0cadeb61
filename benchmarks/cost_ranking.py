"""Plan ranking: does a goal cost, read through the world model, pick the plans the simulator would?

A planner only needs its cost to ORDER candidate plans the way the true outcome orders them. For
held-out protocol goals (evaluation seeds) at their start (a still history, as the first replan sees),
this draws candidate plans (the policy prior's and uniform random ones), rolls each out twice, in the
world model (imagined frames) and in the true simulator (true frames), scores both with each goal
cost, and compares them with the true state distance summed over the plan's frame times (what the
state oracle minimises). Per cost and per goal: Spearman's rank correlation of the imagined cost with
the true distance, of the same cost on the true frames with the true distance, and of the two costs
with each other; and the true distance of the plan each one picks, above the best candidate's (regret).
A cost on an object-pose model's predicted poses (`predicted_pose_sum`) is also scored with the true T in
place of the predicted one, and with the true agent: which of the two predictions orders plans worse.
Averaged over goals. The gap between the "true frames" and "imagined" columns is the world model's
share of a cost's error; the "true frames" column is the cost's own.

    python benchmarks/cost_ranking.py --env pusht [--goals 48] [--candidates 64] [--costs A,B] [--checkpoint RUN]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


def split_pose_ranking(model, cost, env_name: str, encoded, starts, goal_states, plans, truth, stride: int) -> dict:
    """For a cost on the predicted poses (``needs_block``): Spearman with the true distance when the
    predicted T is replaced by the true one (``true_T``: what the agent's prediction costs) and when the
    predicted agent is (``true_agent``: what the T's costs), per goal; after every env step for a cost
    that reads them (``needs_steps``)."""
    from uva_plan.goal_costs import Trajectory
    from uva_plan.proprio import agent_of_proprio, agent_of_states, object_of_proprio, object_of_states
    from uva_plan.simulator_objective import SimulatorObjective

    sim = SimulatorObjective(env_name, starts, goal_states, frame_stride=stride)
    out = {"true_T": [], "true_agent": []}
    every = cost.needs_steps
    agent_key, block_key = ("agent_steps", "block_steps") if every else ("agent", "block")
    for i in range(plans.shape[0]):
        n = plans.shape[1]
        with torch.no_grad():
            result = model.forward_dynamics(history_latents=encoded.history[i:i + 1],
                                            history_proprio=encoded.proprio[i:i + 1], actions=plans[i],
                                            sample_latents=False, distance_heads=())
        predicted = (result.proprio_steps if every else result.proprio).float().cpu()
        states = np.stack([np.stack(sim.rollout(starts[i], plan, every_step=every)) for plan in plans[i].cpu().numpy()])
        mixes = {"true_T": (agent_of_proprio(model, predicted), object_of_states(env_name, states)),
                 "true_agent": (agent_of_states(env_name, states), object_of_proprio(model, predicted))}
        for key, (agent, block) in mixes.items():
            traj = Trajectory(latents=None, goal=encoded.goal[i:i + 1].cpu().expand(n, *encoded.goal.shape[1:]),
                              goal_agent=encoded.goal_agent[i:i + 1].cpu().expand(n, 2),
                              goal_block=encoded.goal_block[i:i + 1].cpu().expand(n, 3), **{agent_key: agent, block_key: block})
            out[key].append(spearman(cost(traj).numpy(), truth[i]))
    return out


def rank_batch(model, env_name: str, goals, cost_names, candidates: int, settings, seed: int, first: int = 0) -> dict:
    """``{cost: {"imagined": [...], "true_frames": [...], "agree": [...], "regret_imagined": [...],
    "regret_true_frames": [...]}}`` for one batch of goals (one entry per goal)."""
    from uva_plan.env_batch import EnvBatch
    from uva_plan.goal_costs import make_cost
    from uva_plan.objective import PolicyProposals, UVAObjective, encode_problems
    from uva_plan.plan_settings import model_generator, passes_for
    from uva_plan.simulator_objective import SimulatorObjective

    cfg = model.config
    batch = EnvBatch(env_name, [g.start_state for g in goals], image_size=cfg.image_size)
    env = batch.envs[0]
    goal_states = np.stack([np.asarray(g.goal_state) for g in goals])
    goal_frames = torch.from_numpy(np.stack([env.render_state(g) for g in goal_states]))
    encoded = encode_problems(model, batch.history(cfg.n_history, cfg.frame_stride), goal_frames,
                              history_states=batch.history_states(cfg.n_history, cfg.frame_stride),
                              goal_states=goal_states)
    gen = model_generator(seed, first)
    b, h = len(goals), settings.horizon
    with torch.no_grad():
        prior = PolicyProposals(model, None, None, num_steps=settings.denoise_steps, generator=gen,
                                encoded=encoded)(b, candidates // 2, h)
    low, high = torch.as_tensor(env.action_low), torch.as_tensor(env.action_high)
    uniform = low + (high - low) * torch.rand(b, candidates - candidates // 2, h, len(low), generator=gen)
    plans = torch.cat([prior, uniform.to(prior)], dim=1)
    truth = SimulatorObjective(env_name, batch.states(), goal_states, frame_stride=cfg.frame_stride,
                               image_size=cfg.image_size)(plans).numpy()
    out = {}
    for name in cost_names:
        cost = make_cost(name)
        with torch.no_grad():  # every cost sees the same imagined futures: the same sample stream each
            imagined = UVAObjective(model, None, None, cost, num_steps=settings.denoise_steps,
                                    num_iters=passes_for(settings, env_name), generator=model_generator(seed, first + 1),
                                    encoded=encoded)(plans).numpy()
            true_frames = SimulatorObjective(env_name, batch.states(), goal_states, cost=cost, frame_stride=cfg.frame_stride,
                                             model=model, goal_latents=encoded.goal, image_size=cfg.image_size)(plans).numpy()
        best = truth.min(axis=1)
        out[name] = {
            "imagined": [spearman(imagined[i], truth[i]) for i in range(b)],
            "true_frames": [spearman(true_frames[i], truth[i]) for i in range(b)],
            "agree": [spearman(imagined[i], true_frames[i]) for i in range(b)],
            "regret_imagined": list(truth[np.arange(b), imagined.argmin(axis=1)] - best),
            "regret_true_frames": list(truth[np.arange(b), true_frames.argmin(axis=1)] - best),
        }
        if cost.needs_block:  # which predicted pose, the agent's or the T's, orders the plans worse
            out[name].update(split_pose_ranking(model, cost, env_name, encoded, batch.states(), goal_states, plans,
                                                truth, cfg.frame_stride))
    return out


def main() -> None:
    from rich.console import Console
    from rich.table import Table

    from uva_plan.envs.goals import protocol_goals
    from uva_plan.errors import UserInputError
    from uva_plan.goal_costs import make_cost
    from uva_plan.model_loading import load_model_for_env
    from uva_plan.plan_settings import PlanSettings, cost_for

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", choices=["wall", "pusht"], default="pusht")
    parser.add_argument("--checkpoint", default=None, help="RUN_DIR (default: the shipped checkpoint)")
    parser.add_argument("--goals", type=int, default=48)
    parser.add_argument("--candidates", type=int, default=64, help="plans per goal: half the policy's, half uniform")
    parser.add_argument("--costs", default=None, help="comma-separated goal costs (default: the env's default cost)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.candidates < 4:
        parser.error(f"--candidates is {args.candidates}; expected >= 4 (two policy and two uniform plans at least)")
    model = load_model_for_env(args.checkpoint, args.env)
    names = args.costs.split(",") if args.costs else [cost_for(PlanSettings(), args.env, model)]
    settings = PlanSettings()
    try:
        for name in names:  # a cost for another env, or one that needs the video predictor's subgoals, fails here
            PlanSettings(cost=name).validate(model.config.chunk_len, args.env)
            if make_cost(name).needs_subgoals:
                raise UserInputError(f"the {name} cost compares plans with subgoal frames, which plan ranking has none of")
    except UserInputError as err:
        parser.error(str(err))
    goals = protocol_goals(args.env, args.goals, seed=args.seed)
    rows: dict = {n: {} for n in names}
    for first in range(0, len(goals), settings.batch_episodes):
        part = rank_batch(model, args.env, goals[first:first + settings.batch_episodes], names, args.candidates,
                          settings, seed=args.seed, first=first)
        for n in names:
            for k, v in part[n].items():
                rows[n].setdefault(k, []).extend(v)
    table = Table(title=f"{args.env}: plan ranking on {len(goals)} held-out goals, {args.candidates} plans each "
                        "(Spearman with the true distance, mean over goals; regret in the true distance's units)")
    for col in ("cost", "imagined", "true frames", "imagined vs true frames", "regret imagined", "regret true frames",
                "predicted poses: with the true T / the true agent"):
        table.add_column(col)
    for n in names:
        r = rows[n]
        split = (f"{np.nanmean(r['true_T']):.2f} / {np.nanmean(r['true_agent']):.2f}" if "true_T" in r else "-")
        table.add_row(n, f"{np.nanmean(r['imagined']):.2f}", f"{np.nanmean(r['true_frames']):.2f}",
                      f"{np.nanmean(r['agree']):.2f}", f"{np.mean(r['regret_imagined']):.0f}",
                      f"{np.mean(r['regret_true_frames']):.0f}", split)
    Console().print(table)


if __name__ == "__main__":
    main()
