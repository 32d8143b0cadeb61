"""Refit a checkpoint's latent-distance head on frozen frame latents: `uva-plan fit-distance`.

Why a stage of its own: the head compares a frame's latents with a goal's and needs only the frozen
tokenizer, so it can see far more (frame, hindsight goal) pairs per second than the joint training
gives it (32 windows x 5 frames per step there, batches of 256 pairs here, no transformer pass).

Three ways to fit it (`method`; `graph`, the default, made the shipped Wall head):
- ``expectile``: regress a low expectile of hindsight step counts (frame, a later frame of the same
  episode). Counts along one trajectory over-state the way wherever the trajectory wandered.
- ``td``: a shortest-path distance by temporal differences, d(s, g) = 1 + d(s', g) for every recorded
  transition s -> s', d(g, g) = 0, fitted with a LOW expectile so the bootstrap follows the shortest of
  the recorded continuations (GCIVL / HILP-style implicit value learning, in steps instead of
  discounted rewards; a slowly updated target copy of the head supplies d(s', g)). Goals are frames of
  the same episode at ANY time, before or after (the Wall is reversible, and a shared door keeps the
  goal reachable), so loops and detours of a wandering episode are cut short, which hindsight counts
  cannot do. Half of these far goals come from other episodes of the same layout (`layout_mates`).
- ``graph``: regress Dijkstra distances over the recorded frames, joined where two frames' latents
  nearly coincide (`uva_plan.dataset_graph`): trajectories are joined at once instead of at the pace of
  a bootstrap; the true simulator plans best with this head (README, "A goal distance from shortest
  paths", has the three methods side by side).

`form` swaps the head for a fresh one: "pair" compares frame and goal side by side, "metric" takes the
distance between their embeddings (`world_model.heads.MetricDistanceHead`).

Only the run's training episodes are used (its train_config.json names them when `data` is the file
it was trained on). The checkpoint is rewritten atomically; run this after the last `uva-plan train`
of a run, since `--resume` continues from the joint-training state.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from uva_plan.errors import UserInputError
from uva_plan.run_data import encode_buffer, episodes_of_run, load_run_and_data


@dataclass
class DistanceFitResult:
    steps: int
    pairs_per_second: float
    val_loss_before: float
    val_loss_after: float
    train_episodes: int


def _pairs(rng, starts, ends, episodes, n, goal_max_steps):
    """``n`` (frame, hindsight goal) index pairs from ``episodes`` and their step gaps."""
    ep = rng.choice(np.asarray(episodes), size=n)
    lo, hi = starts[ep], ends[ep]
    t = lo + (rng.random(n) * (hi - lo)).astype(np.int64)
    g = np.minimum(t + rng.integers(0, goal_max_steps + 1, size=n), hi - 1)
    return t, g, (g - t).astype(np.float32)


FIT_METHODS = ("expectile", "td", "graph")
TD_TAU = 0.1  # expectile of the bootstrapped targets: the shorter continuations
TD_TARGET_RATE = 0.005  # Polyak rate of the target head (HILP's)
TD_MAX_STEPS = 400.0  # bootstrapped distances are capped here (the longest Wall episode is 100 steps)


EMPTY_MAX_FADE = 0.3  # an "empty" frame keeps at most this share of a real frame's latent (a faint agent)


def empty_frames(rng, frames, steps, empty, fraction: float, farthest: float):
    """Replace ``fraction`` of the frame latents ``[N, h, w, c]`` by the empty scene ``empty [h, w, c]``
    (the tokenizer's median background), faded at most ``EMPTY_MAX_FADE`` towards the real frame, and
    label them ``farthest`` steps from any goal (the graph fit passes its "unreachable" label). Why: an
    imagined future that lost the agent (the world model's answer to pushing into a wall) otherwise
    reads as progress (`benchmarks/cost_landscape.py`: the Wall head fitted without it scored the empty
    scene closer to the goal than the real frame in 98% of pairs 40+ px apart), so the planner picks
    exactly the candidates the model gets wrong."""
    import torch

    chosen = torch.from_numpy(rng.random(len(steps)) < fraction).to(frames.device)
    fade = torch.from_numpy(rng.uniform(0.0, EMPTY_MAX_FADE, len(steps)).astype(np.float32)).to(frames.device)
    faded = empty + fade.view(-1, 1, 1, 1) * (frames - empty)
    frames = torch.where(chosen.view(-1, 1, 1, 1), faded, frames)
    return frames, torch.where(chosen, torch.as_tensor(float(farthest), device=steps.device), steps)


LAYOUT_TOLERANCE = 1.0  # world units: episodes whose fixed layout (the Wall's door) differs less share goals
CROSS_EPISODE_FRACTION = 0.5  # of the far goals, the share drawn from other episodes of the same layout


def layout_mates(state: np.ndarray, starts: np.ndarray, ends: np.ndarray, episodes, tolerance: float = LAYOUT_TOLERANCE):
    """For each episode of ``episodes``, the episodes of ``episodes`` laid out like it: equal, within
    ``tolerance``, in every state dimension that never changes inside an episode (the Wall's door
    height; PushT has none, so all episodes match). A goal frame of a mate is a goal the episode's
    world can reach, which is what lets a TD distance join trajectories."""
    from uva_plan.dataset_graph import fixed_state_dims

    episodes = np.asarray(episodes)
    key = state[starts[episodes]][:, fixed_state_dims(state, starts, ends, episodes)]
    close = np.all(np.abs(key[:, None, :] - key[None, :, :]) <= tolerance, axis=-1)
    return {int(e): episodes[close[i]] for i, e in enumerate(episodes)}


def _td_pairs(rng, starts, ends, episodes, n, reversible: bool = True, mates: dict | None = None):
    """``n`` transitions (t, t+1) with goals: 10% the frame itself (distance 0), 20% the next frame
    (distance 1), 70% a far goal - another frame of the same episode (any frame when the env is
    reversible, else a later one) or, for ``CROSS_EPISODE_FRACTION`` of them when ``mates`` is
    given, any frame of an episode with the same layout. Episodes need >= 2 steps. Returns
    (t, g, kind) with kind 0/1/2, 3 for a goal of another episode."""
    ep = rng.choice(np.asarray(episodes), size=n)
    lo, hi = starts[ep], ends[ep]
    t = lo + (rng.random(n) * (hi - 1 - lo)).astype(np.int64)  # t + 1 stays inside the episode
    u = rng.random(n)
    kind = np.where(u < 0.1, 0, np.where(u < 0.3, 1, 2))
    first = lo if reversible else t + 1
    anywhere = first + (rng.random(n) * (hi - first)).astype(np.int64)
    g = np.where(kind == 0, t, np.where(kind == 1, t + 1, anywhere))
    kind = np.where(g == t, 0, np.where(g == t + 1, 1, kind))
    if mates is not None:
        cross = (kind == 2) & (rng.random(n) < CROSS_EPISODE_FRACTION)
        for i in np.flatnonzero(cross):
            m = mates[int(ep[i])]
            other = m[rng.integers(len(m))]
            g[i] = starts[other] + rng.integers(ends[other] - starts[other])
        kind = np.where(cross & ((g < lo) | (g >= hi)), 3, kind)
    return t, g, kind


def fit_latent_distance(checkpoint, data, steps: int = 2000, batch_size: int = 256, lr: float = 1e-3,
                        goal_max_steps: int = 64, seed: int = 0, device: str = "cpu",
                        progress: bool = False, method: str = "graph", cross_episode: bool = True,
                        form: str | None = None, empty_fraction: float = 0.0) -> DistanceFitResult:
    """Refit ``checkpoint``'s latent-distance head on ``data`` (see the module docstring)."""
    import copy

    import torch

    import world_model
    from uva_plan.progress import progress_bar
    from uva_plan.step_loop import run_steps
    from world_model.checkpoint import load_extra_state
    from world_model.model import expectile_loss

    for name, value, low in (("steps", steps, 1), ("batch_size", batch_size, 2), ("goal_max_steps", goal_max_steps, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise UserInputError(f"{name} is {value!r}; expected an integer >= {low}")
    if method not in FIT_METHODS:
        raise UserInputError(f"method is {method!r}; expected one of {', '.join(FIT_METHODS)}")
    if not 0.0 < float(lr) < 1.0:
        raise UserInputError(f"lr is {lr!r}; expected a number in (0, 1)")
    if not 0.0 <= float(empty_fraction) < 1.0:
        raise UserInputError(f"empty_fraction is {empty_fraction!r}; expected a number in [0, 1)")
    if empty_fraction > 0 and method != "graph":
        raise UserInputError(f"empty frames are labelled for --method graph only; got --method {method}")
    from world_model.config import LATENT_DISTANCE_FORMS

    if form is not None and form not in LATENT_DISTANCE_FORMS:
        raise UserInputError(f"form is {form!r}; expected one of {', '.join(LATENT_DISTANCE_FORMS)}")
    run_dir, data = Path(checkpoint), Path(data)
    model, buffer = load_run_and_data(run_dir, data, device)
    torch.manual_seed(seed)  # before a fresh head is drawn, so --seed makes the whole fit reproducible
    if form is not None and form != model.config.latent_distance_form:
        from world_model.heads import latent_distance_head

        model.config.latent_distance_form = form  # a fresh head of the asked form, fitted from scratch
        model.latent_distance_head = latent_distance_head(model.config).to(model.device)
    env = buffer.attrs.get("env_name")
    train_eps, val_eps = episodes_of_run(run_dir, data, buffer.n_episodes)
    starts, ends = np.asarray(buffer.episode_starts), np.asarray(buffer.episode_ends)
    # Goals before t are reachable only where the dynamics can undo a move (the Wall's disc can; a
    # pushed PushT block may not come back), so other envs take later goals only.
    reversible = (env or model.config.env_name) == "wall"
    td_eps = [e for e in train_eps if ends[e] - starts[e] >= 2]
    if method in ("td", "graph") and not td_eps:
        raise UserInputError(f"{data} has no training episode of 2 or more steps; expected transitions for --method {method}")

    # Goals of other episodes only where the world can walk back (a goal state of another episode
    # may be unreachable after an irreversible push).
    mates = layout_mates(np.asarray(buffer.state), starts, ends, td_eps) if method == "td" and reversible and cross_episode else None
    model.eval()
    latents = encode_buffer(model, buffer)
    head, tau = model.latent_distance_head, model.config.distance_expectile
    rng = np.random.default_rng(seed)
    val = _pairs(np.random.default_rng(seed + 1), starts, ends, val_eps, 2048, goal_max_steps)

    def loss_on(t, g, gap):
        target = torch.log1p(torch.from_numpy(gap).to(model.device))
        return expectile_loss(head(latents[t], latents[g]), target, tau).mean()

    def val_loss() -> float:
        with torch.no_grad():
            return float(loss_on(*val))

    after_step = None
    if method == "td":
        target_head = copy.deepcopy(head).eval().requires_grad_(False)  # supplies d(s', g)

        def loss_of_step(_step: int):
            t, g, kind = _td_pairs(rng, starts, ends, td_eps, batch_size, reversible, mates)
            with torch.no_grad():
                ahead = torch.expm1(target_head(latents[t + 1], latents[g]).clamp(min=0.0))
                kind_t = torch.from_numpy(kind).to(model.device)
                target = torch.where(kind_t == 0, 0.0, torch.where(kind_t == 1, 1.0, 1.0 + ahead)).clamp(max=TD_MAX_STEPS)
            return expectile_loss(head(latents[t], latents[g]), torch.log1p(target), TD_TAU).mean()

        def after_step():
            with torch.no_grad():
                for p_t, p in zip(target_head.parameters(), head.parameters()):
                    p_t.lerp_(p, TD_TARGET_RATE)
    elif method == "graph":
        from uva_plan.dataset_graph import shortest_way_labels

        labels = shortest_way_labels(latents, np.asarray(buffer.state), starts, ends, td_eps, reversible,
                                     LAYOUT_TOLERANCE, rng)

        from uva_plan.dataset_graph import UNREACHABLE_STEPS

        # A frame without the agent is on no recorded way: it gets the label of a goal no way reaches.
        farthest = UNREACHABLE_STEPS
        empty = model.encode(model.tokenizer.empty_frame()[None])[0] if empty_fraction else None

        def loss_of_step(_step: int):
            frames, goals, steps_to_goal = labels.sample(rng, batch_size)
            frame_latents, steps_to_goal = latents[frames], torch.from_numpy(steps_to_goal).to(model.device)
            if empty is not None:
                frame_latents, steps_to_goal = empty_frames(rng, frame_latents, steps_to_goal, empty, empty_fraction, farthest)
            return (head(frame_latents, latents[goals]) - torch.log1p(steps_to_goal)).pow(2).mean()
    else:
        def loss_of_step(_step: int):
            return loss_on(*_pairs(rng, starts, ends, train_eps, batch_size, goal_max_steps))

    before = val_loss()
    head.train()
    optimizer = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=0.02)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    t0 = time.perf_counter()
    with progress_bar(progress) as bar:
        task = bar.add_task(f"fit distance head ({method})", total=steps)
        run_steps(loss_of_step, head.parameters(), optimizer, schedule, steps=steps, after_step=after_step,
                  what="distance fit",
                  progress=lambda step, loss: bar.update(task, completed=step, description=f"fit distance head  loss {loss:.4f}"))
    seconds = time.perf_counter() - t0
    head.eval()
    after = val_loss()
    extra = load_extra_state(run_dir)
    extra["distance_fit"] = {"method": method, "form": model.config.latent_distance_form, "steps": steps, "batch_size": batch_size, "lr": lr, "goal_max_steps": goal_max_steps,
                             "seed": seed, "data": str(data), "cross_episode": mates is not None, "empty_fraction": empty_fraction,
                             **({"graph_links": labels.links} if method == "graph" else {}), "val_loss_before": before, "val_loss_after": after}
    world_model.save_checkpoint(model, run_dir, extra_state=extra)
    return DistanceFitResult(steps, steps * batch_size / max(seconds, 1e-9), before, after, len(train_eps))
