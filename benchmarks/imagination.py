"""The world model's headline figure: does it imagine what the simulator does (issue 10)?

Held-out Wall episodes (expert and random-action, seeds from 1,000,000 on; training data is collected
from seed 0), the TRUE action chunk, imagined frames decoded and the agent found in them (a detector
checked on true frames first, printed). Per horizon and episode kind: agent presence, median position
error against the simulator, the tokenizer round-trip ceiling and the copy-last-frame baseline; at the
planner's sampling settings and at temperature 0. Then action sensitivity: full-speed chunks in each
direction from a still start (within 4 px of the simulator's end), an agent resting against an edge or the wall
and pushed into it (the simulator keeps it in place), and the video loss with true against shuffled
actions; and the inverse-dynamics R^2 of the same held-out videos. Writes a PNG per run
(history | true future | imagined): look at it.

PushT checkpoints (the env is read from each checkpoint's config) get held-out pusher and
random-action episodes and the same measures for the agent AND the block (position in state units,
8 = 1 px at 64x64; angle error in degrees), the locator checked on true frames first; the still-start
direction test is Wall-only and skipped.

    python benchmarks/imagination.py --checkpoint uva_plan/checkpoints/wall [--episodes 12] [--out out/imagination]
    python benchmarks/imagination.py --checkpoint runs/a --checkpoint runs/b --quick   # ablation rows
    python benchmarks/imagination.py --checkpoint runs/pusht --quick
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

import world_model  # noqa: E402
from uva_plan.envs import env_name as canonical_env_name  # noqa: E402
from uva_plan.envs.wall_locate import locate_agent  # noqa: E402
from uva_plan.imagination import (  # noqa: E402
    SamplingSettings,
    direction_test,
    heldout_episodes,
    imagination_sheet,
    inverse_r2,
    measure_imagination,
    model_env,
    pressed_test,
    shuffled_action_loss,
)
from uva_plan.imagination_pusht import true_frame_check  # noqa: E402
from uva_plan.train_state import atomic_write_json  # noqa: E402


def detector_check(episodes) -> tuple[float, float]:
    """The agent detector on TRUE frames: fraction found and median error (world units)."""
    frames = np.concatenate([ep.frames for ep in episodes])
    states = np.concatenate([ep.states for ep in episodes])
    xy, present, _ = locate_agent(frames)
    return float(present.mean()), float(np.median(np.hypot(*(xy[present] - states[present, :2]).T)))


def _pct(v: float) -> str:
    return "-" if not np.isfinite(v) else f"{100 * v:.0f}%"


def fmt(v: float, digits: int = 2) -> str:
    return "-" if not np.isfinite(v) else f"{v:.{digits}f}"


def _finite_or_none(obj):
    """JSON has no NaN / inf: a measure that could not be taken (no agent found) becomes null."""
    if isinstance(obj, dict):
        return {str(k): _finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite_or_none(v) for v in obj]
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj


PUSHT_WIDTH = 180  # PushT's tables are wider than a non-terminal console's 80 columns


def _wide(console: Console) -> Console:
    """A console for PushT's wide tables: a terminal keeps its width, a log or pipe gets PUSHT_WIDTH."""
    return console if console.is_terminal else Console(width=max(console.width, PUSHT_WIDTH))


