"""Scripted data collection into a replay buffer: the data UVA is trained on.

Episode i uses seed `seed + i` for the env, the policy and the per-episode choices, so an episode's
content does not depend on how many episodes are collected, and two runs with disjoint seed ranges
hold disjoint episodes. Evaluation goals use seeds from `EVAL_SEED_OFFSET` (1,000,000) upwards.

Policies: `random`, `expert` (Wall; door-aware, with per-episode action noise for diversity),
`pusher` (PushT), `wander` (Wall; piecewise-constant random velocities, the kind of motion a
planner's candidates ask the world model about), `box` (Wall; the same with velocities drawn uniformly
from the whole action box, as a planner's first candidates are: mostly fast, many pushes into walls), `dash` (Wall;
rests of up to 16 steps, then fast straight moves held 8-24 steps: still histories followed by
full-speed chunks, most of which end at a wall), and `mixed`, a per-episode draw: Wall 60% expert /
20% wander / 20% random, PushT 80% pusher / 20% random. The Wall expert picks its own goals (70% in the other room) and a new one on arrival.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from uva_plan.errors import UserInputError

COLLECT_POLICIES = {"wall": ("random", "expert", "wander", "box", "dash", "mixed"), "pusht": ("random", "pusher", "mixed")}
MIXED_SHARE = {"wall": {"expert": 0.6, "wander": 0.2, "random": 0.2}, "pusht": {"pusher": 0.8, "random": 0.2}}
EXPERT_NOISE = (0.0, 0.4)  # per-episode velocity-noise std, as a fraction of the top speed


def _check_int(value, name: str, low: int, high: int | None = None) -> int:
    ok = not isinstance(value, bool) and isinstance(value, (int, np.integer))
    ok = ok and value >= low and (high is None or value <= high)
    if not ok:
        expected = f"an integer >= {low}" if high is None else f"an integer in [{low}, {high}]"
        raise UserInputError(f"{name} is {value!r}; expected {expected}")
    return int(value)


def _episode_policy(env_name: str, policy: str, episode_seed: int):
    """The (kind, policy object) for one episode, drawn from the episode's own seed."""
    from uva_plan.envs.policies import make_policy

    rng = np.random.default_rng([episode_seed, 7])  # independent of the env's and the policy's streams
    kind = policy
    if policy == "mixed":
        shares = MIXED_SHARE[env_name]
        kind = str(rng.choice(list(shares), p=list(shares.values())))
    options = {}
    if kind == "expert":
        options["noise"] = float(rng.uniform(*EXPERT_NOISE))
    return kind, make_policy(env_name, kind, seed=episode_seed, **options)


def collect_dataset(env_name: str, episodes: int, max_steps: int = 100, policy: str = "mixed", image_size: int = 64,
                    seed: int = 0, out=None, overwrite: bool = False, progress: bool = False) -> dict:
    """Roll out `episodes` episodes of `max_steps` steps and write a replay buffer to `out` (atomically).

    Returns `dict(episodes, steps, steps_per_second, path)`. Bad arguments or an existing `out`
    (without `overwrite`) raise UserInputError before anything is written.
    """
    from uva_plan.data.replay_buffer import ReplayBufferWriter
    from uva_plan.envs import ENV_IDS, make_env
    from uva_plan.envs import env_name as canonical_env_name
    from uva_plan.envs.checks import check_image_size
    from uva_plan.progress import progress_bar

    name = canonical_env_name(env_name)
    if policy not in COLLECT_POLICIES[name]:
        raise UserInputError(f"policy {policy!r} is not available for {name}; expected one of: {', '.join(COLLECT_POLICIES[name])}")
    episodes = _check_int(episodes, "episodes", 1)
    max_steps = _check_int(max_steps, "max_steps", 2)
    seed = _check_int(seed, "seed", 0)
    image_size = check_image_size(image_size)
    if out is None or str(out) == "":
        raise UserInputError("no output path given; expected a path such as data/wall.zarr")

    env = make_env(name, image_size=image_size, max_episode_steps=max_steps)
    attrs = {
        "env_id": ENV_IDS[name],
        "env_name": name,
        "image_size": image_size,
        "action_low": env.action_low.tolist(),
        "action_high": env.action_high.tolist(),
        "policy": policy,
        "seed": seed,
        "max_steps": max_steps,
        "state_names": list(env.state_names),
        "created_by": "uva-plan collect",
    }
    a_dim, s_dim = env.action_low.shape[0], env.state_dim
    kinds: list[str] = []
    start = time.perf_counter()
    with ReplayBufferWriter(out, image_size, a_dim, s_dim, attrs, overwrite=overwrite) as writer:
        bar = progress_bar(progress, unit="episodes", remaining=True)
        with bar:
            task = bar.add_task(f"collect {name}", total=episodes)
            img = np.empty((max_steps, image_size, image_size, 3), dtype=np.uint8)
            actions = np.empty((max_steps, a_dim), dtype=np.float32)
            states = np.empty((max_steps, s_dim), dtype=np.float32)
            for i in range(episodes):
                episode_seed = seed + i
                kind, pol = _episode_policy(name, policy, episode_seed)
                kinds.append(kind)
                obs, info = env.reset(seed=episode_seed)
                state = info["state"]
                pol.reset(state)
                for t in range(max_steps):
                    action = pol(state)
                    img[t], actions[t], states[t] = obs, action, state
                    if t + 1 < max_steps:
                        # step_state + render = step's state and image without its reward (PushT's
                        # shapely coverage would cost ~15% of the step); the final observation is not stored.
                        state = env.step_state(action)
                        obs = env.render()
                writer.add_episode(img, actions, states)
                bar.advance(task)
        writer.attrs["episode_policies"] = kinds
        path = writer.commit()
    elapsed = time.perf_counter() - start
    steps = episodes * max_steps
    return {"episodes": episodes, "steps": steps, "steps_per_second": steps / max(elapsed, 1e-9), "path": str(Path(path))}
