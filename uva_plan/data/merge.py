"""One replay buffer from several: `uva-plan merge-data`.

Why: fine-tuning a trained run on extra episodes (for example `--policy box` pushes into walls, which the
planner's candidates ask the world model about) needs the run's own data beside them in one buffer. With
``held_out_of`` a run's held-out episodes stay out of the merge, so its validation figures stay honest.
"""

from __future__ import annotations

import json
from pathlib import Path

from uva_plan.errors import UserInputError


def _training_episodes(run_dir: Path, data: Path, n_episodes: int) -> list[int] | None:
    """The episodes of ``data`` that ``run_dir`` trained on, or None when it was trained on other data."""
    from uva_plan.training_config import RUN_FILE

    info_path = run_dir / RUN_FILE
    if not info_path.is_file():
        raise UserInputError(f"{run_dir} has no {RUN_FILE}; expected a run directory of `uva-plan train`")
    info = json.loads(info_path.read_text())
    trained_on = info.get("train_config", {}).get("data")
    if trained_on is None or Path(trained_on).resolve() != data.resolve():
        return None
    episodes = [int(e) for e in info.get("train_episodes") or []]
    if not episodes or max(episodes) >= n_episodes:
        raise UserInputError(f"{run_dir} names training episodes that {data} does not hold; expected the data it was trained on")
    return episodes


def merge_replay_buffers(paths, out, overwrite: bool = False, held_out_of=None) -> dict:
    """Write the episodes of every buffer in ``paths`` (in order) to ``out`` atomically. Buffers must share
    env, frame size and action / state sizes. ``held_out_of``: a run directory whose held-out episodes
    are left out of the buffer it was trained on. Returns ``dict(path, episodes, steps, per_input)``."""
    from uva_plan.data.replay_buffer import ReplayBufferWriter, load_replay_buffer

    paths = [Path(p) for p in paths]
    if len(paths) < 2:
        raise UserInputError(f"{len(paths)} buffer(s) given; expected at least two --data to merge")
    out = Path(out)
    if any(out.resolve() == p.resolve() for p in paths):
        raise UserInputError(f"--out {out} is one of the inputs; expected a new path")
    buffers = [load_replay_buffer(p) for p in paths]
    first = buffers[0]
    for path, buf in zip(paths[1:], buffers[1:]):
        for what, a, b in (("env", buf.attrs.get("env_name"), first.attrs.get("env_name")),
                           ("frame size", buf.image_size, first.image_size),
                           ("action size", buf.action.shape[1], first.action.shape[1]),
                           ("state size", buf.state.shape[1], first.state.shape[1])):
            if a != b:
                raise UserInputError(f"{path} has {what} {a!r} but {paths[0]} has {b!r}; expected buffers of one env and layout")
    attrs = {k: v for k, v in first.attrs.items() if k not in ("episode_policies", "policy", "seed")}
    attrs.update(policy="merged", merged_from=[str(p) for p in paths], created_by="uva-plan merge-data")
    kinds, per_input, steps = [], {}, 0
    with ReplayBufferWriter(out, first.image_size, first.action.shape[1], first.state.shape[1], attrs,
                            overwrite=overwrite) as writer:
        for path, buf in zip(paths, buffers):
            keep = _training_episodes(Path(held_out_of), path, buf.n_episodes) if held_out_of is not None else None
            episodes = range(buf.n_episodes) if keep is None else keep
            recorded = buf.attrs.get("episode_policies")
            for e in episodes:
                s, t = int(buf.episode_starts[e]), int(buf.episode_ends[e])
                writer.add_episode(buf.img[s:t], buf.action[s:t], buf.state[s:t])
                steps += t - s
                kinds.append(str(recorded[e]) if isinstance(recorded, (list, tuple)) and len(recorded) == buf.n_episodes
                             else str(buf.attrs.get("policy", "unknown")))
            per_input[str(path)] = len(episodes)
        writer.attrs["episode_policies"] = kinds
        written = writer.commit()
    return {"path": str(written), "episodes": len(kinds), "steps": steps, "per_input": per_input}
