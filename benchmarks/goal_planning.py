"""Goal-image planning benchmark: every method on the same held-out goals, in one run.

Tables (each printed with rich, all rows from this one run and these goals):
- ``methods``: random, greedy, UVA policy alone, planner without prior, planner with prior, and the
  two oracles (true simulator with the SAME image cost; true simulator with the true state distance);
- ``prior``: planner with vs without the policy prior at several population sizes (does the prior
  match the no-prior planner with half the samples?);
- ``steps``: success and seconds per replan against the diffusion heads' DDIM steps (1, 2, 4, 8);
- ``costs``: success of the planner (with prior) under each goal cost;
- ``agent``: the image cost, the agent's own position and the two summed at several weights (a model
  trained with ``--proprio``; ``--agent-methods``);
- ``sweep``: one method (``--sweep-method``, default the true-distance oracle) over a grid of planner
  settings (samples x iterations, horizon): what it takes to turn a perfect cost into success.

Goals follow the evaluation protocol (Wall: start and goal in different rooms; PushT: ends of 25-step
segments of held-out scripted trajectories) on evaluation seeds disjoint from training seeds; success is
judged after each episode from the true state.

    python benchmarks/goal_planning.py --env wall --goals 50 --tables methods,prior,steps,costs [--checkpoint RUN]
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path


def run_rows(evaluator_factory, goals, rows):
    """rows: (label, method, settings) -> list of (label, summary)."""
    out = []
    for label, method, settings in rows:
        t0 = time.perf_counter()
        result = evaluator_factory(settings).run(method, goals)
        summary = result.summary()
        summary["wall_seconds"] = time.perf_counter() - t0
        print(f"  {label}: success {summary['success_rate']:.0%}  ({summary['wall_seconds']:.0f} s)", flush=True)
        out.append((label, summary))
    return out


def print_table(console, title, rows):
    from rich.table import Table

    table = Table(title=title)
    for col in ("method", "success", "reached at some step", "final distance", "s / replan", "objective calls", "coverage"):
        table.add_column(col, justify="left" if col == "method" else "right", no_wrap=col == "method")
    for label, s in rows:
        cov, reached = s.get("coverage"), s.get("reached_rate")
        table.add_row(label, f"{s['success_rate']:.0%}", "-" if reached is None else f"{reached:.0%}",
                      f"{s['mean_final_distance']:.1f}", f"{s['seconds_per_replan']:.2f}",
                      f"{s['objective_calls']:.0f}", "-" if cov is None else f"{cov:.2f}")
    console.print(table)


def main() -> None:
    from rich.console import Console

    from uva_plan import goal_costs
    from uva_plan.envs.goals import protocol_goals
    from uva_plan.evaluation import Evaluator
    from uva_plan.model_loading import load_model_for_env
    from uva_plan.plan_settings import (
        BUDGET_STEPS,
        FIRST_PLANS,
        PLANNER_NAMES,
        PlanSettings,
        cost_for,
        execute_for,
        population_for,
    )

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="wall", choices=["wall", "pusht"])
    parser.add_argument("--checkpoint", default=None, help="RUN_DIR (default: the shipped checkpoint)")
    parser.add_argument("--goals", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tables", default="methods", help="comma-separated: methods,prior,steps,costs,agent,sweep")
    parser.add_argument("--samples", type=int, default=None, help="default: the cost's (plan_settings.population_for)")
    parser.add_argument("--iters", type=int, default=None, help="default: the cost's (plan_settings.population_for)")
    parser.add_argument("--cost", default=None, help="goal cost (default: the env's, plan_settings.DEFAULT_COSTS)")
    parser.add_argument("--planner", default=PlanSettings.planner, choices=PLANNER_NAMES)
    parser.add_argument("--horizon", type=int, default=PlanSettings.horizon)
    parser.add_argument("--execute", type=int, default=None,
                        help="env steps per replan (default: the env's, plan_settings.EXECUTE_STEPS)")
    parser.add_argument("--prior-fraction", type=float, default=PlanSettings.prior_fraction)
    parser.add_argument("--hold-weight", type=float, default=None,
                        help="price of leaving the plan that holds the agent still (default: the cost's, "
                             "plan_settings.HOLD_WEIGHTS)")
    parser.add_argument("--prior-weight", type=float, default=None,
                        help="price of leaving the policy's own plan (planner + prior; default: the env's PRIOR_WEIGHTS)")
    parser.add_argument("--model-passes", type=int, default=None,
                        help="MAR passes of the world model per imagined chunk (default: the env's MODEL_PASSES)")
    parser.add_argument("--first-plan", default=PlanSettings.first_plan, choices=FIRST_PLANS,
                        help="mean of each episode's first plan (hold still, or the action box's centre)")
    parser.add_argument("--sweep-method", default="oracle-state",
                        help="method of the planner-settings sweep table (oracle-state: a perfect cost)")
    parser.add_argument("--methods", default="random,greedy,policy,planner,planner+prior,oracle-image,oracle-state",
                        help="comma-separated methods of the methods table")
    parser.add_argument("--agent-weight", type=float, default=None,
                        help="weight of the agent term in multiscale_sum+agent (default goal_costs.AGENT_WEIGHT)")
    parser.add_argument("--agent-methods", default="planner+prior,oracle-image",
                        help="comma-separated methods of the agent table")
    parser.add_argument("--json", default=None, help="also write all summaries to this JSON file")
    args = parser.parse_args()

    console = Console()
    if args.agent_weight is not None:
        goal_costs.AGENT_WEIGHT = args.agent_weight
    model = load_model_for_env(args.checkpoint, args.env)
    base = PlanSettings(seed=args.seed, budget_steps=BUDGET_STEPS[args.env], samples=args.samples, iters=args.iters,
                        cost=args.cost, planner=args.planner, horizon=args.horizon, execute=args.execute,
                        prior_fraction=args.prior_fraction, prior_weight=args.prior_weight, hold_weight=args.hold_weight,
                        model_passes=args.model_passes, first_plan=args.first_plan)
    goals = protocol_goals(args.env, args.goals, args.seed)

    def factory(settings):
        return Evaluator(model, args.env, settings, image_size=model.config.image_size)

    tables = [t.strip() for t in args.tables.split(",") if t.strip()]
    results = {}
    if "methods" in tables:
        console.print(f"[bold]methods[/bold] on {len(goals)} {args.env} goals")
        rows = [(m, m, base) for m in args.methods.split(",") if m]
        results["methods"] = run_rows(factory, goals, rows)
        cost = cost_for(base, args.env, model)
        samples, iters = population_for(base, cost)
        print_table(console, f"{args.env}: methods ({len(goals)} goals, {base.planner} {samples}x{iters}, "
                             f"cost {cost}, budget {base.budget_steps} steps)", results["methods"])
    if "prior" in tables:
        rows = []
        full = population_for(base, cost_for(base, args.env, model))[0]
        for n in (full // 2, full):
            s = replace(base, samples=n)
            rows += [(f"no prior, {n} samples", "planner", s), (f"prior, {n} samples", "planner+prior", s)]
        results["prior"] = run_rows(factory, goals, rows)
        print_table(console, f"{args.env}: policy prior vs none at equal budget", results["prior"])
    if "steps" in tables:
        rows = [(f"{k} DDIM steps", "planner+prior", replace(base, denoise_steps=k)) for k in (1, 2, 4, 8)]
        results["steps"] = run_rows(factory, goals, rows)
        print_table(console, f"{args.env}: success vs denoising steps", results["steps"])
    if "costs" in tables:
        rows = [(c, "planner+prior", replace(base, cost=c))
                for c in ("latent_l2", "latent_l2_sum", "multiscale", "multiscale_sum", "distance", "distance_sum",
                          "distance+latent", "latent_distance", "latent_distance_sum")]
        results["costs"] = run_rows(factory, goals, rows)
        print_table(console, f"{args.env}: success vs goal cost", results["costs"])
    if "agent" in tables:
        # the image cost alone, the agent's own position alone, and the two summed at several weights
        # (needs a model trained with --proprio; the oracle reads the true agent)
        rows, weight_before = [], goal_costs.AGENT_WEIGHT
        try:
            for method in args.agent_methods.split(","):
                for label, cost, weight in [("multiscale_sum", "multiscale_sum", None), ("agent_sum", "agent_sum", None),
                                            *[(f"multiscale_sum + {w:g} agent", "multiscale_sum+agent", w) for w in (1, 4, 16)]]:
                    goal_costs.AGENT_WEIGHT = weight_before if weight is None else weight
                    rows += run_rows(factory, goals, [(f"{method}: {label}", method, replace(base, cost=cost))])
        finally:
            goal_costs.AGENT_WEIGHT = weight_before  # later tables run at the asked weight
        results["agent"] = rows
        print_table(console, f"{args.env}: the agent's own position in the cost", rows)
    if "sweep" in tables:
        # (samples, iterations, horizon): which planner settings turn a good cost into success?
        grid = [(32, 2, 16), (64, 3, 16), (64, 3, 32), (128, 3, 32), (128, 5, 32), (256, 3, 32)]
        rows = [(f"{n}x{k}, horizon {h}", args.sweep_method, replace(base, samples=n, iters=k, horizon=h))
                for n, k, h in grid if h % model.config.chunk_len == 0]
        results["sweep"] = run_rows(factory, goals, rows)
        print_table(console, f"{args.env}: {args.sweep_method} vs planner settings ({base.planner}, execute "
                             f"{execute_for(base, args.env)})", results["sweep"])
    if args.json:
        Path(args.json).write_text(json.dumps({k: dict(v) for k, v in results.items()}, indent=2))


if __name__ == "__main__":
    main()