def _pusht_tables(model, path: str, episodes, settings, chunks: int, summary: dict, console: Console) -> None:
    """PushT's per-horizon tables (agent, then block) and their summary entries."""
    unit = "state units, 8 = 1 px at 64x64"
    agent = Table(title=f"imagined agent vs the simulator: {path}\n(planner = 1 MAR pass, 2 DDIM steps, "
                        f"the checkpoint's temperature; errors in {unit}; 'predicted': a --proprio model's own)")
    _agent_columns(agent)
    agent.add_column("predicted err", justify="right")
    block = Table(title=f"imagined block vs the simulator: medians of the pose point (state[2:4]) and mass-centre "
                        f"distances ({unit}) and the |angle error| (degrees), each beside copy-last and tokenizer; "
                        f"'predicted': an object-pose model's own pose (--object-pose), not read from frames")
    for col in ("sampling", "episodes", "+steps", "present", "pose err", "copy-last", "tokenizer",
                "centre err", "copy-last", "tokenizer", "angle err", "copy-last", "tokenizer", "predicted pose / angle"):
        block.add_column(col, justify="right")
    for s in settings:
        for rep in measure_imagination(model, episodes, s, n_chunks=chunks):
            for h in rep.horizons:
                _agent_row(agent, s, rep, h, fmt(h.predicted_agent_error))
                block.add_row(s.name, rep.kind, str(h.steps), f"{100 * h.block_present:.0f}%", fmt(h.block_error),
                              fmt(h.block_copy_last_error), fmt(h.block_tokenizer_error), fmt(h.block_centre_error),
                              fmt(h.block_centre_copy_last_error), fmt(h.block_centre_tokenizer_error),
                              fmt(h.angle_error_deg), fmt(h.angle_copy_last_error_deg), fmt(h.angle_tokenizer_error_deg),
                              f"{fmt(h.predicted_block_error)} / {fmt(h.predicted_angle_error_deg)}")
                summary.setdefault(s.name, {}).setdefault(rep.kind, {})[h.steps] = dict(vars(h))
    console.print(agent)
    _wide(console).print(block)


def _agent_columns(table: Table) -> None:
    for col in ("sampling", "episodes", "+steps", "present", "median err", "copy-last err", "tokenizer err", "n"):
        table.add_column(col, justify="right")


def _agent_row(table: Table, settings, rep, h, *extra: str) -> None:
    """One horizon of the imagined agent: presence and median position error beside copy-last and the
    tokenizer round trip (and ``extra`` cells where the table has more columns)."""
    table.add_row(settings.name, rep.kind, str(h.steps), f"{100 * h.present:.0f}%", fmt(h.median_error),
                  fmt(h.copy_last_error), fmt(h.tokenizer_error), str(h.n), *extra)


def evaluate(path: str, episodes, chunks: int, starts: int, out: Path | None, console: Console, quick: bool,
             mar_passes: int = 1) -> dict:
    model = world_model.load(path)
    model.eval()
    settings = [SamplingSettings("planner"), SamplingSettings("T=0", temperature=0.0)]
    if quick:
        settings = settings[:1]
    if mar_passes > 1:  # the planner's sampling with more MAR passes: what more backbone passes buy
        settings.append(SamplingSettings(f"{mar_passes} passes", num_iters=mar_passes))
    env = model_env(model)
    summary: dict = {"checkpoint": path}
    if env != "wall":
        summary["env"] = env  # Wall's summaries keep their earlier keys
        _pusht_tables(model, path, episodes, settings, chunks, summary, console)
        console.print("still-start direction test: Wall only (PushT's actions are target positions); skipped")
    else:
        _wall_tables(model, path, episodes, settings, chunks, starts, summary, console, out)
    _shared_measures(model, path, episodes, out, summary, console)
    return summary


def _run_name(path: str) -> str:
    """A checkpoint's name in output files: runs/a/final and runs/b/final must not collide."""
    return "-".join(Path(path).parts[-2:])


