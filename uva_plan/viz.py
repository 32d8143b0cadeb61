"""Pictures of what the planner did and believed: episode GIFs with real, imagined and goal panels,
side-by-side imitation GIFs, and plots of the planner's cost per iteration. Files are written
atomically (temp file, then rename) so a crash never leaves half a GIF behind."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np


def _write(path: Path, data: bytes) -> Path:
    """Atomic write with the user's umask permissions (a colleague can open the GIFs and plots)."""
    from world_model.files import atomic_write_bytes

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, data)
    return path


def _upscale(frame: np.ndarray, scale: int) -> np.ndarray:
    return frame.repeat(scale, axis=0).repeat(scale, axis=1) if scale > 1 else frame


def _label(panel: np.ndarray, text: str) -> np.ndarray:
    """A dark strip with white text above a panel (PIL ships with imageio/matplotlib)."""
    from PIL import Image, ImageDraw

    strip = Image.new("RGB", (panel.shape[1], 14), (30, 30, 30))
    ImageDraw.Draw(strip).text((3, 1), text, fill=(255, 255, 255))
    return np.concatenate([np.asarray(strip), panel], axis=0)


def write_gif(path: str | Path, frames: Sequence[np.ndarray], fps: int = 10) -> Path:
    """Write ``frames`` (each ``[H, W, 3]`` uint8) as a looping GIF, atomically."""
    import imageio.v3 as iio

    return _write(Path(path), iio.imwrite("<bytes>", np.stack(frames), extension=".gif", duration=1000 / fps, loop=0))


def planning_gif(
    path: str | Path,
    real: np.ndarray,
    imagined: Sequence[tuple[int, np.ndarray]],
    goal: np.ndarray,
    frame_stride: int,
    scale: int = 3,
    fps: int = 10,
) -> Path:
    """Three panels per env step: the real frame, the frame the latest plan imagined for that step, and
    the goal image.

    real: ``[T, H, W, 3]`` uint8, one frame per env step (T = steps + 1);
    imagined: ``(replan_step, frames [F, H, W, 3])`` per replan; frame k shows step
    ``replan_step + (k + 1) * frame_stride``;
    goal: ``[H, W, 3]`` uint8.
    """
    blank = np.zeros_like(goal)
    goal_panel = _label(_upscale(goal, scale), "goal")
    out = []
    for t, frame in enumerate(real):
        plan = [(r, f) for r, f in imagined if r <= t]
        shown = blank
        if plan:
            r, frames = plan[-1]
            k = min(max((t - r + frame_stride - 1) // frame_stride - 1, 0), len(frames) - 1)
            shown = frames[k]
        panels = [
            _label(_upscale(frame, scale), f"real t={t}"),
            _label(_upscale(shown, scale), "imagined"),
            goal_panel,
        ]
        out.append(np.concatenate(panels, axis=1))
    return write_gif(path, out, fps=fps)


def side_by_side_gif(path: str | Path, left: np.ndarray, right: np.ndarray, labels=("demo", "executed"),
                     scale: int = 3, fps: int = 10) -> Path:
    """Two videos side by side (the shorter one holds its last frame)."""
    n = max(len(left), len(right))
    out = []
    for t in range(n):
        a = left[min(t, len(left) - 1)]
        b = right[min(t, len(right) - 1)]
        out.append(np.concatenate([_label(_upscale(a, scale), labels[0]), _label(_upscale(b, scale), labels[1])], axis=1))
    return write_gif(path, out, fps=fps)


def cost_plot(path: str | Path, replans: Sequence[dict], title: str = "planner cost per iteration") -> Path:
    """Best and mean population cost per planner iteration, one line pair per replan.

    replans: one dict per replan with lists ``best`` and ``mean`` (one value per iteration).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    cmap = plt.get_cmap("viridis")
    for i, stats in enumerate(replans):
        color = cmap(i / max(len(replans) - 1, 1))
        ax.plot(stats["best"], color=color, label=f"replan {i} best" if i in (0, len(replans) - 1) else None)
        ax.plot(stats["mean"], color=color, linestyle="--", alpha=0.6)
    ax.set_xlabel("planner iteration")
    ax.set_ylabel("cost (solid: best, dashed: population mean)")
    ax.set_title(title)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


def save_figure(fig, path: str | Path, dpi: int = 100) -> Path:
    """Write a matplotlib figure as a PNG atomically and close it."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=dpi)
    finally:
        plt.close(fig)
    return _write(Path(path), buffer.getvalue())


def save_image_grid(rows: Sequence[Sequence[np.ndarray]], path: str | Path, column_titles: Sequence[str] = (),
                    scale: int = 3) -> Path:
    """A PNG of frames in rows (each ``[H, W, 3]`` uint8), every panel labelled with its column title;
    written atomically with the user's umask permissions."""
    import imageio.v3 as iio

    gap = np.full((rows[0][0].shape[0] * scale + 14, 2, 3), 255, np.uint8)
    lines = []
    for row in rows:
        panels = []
        for j, frame in enumerate(row):
            title = column_titles[j] if j < len(column_titles) else ""
            panels += [_label(_upscale(frame, scale), title), gap]
        lines.append(np.concatenate(panels[:-1], axis=1))
    return _write(Path(path), iio.imwrite("<bytes>", np.concatenate(lines, axis=0), extension=".png"))


def gif_stills(gif: str | Path, steps: Sequence[int], out: str | Path) -> Path:
    """Frames ``steps`` of an episode GIF stacked top to bottom into one PNG (the README's stills)."""
    import imageio.v3 as iio

    frames = iio.imread(Path(gif), index=None)
    bad = [t for t in steps if not 0 <= t < len(frames)]
    if bad:
        from uva_plan.errors import UserInputError

        raise UserInputError(f"steps {bad} are outside the GIF's {len(frames)} frames; expected 0..{len(frames) - 1}")
    buffer = io.BytesIO()
    iio.imwrite(buffer, np.concatenate([frames[t][..., :3] for t in steps], axis=0), extension=".png")
    return _write(Path(out), buffer.getvalue())
