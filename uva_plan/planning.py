"""The `uva-plan plan` and `uva-plan demo` jobs: load a checkpoint, build the goals, run the methods,
write results.json, GIFs and the cost plot, print the comparison table."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np

from uva_plan.json_files import atomic_write_json
from uva_plan.model_loading import load_model_for_env


def results_table(summary: dict, title: str):
    """A rich table: one row per method."""
    from rich.table import Table

    table = Table(title=title)
    for col in ("method", "success", "reached at some step", "final distance", "s / replan", "objective calls",
                "latent dist", "pixel dist"):
        table.add_column(col, justify="right" if col != "method" else "left", no_wrap=col == "method")

    def fmt(x, spec):
        return "-" if x is None or (isinstance(x, float) and np.isnan(x)) else format(x, spec)

    for method, s in summary.items():
        table.add_row(method, fmt(s["success_rate"], ".0%"), fmt(s.get("reached_rate"), ".0%"), fmt(s["mean_final_distance"], ".1f"),
                      fmt(s["seconds_per_replan"], ".2f"), fmt(s["objective_calls"], ".0f"),
                      fmt(s["final_latent_distance"], ".3f"), fmt(s["final_pixel_distance"], ".4f"))
    return table


def run_planning(
    *,
    env_name: str,
    checkpoint: str | None,
    settings,
    episodes: int,
    methods: list[str],
    out: str | Path,
    goals_file: str | None = None,
    goal_image: str | None = None,
    start_state: list[float] | None = None,
    gif_method: str | None = None,
    max_gifs: int = 8,
    device: str = "cpu",
    console=None,
) -> dict:
    """Evaluate ``methods`` on goals and write everything into ``out``. Returns the summary dict."""
    import torch
    from rich.console import Console

    from uva_plan.envs.goals import GoalPair, load_goals, protocol_goals
    from uva_plan.evaluation import Evaluator
    from uva_plan.plan_settings import (
        execute_for,
        hold_weight_for,
        passes_for,
        population_for,
        prior_weight_for,
    )
    from uva_plan.progress import progress_bar
    from uva_plan.viz import cost_plot, planning_gif

    console = console or Console()
    torch.manual_seed(settings.seed)
    needs_model = any(m in ("policy", "planner", "planner+prior", "oracle-image") for m in methods)
    model = load_model_for_env(checkpoint, env_name, device) if (needs_model or checkpoint) else None
    image_size = model.config.image_size if model is not None else 64

    goal_frames = None
    if goal_image is not None:
        from uva_plan.envs import make_env
        from uva_plan.goal_images import load_goal_image

        env = make_env(env_name, image_size=image_size)
        if start_state is None:
            _, info = env.reset(seed=settings.seed)
            start_state = info["state"]
        goals = [GoalPair(start_state=list(map(float, start_state)), goal_state=None)]
        goal_frames = load_goal_image(goal_image, image_size)[None]
        methods = [m for m in methods if not m.startswith("oracle") and m != "greedy"]
    elif goals_file is not None:
        goals = load_goals(goals_file, env_name)[:episodes] if episodes else load_goals(goals_file, env_name)
    else:
        goals = protocol_goals(env_name, episodes, settings.seed)

    evaluator = Evaluator(model, env_name, settings, image_size=image_size)  # checks the settings first
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for stale in [*out.glob("episode_*.gif"), out / "cost_per_iteration.png"]:  # an earlier run's pictures
        stale.unlink(missing_ok=True)
    gif_method = gif_method or next((m for m in ("planner+prior", "planner") if m in methods), None)
    results = []
    with progress_bar(console=console) as progress:
        for method in methods:
            task = progress.add_task(f"{method:>14}", total=len(goals))

            def on_batch(first, batch, trace, method=method):
                if method != gif_method or trace is None:
                    return
                for b in range(len(batch)):
                    if first + b >= max_gifs:
                        break
                    gframe = goal_frames[first + b] if goal_frames is not None else evaluator_goal(batch, goals[first + b])
                    planning_gif(out / f"episode_{first + b:03d}.gif", np.stack(batch.frames[b]), trace.imagined[b],
                                 gframe, evaluator.frame_stride)
                if first == 0 and trace.cost_stats:
                    cost_plot(out / "cost_per_iteration.png", trace.cost_stats,
                              title=f"{method} ({settings.planner}), episode 0")

            def evaluator_goal(batch, goal):
                return batch.envs[0].render_state(np.asarray(goal.goal_state))

            results.append(evaluator.run(method, goals, goal_frames=goal_frames, on_batch=on_batch,
                                         progress=lambda n, task=task: progress.advance(task, n)))

    summary = {r.method: r.summary() for r in results}
    payload = {
        "env": env_name,
        "checkpoint": str(checkpoint) if checkpoint else ("shipped default" if model is not None else None),
        # the price and the cost applied (the env's defaults where the settings left them to it)
        "settings": {**asdict(settings), **dict(zip(("samples", "iters"), population_for(settings, evaluator.cost_name))),
                     "prior_weight": prior_weight_for(settings, env_name),
                     "hold_weight": hold_weight_for(settings, evaluator.cost_name),
                     "cost": evaluator.cost_name, "model_passes": passes_for(settings, env_name),
                     "execute": execute_for(settings, env_name)},
        "n_goals": len(goals),
        "goal_source": "image" if goal_image else ("file" if goals_file else "protocol"),
        "methods": summary,
    }
    atomic_write_json(out / "results.json", payload, allow_nan=True)
    console.print(results_table(summary, f"Goal-image planning on {env_name} ({len(goals)} goals)"))
    console.print(f"Results, GIFs and the cost plot are in {out}/")
    return payload