def _wall_tables(model, path: str, episodes, settings, chunks: int, starts: int, summary: dict,
                 console: Console, out: Path | None = None) -> None:
    """Wall's per-horizon table and the still-start direction test, with their summary entries."""
    table = Table(title=f"imagined agent vs the simulator: {path}\n(planner = 1 MAR pass, 2 DDIM steps, "
                        "the checkpoint's temperature; errors in world units = px at 64x64)")
    _agent_columns(table)
    for s in settings:
        for rep in measure_imagination(model, episodes, s, n_chunks=chunks):
            for h in rep.horizons:
                _agent_row(table, s, rep, h)
                summary.setdefault(s.name, {}).setdefault(rep.kind, {})[h.steps] = {
                    "present": h.present, "median_error": h.median_error, "copy_last_error": h.copy_last_error,
                    "tokenizer_error": h.tokenizer_error, "n": h.n}
    console.print(table)

    table = Table(title="chunks from a still start (16 steps; the simulator includes the walls)")
    for col in ("speed", "direction", "within 4 px", "free / blocked by a wall: within 4 px", "free chunks",
                "blocked: agent missing", "moved the commanded way", "median err", "starts"):
        table.add_column(col, justify="right")
    half = direction_test(model, n_starts=starts, speed_fraction=0.5)
    misses: list = []
    dirs = direction_test(model, n_starts=starts, misses=misses if out is not None else None)
    if out is not None and misses:
        from uva_plan.viz import save_image_grid

        stride = model.config.frame_stride
        png = out / f"still-start-misses-{_run_name(path)}.png"
        save_image_grid(misses[:8], png, column_titles=["start", *(f"true +{stride * k}" for k in range(1, model.config.n_future + 1)),
                                                        *(f"imagined +{stride * k}" for k in range(1, model.config.n_future + 1))])
        summary["still_start_misses_png"] = str(png)
        console.print(f"wrote {png} (the first {min(8, len(misses))} of {len(misses)} full-speed misses)")
    for speed, results in (("half", half), ("full", dirs)):
        for d in results:
            table.add_row(speed, d.direction, f"{100 * d.near:.0f}%", f"{_pct(d.near_free)} / {_pct(d.near_blocked)}",
                          str(d.n_free), _pct(d.missing_blocked), f"{100 * d.moved_right_way:.0f}%",
                          fmt(d.median_error), str(d.n))
    summary["directions_half_speed_near"] = float(np.mean([d.near for d in half]))
    summary["directions"] = {d.direction: {"near": d.near, "moved": d.moved_right_way, "median_error": d.median_error,
                                           "near_free": d.near_free, "near_blocked": d.near_blocked, "n_free": d.n_free,
                                           "missing_blocked": d.missing_blocked, "proprio_near": d.proprio_near}
                             for d in dirs}
    summary["directions_near"] = float(np.mean([d.near for d in dirs]))
    summary["directions_proprio_near"] = float(np.mean([d.proprio_near for d in dirs]))  # NaN without proprio
    if np.isfinite(summary["directions_proprio_near"]):
        console.print(f"full speed: the predicted proprio ends within 4 px in {_pct(summary['directions_proprio_near'])}, "
                      f"the drawn agent in {_pct(summary['directions_near'])}")
    n_free = sum(d.n_free for d in dirs)
    n_all = sum(d.n for d in dirs)
    summary["directions_near_free"] = (sum(d.near_free * d.n_free for d in dirs if d.n_free) / n_free
                                       if n_free else float("nan"))
    for key in ("near_blocked", "missing_blocked"):  # pooled over the blocked chunks of every direction
        summary[f"directions_{key}"] = (sum(getattr(d, key) * (d.n - d.n_free) for d in dirs if d.n > d.n_free)
                                        / (n_all - n_free) if n_all > n_free else float("nan"))
    console.print(table)

    table = Table(title="an agent resting against an edge or the wall, pushed into it for a chunk (the "
                        "simulator keeps it in place)")
    for col in ("speed", "against", *(f"present +{model.config.frame_stride * (k + 1)}" for k in range(model.config.n_future)),
                "in place (within 4 px) at the end", "median err where present", "starts"):
        table.add_column(col, justify="right")
    pressed = pressed_test(model)
    for r in pressed:
        table.add_row("half" if r.speed_fraction < 1 else "full", r.place, *(f"{100 * v:.0f}%" for v in r.present),
                      f"{100 * r.held:.0f}%", fmt(r.median_error), str(r.n))
    summary["pressed"] = [vars(r) for r in pressed]
    summary["pressed_present_last"] = float(np.mean([r.present[-1] for r in pressed]))
    summary["pressed_held"] = float(np.mean([r.held for r in pressed]))
    console.print(table)


