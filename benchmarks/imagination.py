"""The world model's headline figure: does it imagine what the simulator does (issue 10)?

Held-out Wall episodes (expert and random-action, seeds from 1,000,000 on; training data is collected
from seed 0), the TRUE action chunk, imagined frames decoded and the agent found in them (a detector
checked on true frames first, printed). Per horizon and episode kind: agent presence, median position
error against the simulator, the tokenizer round-trip ceiling and the copy-last-frame baseline; at the
planner's sampling settings and at temperature 0. Then action sensitivity: full-speed chunks in each
direction from a still start (within 4 px of the simulator's end), and the video loss with true against
shuffled actions; and the inverse-dynamics R^2 of the same held-out videos. Writes a PNG per run
(history | true future | imagined): look at it.

    python benchmarks/imagination.py --checkpoint uva_plan/checkpoints/wall [--episodes 12] [--out out/imagination]
    python benchmarks/imagination.py --checkpoint runs/a --checkpoint runs/b --quick   # ablation rows
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
from uva_plan.envs.wall_locate import locate_agent  # noqa: E402
from uva_plan.imagination import (  # noqa: E402
    SamplingSettings,
    direction_test,
    heldout_episodes,
    imagination_sheet,
    inverse_r2,
    measure_imagination,
    shuffled_action_loss,
)
from uva_plan.train_state import atomic_write_json  # noqa: E402


def detector_check(episodes) -> tuple[float, float]:
    """The agent detector on TRUE frames: fraction found and median error (world units)."""
    frames = np.concatenate([ep.frames for ep in episodes])
    states = np.concatenate([ep.states for ep in episodes])
    xy, present, _ = locate_agent(frames)
    return float(present.mean()), float(np.median(np.hypot(*(xy[present] - states[present, :2]).T)))


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


def evaluate(path: str, episodes, chunks: int, starts: int, out: Path | None, console: Console, quick: bool) -> dict:
    model = world_model.load(path)
    model.eval()
    settings = [SamplingSettings("planner"), SamplingSettings("T=0", temperature=0.0)]
    if quick:
        settings = settings[:1]
    summary: dict = {"checkpoint": path}
    table = Table(title=f"imagined agent vs the simulator: {path}\n(planner = 1 MAR pass, 2 DDIM steps, "
                        "the checkpoint's temperature; errors in world units = px at 64x64)")
    for col in ("sampling", "episodes", "+steps", "present", "median err", "copy-last err", "tokenizer err", "n"):
        table.add_column(col, justify="right")
    for s in settings:
        for rep in measure_imagination(model, episodes, s, n_chunks=chunks):
            for h in rep.horizons:
                table.add_row(s.name, rep.kind, str(h.steps), f"{100 * h.present:.0f}%", fmt(h.median_error),
                              fmt(h.copy_last_error), fmt(h.tokenizer_error), str(h.n))
                summary.setdefault(s.name, {}).setdefault(rep.kind, {})[h.steps] = {
                    "present": h.present, "median_error": h.median_error, "copy_last_error": h.copy_last_error,
                    "tokenizer_error": h.tokenizer_error, "n": h.n}
    console.print(table)

    table = Table(title="chunks from a still start (16 steps; the simulator includes the walls)")
    for col in ("speed", "direction", "within 4 px", "moved the commanded way", "median err", "starts"):
        table.add_column(col, justify="right")
    half = direction_test(model, n_starts=starts, speed_fraction=0.5)
    dirs = direction_test(model, n_starts=starts)
    for speed, results in (("half", half), ("full", dirs)):
        for d in results:
            table.add_row(speed, d.direction, f"{100 * d.near:.0f}%", f"{100 * d.moved_right_way:.0f}%",
                          fmt(d.median_error), str(d.n))
    summary["directions_half_speed_near"] = float(np.mean([d.near for d in half]))
    summary["directions"] = {d.direction: {"near": d.near, "moved": d.moved_right_way, "median_error": d.median_error}
                             for d in dirs}
    summary["directions_near"] = float(np.mean([d.near for d in dirs]))
    console.print(table)

    true_loss, shuffled = shuffled_action_loss(model, episodes)
    r2 = inverse_r2(model, episodes)
    summary.update(video_loss_true=true_loss, video_loss_shuffled=shuffled, inverse_r2=r2)
    console.print(f"forward-dynamics video loss: true actions {true_loss:.3f}, shuffled {shuffled:.3f} "
                  f"(x{shuffled / max(true_loss, 1e-9):.2f});  inverse-dynamics R^2 "
                  + ", ".join(f"{k} {v:.2f}" for k, v in r2.items()))
    if out is not None:
        name = "-".join(Path(path).parts[-2:])  # runs/a/final and runs/b/final must not collide
        png = out / f"imagination-{name}.png"
        imagination_sheet(model, episodes, png)
        summary["png"] = str(png)
        console.print(f"wrote {png}")
    return summary


def _pooled(kinds: dict, key: str, h: int) -> float:
    """Mean over episode kinds of one per-horizon measure (kinds where it was measurable)."""
    vals = [k[h][key] for k in kinds.values() if k[h][key] == k[h][key]]
    return float(np.mean(vals)) if vals else float("nan")


def summary_table(summaries: list[dict]) -> Table:
    """One row per checkpoint at the planner's settings: the ablation table's columns."""
    table = Table(title="summary (planner settings; errors: mean over expert and random of the median)")
    steps = sorted({int(h) for s in summaries for k in s["planner"].values() for h in k})
    for col in ("checkpoint", "present", f"err +{steps[0]}", f"err +{steps[-1]}", "still-start within 4 px",
                "loss shuffled/true", "inverse R^2 expert", "random"):
        table.add_column(col, justify="right")
    for s in summaries:
        kinds = s["planner"]
        horizons = sorted({int(h) for k in kinds.values() for h in k})
        present = np.mean([k[h]["present"] for k in kinds.values() for h in horizons])
        table.add_row(Path(s["checkpoint"]).name, f"{100 * present:.0f}%", fmt(_pooled(kinds, "median_error", horizons[0])),
                      fmt(_pooled(kinds, "median_error", horizons[-1])), f"{100 * s['directions_near']:.0f}%",
                      f"{s['video_loss_shuffled'] / max(s['video_loss_true'], 1e-9):.2f}",
                      fmt(s["inverse_r2"].get("expert", float("nan"))), fmt(s["inverse_r2"].get("random", float("nan"))))
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", action="append", required=True, help="checkpoint folder (repeatable)")
    parser.add_argument("--episodes", type=int, default=12, help="held-out episodes per kind (expert, random)")
    parser.add_argument("--steps", type=int, default=64, help="env steps per held-out episode")
    parser.add_argument("--chunks", type=int, default=1, help="action chunks imagined per window (1 = 16 steps)")
    parser.add_argument("--starts", type=int, default=24, help="still starts per direction in the direction test")
    parser.add_argument("--out", default="out/imagination", help="folder for the PNGs and summary.json")
    parser.add_argument("--quick", action="store_true", help="planner settings only (for ablation rows)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    console = Console()
    episodes = heldout_episodes(n_per_kind=args.episodes, steps=args.steps)
    found, err = detector_check(episodes)
    console.print(f"agent detector on the {sum(len(e.frames) for e in episodes)} TRUE held-out frames: "
                  f"found in {100 * found:.1f}%, median error {err:.3f} units")
    out = Path(args.out)
    summaries = [evaluate(p, episodes, args.chunks, args.starts, out, console, args.quick) for p in args.checkpoint]
    console.print(summary_table(summaries))
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "summary.json", _finite_or_none(json.loads(json.dumps(summaries, default=float))))


if __name__ == "__main__":
    main()