def _shared_measures(model, path: str, episodes, out: Path | None, summary: dict, console: Console) -> None:
    """Both envs: video loss with true vs shuffled actions, inverse-dynamics R^2, the PNG sheet."""
    true_loss, shuffled = shuffled_action_loss(model, episodes)
    r2 = inverse_r2(model, episodes)
    summary.update(video_loss_true=true_loss, video_loss_shuffled=shuffled, inverse_r2=r2)
    console.print(f"forward-dynamics video loss: true actions {true_loss:.3f}, shuffled {shuffled:.3f} "
                  f"(x{shuffled / max(true_loss, 1e-9):.2f});  inverse-dynamics R^2 "
                  + ", ".join(f"{k} {v:.2f}" for k, v in r2.items()))
    if out is not None:
        png = out / f"imagination-{_run_name(path)}.png"
        imagination_sheet(model, episodes, png)
        summary["png"] = str(png)
        console.print(f"wrote {png}")


def _pooled(kinds: dict, key: str, h: int) -> float:
    """Mean over episode kinds of one per-horizon measure (kinds where it was measurable)."""
    vals = [v for k in kinds.values() if (v := k[h].get(key, float("nan"))) == v]  # NaN != NaN: unmeasured
    return float(np.mean(vals)) if vals else float("nan")


def pusht_summary_table(summaries: list[dict]) -> Table:
    """One row per PushT checkpoint at the planner's settings (errors: mean over pusher and random of
    the median; positions in state units, angles in degrees)."""
    table = Table(title="PushT summary (planner settings; errors: mean over pusher and random of the median; "
                        "state units, 8 = 1 px; angle in degrees)")
    steps = sorted({int(h) for s in summaries for k in s["planner"].values() for h in k})
    first, last = steps[0], steps[-1]
    for col in ("checkpoint", "agent present", f"agent err +{first}", f"+{last}", "block present",
                f"block err +{last}", f"centre err +{last}", f"angle err +{last}", f"predicted pose / angle +{last}",
                "loss shuffled/true",
                "inverse R^2 pusher", "random"):
        table.add_column(col, justify="right")
    for s in summaries:
        kinds = s["planner"]
        horizons = sorted({int(h) for k in kinds.values() for h in k})
        present = np.mean([k[h]["present"] for k in kinds.values() for h in horizons])
        block = np.mean([k[h]["block_present"] for k in kinds.values() for h in horizons])
        table.add_row(Path(s["checkpoint"]).name, f"{100 * present:.0f}%",
                      fmt(_pooled(kinds, "median_error", horizons[0])), fmt(_pooled(kinds, "median_error", horizons[-1])),
                      f"{100 * block:.0f}%", fmt(_pooled(kinds, "block_error", horizons[-1])),
                      fmt(_pooled(kinds, "block_centre_error", horizons[-1])),
                      fmt(_pooled(kinds, "angle_error_deg", horizons[-1])),
                      f"{fmt(_pooled(kinds, 'predicted_block_error', horizons[-1]))} / "
                      f"{fmt(_pooled(kinds, 'predicted_angle_error_deg', horizons[-1]))}",
                      f"{s['video_loss_shuffled'] / max(s['video_loss_true'], 1e-9):.2f}",
                      fmt(s["inverse_r2"].get("pusher", float("nan"))), fmt(s["inverse_r2"].get("random", float("nan"))))
    return table


def summary_table(summaries: list[dict]) -> Table:
    """One row per checkpoint at the planner's settings: the ablation table's columns."""
    table = Table(title="summary (planner settings; errors: mean over expert and random of the median)")
    steps = sorted({int(h) for s in summaries for k in s["planner"].values() for h in k})
    for col in ("checkpoint", "present", f"err +{steps[0]}", f"err +{steps[-1]}", "still-start within 4 px",
                "free / blocked", "blocked: agent missing", "pressed: present / in place", "loss shuffled/true", "inverse R^2 expert", "random"):
        table.add_column(col, justify="right")
    for s in summaries:
        kinds = s["planner"]
        horizons = sorted({int(h) for k in kinds.values() for h in k})
        present = np.mean([k[h]["present"] for k in kinds.values() for h in horizons])
        table.add_row(Path(s["checkpoint"]).name, f"{100 * present:.0f}%", fmt(_pooled(kinds, "median_error", horizons[0])),
                      fmt(_pooled(kinds, "median_error", horizons[-1])), f"{100 * s['directions_near']:.0f}%",
                      f"{_pct(s['directions_near_free'])} / {_pct(s['directions_near_blocked'])}",
                      _pct(s.get("directions_missing_blocked", float("nan"))),
                      f"{_pct(s.get('pressed_present_last', float('nan')))} / {_pct(s.get('pressed_held', float('nan')))}",
                      f"{s['video_loss_shuffled'] / max(s['video_loss_true'], 1e-9):.2f}",
                      fmt(s["inverse_r2"].get("expert", float("nan"))), fmt(s["inverse_r2"].get("random", float("nan"))))
    return table


def held_out(env: str, n_per_kind: int, steps: int, console: Console) -> list:
    """The env's held-out episodes, after printing how well the locator reads their TRUE frames."""
    episodes = heldout_episodes(n_per_kind=n_per_kind, steps=steps, env_name=env)
    n = sum(len(e.frames) for e in episodes)
    if env == "wall":
        found, err = detector_check(episodes)
        console.print(f"agent detector on the {n} TRUE held-out frames: "
                      f"found in {100 * found:.1f}%, median error {err:.3f} units")
    else:
        c = true_frame_check(episodes)
        console.print(f"PushT locator on the {n} TRUE held-out frames: agent found in {100 * c['agent_present']:.1f}%, "
                      f"median error {c['agent_error']:.2f} units; block found in {100 * c['block_present']:.1f}%, "
                      f"median error {c['block_error']:.2f} units (mass centre {c['block_centre_error']:.2f}), "
                      f"angle {c['angle_error_deg']:.2f} deg")
    return episodes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", action="append", required=True, help="checkpoint folder (repeatable)")
    parser.add_argument("--episodes", type=int, default=12, help="held-out episodes per kind (Wall: expert, random; PushT: pusher, random)")
    parser.add_argument("--steps", type=int, default=64, help="env steps per held-out episode")
    parser.add_argument("--chunks", type=int, default=1, help="action chunks imagined per window (1 = 16 steps)")
    parser.add_argument("--starts", type=int, default=24, help="still starts per direction in the direction test (Wall only)")
    parser.add_argument("--out", default="out/imagination", help="folder for the PNGs and summary.json")
    parser.add_argument("--quick", action="store_true", help="planner settings only (for ablation rows)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--mar-passes", type=int, default=1,
                        help="also measure the planner's sampling with this many MAR passes (per-horizon table)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    console = Console()
    out = Path(args.out)
    episodes: dict[str, list] = {}  # per env, made (and the locator checked) once
    summaries = []
    for path in args.checkpoint:
        env = canonical_env_name(world_model.load_config(path).env_name or "wall")
        if env not in episodes:
            episodes[env] = held_out(env, args.episodes, args.steps, console)
        summaries.append(evaluate(path, episodes[env], args.chunks, args.starts, out, console, args.quick,
                                   args.mar_passes))
    wall = [s for s in summaries if "env" not in s]
    if wall:
        console.print(summary_table(wall))
    if len(wall) < len(summaries):
        _wide(console).print(pusht_summary_table([s for s in summaries if "env" in s]))
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "summary.json", _finite_or_none(json.loads(json.dumps(summaries, default=float))))


if __name__ == "__main__":
    main()
