"""Does the world model imagine what the simulator does? Measured on the objects that matter.

Held-out Wall episodes (seeds from EVAL_SEED, far from any collected training seed) are cut into
windows; the model imagines the future frames of each window's TRUE action chunk, the frames are
decoded and the agent is found in them (`wall_locate.locate_agent`, validated on true frames). Per
horizon: how often the agent is there, how far from the simulator's agent; beside two references, the
tokenizer round trip (what a perfect backbone could reach) and the last history frame copied (what
ignoring the actions gives). Then two checks of action sensitivity: full-speed chunks in each direction
from a still start must end where the simulator ends (walls included), and the video loss must rise
when the actions are shuffled across windows.

PushT (the env is the model's ``config.env_name``) is measured the same way on the agent AND the block
(`imagination_pusht`, with `pusht_locate`); the still-start direction test is Wall-only.

Shapes: episodes hold ``frames uint8 [T, S, S, 3]``, ``states [T, D]`` (Wall 3, PushT 10),
``actions [T-1, 2]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from uva_plan.data.windows import WindowSpec
from uva_plan.envs import env_name as canonical_env_name
from uva_plan.envs import make_env
from uva_plan.envs.goals import EVAL_SEED_OFFSET
from uva_plan.envs.policies import make_policy
from uva_plan.envs.wall_geometry import WORLD_SIZE
from uva_plan.envs.wall_locate import locate_agent
from uva_plan.errors import UserInputError
from uva_plan.proprio import agent_of_proprio, history_proprio

EVAL_SEED = EVAL_SEED_OFFSET  # held-out episodes start here; `uva-plan collect` seeds start at 0
NEAR_PX = 4.0  # "ends where the simulator ends": within this many world units (= pixels at 64x64)
DIRECTIONS = {"right": (1.0, 0.0), "left": (-1.0, 0.0), "down": (0.0, 1.0), "up": (0.0, -1.0)}
FORWARD_BATCH = 64
# Scripted policies of the held-out episodes: one that does the task, one that moves at random.
DEFAULT_KINDS = {"wall": ("expert", "random"), "pusht": ("pusher", "random")}


@dataclass
class Episode:
    kind: str
    frames: np.ndarray
    states: np.ndarray
    actions: np.ndarray


@dataclass
class SamplingSettings:
    """How the forward model is sampled: the planner's defaults are 1 MAR pass, 2 DDIM steps and the
    checkpoint's temperature (None)."""

    name: str
    num_iters: int = 1
    num_steps: int = 2
    temperature: float | None = None


@dataclass
class HorizonStats:
    steps: int
    present: float  # fraction of imagined frames with the agent
    median_error: float  # world units, over frames where it is present
    copy_last_error: float  # median error of the last history frame's agent
    tokenizer_error: float  # median error after encode + decode of the true frame
    n: int


@dataclass
class ImaginationReport:
    settings: str
    kind: str
    horizons: list[HorizonStats] = field(default_factory=list)


def heldout_episodes(kinds=None, n_per_kind: int = 12, steps: int = 64, image_size: int = 64,
                     seed: int = EVAL_SEED, env_name: str = "wall") -> list[Episode]:
    """Roll out scripted policies (``kinds``, default `DEFAULT_KINDS` of the env) from seeds
    ``seed + 10_000 * k + i`` (never used by training data)."""
    if n_per_kind < 1 or steps < 2:
        raise UserInputError(f"n_per_kind={n_per_kind}, steps={steps}; expected >= 1 and >= 2")
    name = canonical_env_name(env_name)
    kinds = DEFAULT_KINDS[name] if kinds is None else kinds
    env = make_env(name, image_size=image_size, max_episode_steps=steps + 1)
    out = []
    for k, kind in enumerate(kinds):
        for i in range(n_per_kind):
            ep_seed = seed + 10_000 * k + i
            options = {"noise": 0.1} if name == "wall" and kind == "expert" else {}
            policy = make_policy(name, kind, seed=ep_seed, **options)
            obs, info = env.reset(seed=ep_seed)
            policy.reset(info["state"])
            frames, states, actions = [obs], [info["state"]], []
            for _ in range(steps):
                a = policy(states[-1])
                # the same frames as env.step, without PushT's block coverage (shapely) it computes
                state = env.step_state(a)
                obs = env.render()
                frames.append(obs)
                states.append(state)
                actions.append(a)
            out.append(Episode(kind, np.stack(frames), np.stack(states), np.stack(actions).astype(np.float32)))
    return out


def model_env(model) -> str:
    """The env a model was trained on (``config.env_name``; checkpoints without one are Wall's)."""
    return canonical_env_name(getattr(model.config, "env_name", "") or "wall")


def windows(episodes: list[Episode], cfg, span: int, every: int):
    """(episode index, current step t) with a full history and ``span`` true future steps."""
    first = -int(WindowSpec.of(cfg).history_offsets()[0])
    return [(e, t) for e, ep in enumerate(episodes) for t in range(first, len(ep.frames) - span, every)]


def _history_steps(cfg, t: int) -> np.ndarray:
    """Env steps of the history frames of the window at step ``t`` (oldest first, ``t`` last)."""
    return t + WindowSpec.of(cfg).history_offsets()


def _future_steps(cfg, t: int, n_chunks: int = 1) -> np.ndarray:
    """Env steps of the future frames the model imagines from step ``t``."""
    return t + WindowSpec.of(cfg).future_offsets(n_chunks)


def window_inputs(episodes: list[Episode], wins, cfg, n_chunks: int = 1):
    """What the model is given at windows ``wins`` (``windows``): the history frames ``uint8 [N, Th, S, S,
    3]``, the true action chunks ``[N, n_chunks * L, A]`` and the env states at the history frames ``[N,
    Th, D]``."""
    hist = np.stack([episodes[e].frames[_history_steps(cfg, t)] for e, t in wins])
    acts = np.stack([episodes[e].actions[t : t + n_chunks * cfg.chunk_len] for e, t in wins])
    states = np.stack([episodes[e].states[_history_steps(cfg, t)] for e, t in wins])
    return hist, acts, states


def _imagine(model, episodes, wins, n_chunks: int, settings: SamplingSettings, seed: int):
    """Decoded imagined frames ``[N, n_chunks * Tf, S, S, 3]`` float for windows ``wins``, and the
    predicted proprio ``[N, n_chunks * Tf, P]`` (env units) of a proprio model, else None."""
    cfg = model.config
    gen = torch.Generator(device="cpu").manual_seed(seed)
    out, proprio = [], []
    for s in range(0, len(wins), FORWARD_BATCH):
        hist, acts, states = window_inputs(episodes, wins[s : s + FORWARD_BATCH], cfg, n_chunks)
        res = model.forward_dynamics(torch.from_numpy(hist), torch.from_numpy(acts), decode=True,
                                     history_proprio=history_proprio(model, states),
                                     num_iters=settings.num_iters, num_steps=settings.num_steps,
                                     temperature=settings.temperature, generator=gen)
        out.append(res.frames.cpu().numpy())
        if res.proprio is not None:
            proprio.append(res.proprio.cpu().numpy())
    return np.concatenate(out), (np.concatenate(proprio) if proprio else None)


def imagine_windows(model, episodes: list[Episode], settings: SamplingSettings, n_chunks: int, every: int,
                    seed: int) -> dict:
    """What every per-horizon measure needs: the windows, the future offsets, the imagined frames and
    the true frames' tokenizer round trip (both ``[N, H, S, S, 3]``), each window's episode kind, and a
    proprio model's predicted proprio ``[N, H, P]`` (else None)."""
    cfg = model.config
    span = n_chunks * cfg.chunk_len
    wins = windows(episodes, cfg, span, every)
    if not wins:
        raise UserInputError(f"episodes are too short for windows of {span} future steps; expected longer episodes")
    imagined, proprio = _imagine(model, episodes, wins, n_chunks, settings, seed)
    offsets = _future_steps(cfg, 0, n_chunks)
    true_frames = np.stack([episodes[e].frames[t + offsets] for e, t in wins])
    round_trip = model.decode(model.encode(torch.from_numpy(true_frames))).cpu().numpy()
    kinds = np.array([episodes[e].kind for e, _ in wins])
    return {"wins": wins, "offsets": offsets, "imagined": imagined, "round_trip": round_trip, "kinds": kinds,
            "proprio": proprio}


def measure_imagination(model, episodes: list[Episode], settings: SamplingSettings, n_chunks: int = 1,
                        every: int = 8, seed: int = 0) -> list[ImaginationReport]:
    """Per episode kind: presence and position error of the imagined agent at each future frame (PushT:
    and of the block, `imagination_pusht.PushTHorizonStats`)."""
    if model_env(model) == "pusht":
        from uva_plan.imagination_pusht import measure_pusht

        return measure_pusht(model, episodes, settings, n_chunks, every, seed)
    got = imagine_windows(model, episodes, settings, n_chunks, every, seed)
    wins, offsets, kinds = got["wins"], got["offsets"], got["kinds"]
    true_xy = np.stack([episodes[e].states[t + offsets, :2] for e, t in wins])
    last_xy = np.stack([episodes[e].states[t, :2] for e, t in wins])
    im_xy, im_present, _ = locate_agent(got["imagined"])
    rt_xy, _, _ = locate_agent(got["round_trip"])
    reports = []
    for kind in sorted(set(kinds)):
        sel = kinds == kind
        rep = ImaginationReport(settings.name, kind)
        for j, h in enumerate(offsets):
            err = np.hypot(*(im_xy[sel, j] - true_xy[sel, j]).T)
            present = im_present[sel, j]
            rep.horizons.append(HorizonStats(
                steps=int(h), present=float(present.mean()),
                median_error=float(np.median(err[present])) if present.any() else float("nan"),
                copy_last_error=float(np.median(np.hypot(*(last_xy[sel] - true_xy[sel, j]).T))),
                tokenizer_error=float(np.nanmedian(np.hypot(*(rt_xy[sel, j] - true_xy[sel, j]).T))),
                n=int(sel.sum()),
            ))
        reports.append(rep)
    return reports


@dataclass
class DirectionResult:
    direction: str
    near: float  # fraction of starts whose imagined end lies within NEAR_PX of the simulator's
    # of the starts where the simulator moves >= NEAR_PX, the fraction whose imagined agent covers at
    # least half of the simulator's way along the commanded direction
    moved_right_way: float
    median_error: float
    n: int
    # the same as `near`, apart for chunks the simulator lets run their whole way (free) and chunks a wall
    # or the arena's edge stops (blocked; most full-speed chunks): NaN where there are none
    near_free: float = float("nan")
    near_blocked: float = float("nan")
    n_free: int = 0
    # of the blocked chunks, the fraction whose last imagined frame shows no agent at all: what most
    # blocked failures are (the agent vanishes at the wall; it is not carried through it)
    missing_blocked: float = float("nan")
    # a proprioceptive model: the fraction whose PREDICTED agent position (its proprio, not the frame)
    # ends within NEAR_PX of the simulator's; NaN without proprio. Tells what it predicts from what it draws.
    proprio_near: float = float("nan")


def _as_uint8(frames: np.ndarray) -> np.ndarray:
    """Decoded frames in [0, 1] (a little outside is clipped) as uint8 pictures."""
    return (np.clip(frames, 0, 1) * 255).astype(np.uint8)


def direction_test(model, n_starts: int = 24, settings: SamplingSettings | None = None, seed: int = EVAL_SEED,
                   speed_fraction: float = 1.0, misses: list | None = None) -> list[DirectionResult]:
    """From a still start (the current frame repeated as history, as at an episode start), a chunk at
    ``speed_fraction`` of the top speed in each direction: does the imagined agent end where the
    simulator's does? Wall only: PushT's actions are target positions, not velocities.

    misses: a list to which each chunk that ends more than NEAR_PX off is appended as one picture row
    (start | true frames | imagined frames, uint8), to see what the misses look like."""
    if model_env(model) != "wall":
        raise UserInputError(f"the still-start direction test is Wall's; this model is {model_env(model)!r}")
    cfg = model.config
    settings = settings or SamplingSettings("planner")
    env = make_env("wall", image_size=cfg.image_size)
    speed = float(env.action_high[0]) * speed_fraction
    starts = []
    for i in range(n_starts):
        _, info = env.reset(seed=seed + 50_000 + i)
        starts.append(info["state"])
    results = []
    gen = torch.Generator(device="cpu").manual_seed(seed)
    for name, (dx, dy) in DIRECTIONS.items():
        action = np.array([dx * speed, dy * speed], dtype=np.float32)
        hist, acts, ends, begins, truth = [], [], [], [], []
        for st in starts:
            env.set_state(st)
            frame = env.render_state(st)
            shown = []
            for t in range(1, cfg.chunk_len + 1):
                env.step_state(action)
                if misses is not None and t % cfg.frame_stride == 0:
                    shown.append(env.render_state(env.get_state()))
            truth.append(shown)
            hist.append(np.repeat(frame[None], cfg.n_history, axis=0))
            acts.append(np.repeat(action[None], cfg.chunk_len, axis=0))
            ends.append(env.get_state()[:2])
            begins.append(st[:2])
        still = np.repeat(np.stack(starts)[:, None], cfg.n_history, axis=1)  # a still start's states
        res = model.forward_dynamics(torch.from_numpy(np.stack(hist)), torch.from_numpy(np.stack(acts)), decode=True,
                                     history_proprio=history_proprio(model, still),
                                     num_iters=settings.num_iters, num_steps=settings.num_steps,
                                     temperature=settings.temperature, generator=gen)
        xy, present, _ = locate_agent(res.frames[:, -1].cpu().numpy())
        ends, begins = np.stack(ends), np.stack(begins)
        err = np.where(present, np.hypot(*(xy - ends).T), np.inf)
        way = np.array([dx, dy])
        sim_along = (ends - begins) @ way
        can_move = sim_along >= NEAR_PX  # starts where the simulator's agent is not blocked at once
        im_along = np.nan_to_num((xy - begins) @ way, nan=0.0)
        moved = (im_along >= 0.5 * sim_along)[can_move]
        near = err <= NEAR_PX
        proprio_near = float("nan")
        agent = agent_of_proprio(model, res.proprio)
        if agent is not None:  # a fraction of the frame -> world units, as `ends`
            predicted = agent[:, -1].cpu().numpy() * WORLD_SIZE
            proprio_near = float((np.hypot(*(predicted - ends).T) <= NEAR_PX).mean())
        if misses is not None:
            imagined = _as_uint8(res.frames.cpu().numpy())
            misses += [[hist[i][-1], *truth[i], *imagined[i]] for i in np.flatnonzero(~near)]
        unblocked = sim_along >= cfg.chunk_len * speed - 1e-3  # ran its whole way: a "free" chunk
        results.append(DirectionResult(name, float(near.mean()),
                                       float(moved.mean()) if moved.size else float("nan"),
                                       float(np.median(err)), n_starts,
                                       float(near[unblocked].mean()) if unblocked.any() else float("nan"),
                                       float(near[~unblocked].mean()) if (~unblocked).any() else float("nan"),
                                       int(unblocked.sum()),
                                       float((~present[~unblocked]).mean()) if (~unblocked).any() else float("nan"),
                                       proprio_near))
    return results


@dataclass
class PressResult:
    place: str
    speed_fraction: float
    present: list[float]  # per imagined frame: the fraction of starts whose agent is there
    median_error: float  # at the last imagined frame, over starts whose agent is there (world units)
    held: float  # fraction of starts whose last imagined agent is within NEAR_PX of the simulator's (in place)
    n: int


def _press_starts(n: int) -> dict[str, tuple[np.ndarray, tuple[float, float]]]:
    """Agent centres resting against each edge and against the wall (door at the middle height), and
    the direction that pushes them into it: ``place -> (xy [n, 2], (dx, dy))``."""
    from uva_plan.envs import wall_geometry as geo

    along = np.linspace(8.0, 56.0, n)
    beside_wall = np.concatenate([np.linspace(6.0, 20.0, n // 2), np.linspace(44.0, 58.0, n - n // 2)])
    off_wall = np.concatenate([np.linspace(6.0, 22.0, n // 2), np.linspace(42.0, 58.0, n - n // 2)])
    return {
        "right edge": (np.stack([np.full(n, geo.ARENA_MAX), along], 1), (1.0, 0.0)),
        "left edge": (np.stack([np.full(n, geo.ARENA_MIN), along], 1), (-1.0, 0.0)),
        "bottom edge": (np.stack([off_wall, np.full(n, geo.ARENA_MAX)], 1), (0.0, 1.0)),
        "top edge": (np.stack([off_wall, np.full(n, geo.ARENA_MIN)], 1), (0.0, -1.0)),
        "wall": (np.stack([np.full(n, geo.LEFT_ROOM_MAX_X), beside_wall], 1), (1.0, 0.0)),
    }


def pressed_test(model, n_starts: int = 12, speed_fractions=(0.5, 1.0), settings: SamplingSettings | None = None,
                 seed: int = EVAL_SEED) -> list[PressResult]:
    """An agent resting against an edge or the wall (a still history), pushed into it for a whole chunk:
    the simulator keeps it where it is; does the imagination? The plainest case of the still-start test's
    blocked chunks, where imagined agents vanish. Wall only."""
    if model_env(model) != "wall":
        raise UserInputError(f"the pressed-agent test is Wall's; this model is {model_env(model)!r}")
    cfg = model.config
    settings = settings or SamplingSettings("planner")
    env = make_env("wall", image_size=cfg.image_size)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    results = []
    for fraction in speed_fractions:
        speed = float(env.action_high[0]) * fraction
        for place, (xy0, (dx, dy)) in _press_starts(n_starts).items():
            action = np.array([dx * speed, dy * speed], dtype=np.float32)
            hist, ends = [], []
            for x, y in xy0:
                state = np.array([x, y, 32.0])
                env.set_state(state)
                hist.append(np.repeat(env.render_state(state)[None], cfg.n_history, axis=0))
                for _ in range(cfg.chunk_len):
                    env.step_state(action)
                ends.append(env.get_state()[:2])
            acts = np.repeat(action[None, None], len(hist), axis=0).repeat(cfg.chunk_len, axis=1)
            still = np.repeat(np.stack([[x, y, 32.0] for x, y in xy0])[:, None], cfg.n_history, axis=1)
            res = model.forward_dynamics(torch.from_numpy(np.stack(hist)), torch.from_numpy(acts), decode=True,
                                         history_proprio=history_proprio(model, still),
                                         num_iters=settings.num_iters, num_steps=settings.num_steps,
                                         temperature=settings.temperature, generator=gen)
            xy, present, _ = locate_agent(res.frames.cpu().numpy())
            err = np.hypot(*(xy[:, -1] - np.stack(ends)).T)  # NaN where the agent is missing
            found = err[present[:, -1]]
            results.append(PressResult(place, fraction, present.mean(axis=0).tolist(),
                                       float(np.median(found)) if found.size else float("nan"),
                                       float(np.mean(np.nan_to_num(err, nan=np.inf) <= NEAR_PX)), len(hist)))
    return results


def shuffled_action_loss(model, episodes: list[Episode], n_windows: int = 128, seed: int = 0) -> tuple[float, float]:
    """Forward-dynamics video loss with the true action chunks and with chunks shuffled across windows
    (same windows, same noise): a model that uses the actions loses much more when they are wrong."""
    cfg = model.config
    wins = windows(episodes, cfg, cfg.chunk_len, 4)
    rng = np.random.default_rng(seed)
    wins = [wins[i] for i in rng.choice(len(wins), min(n_windows, len(wins)), replace=False)]
    L = cfg.chunk_len
    hist = np.stack([episodes[e].frames[_history_steps(cfg, t)] for e, t in wins])
    fut = np.stack([episodes[e].frames[_future_steps(cfg, t)] for e, t in wins])
    acts = np.stack([episodes[e].actions[t : t + L] for e, t in wins])
    norm = model.normalizer.normalize(torch.from_numpy(acts))
    batch = {"history": torch.from_numpy(hist), "future": torch.from_numpy(fut)}
    states = np.stack([episodes[e].states[_history_steps(cfg, t)] for e, t in wins])
    if (proprio := history_proprio(model, states)) is not None:
        batch["history_proprio"] = proprio  # no future proprio: the model predicts it from the actions given
    losses = []
    for actions in (norm, norm[torch.from_numpy(rng.permutation(len(wins)))]):
        gen = torch.Generator(device="cpu").manual_seed(seed)
        with torch.no_grad():
            _, logs = model({**batch, "actions": actions}, mode="forward_dynamics", generator=gen)
        losses.append(logs["video_loss"])
    return losses[0], losses[1]


def inverse_r2(model, episodes: list[Episode]) -> dict[str, float]:
    """R^2 of the inverse-dynamics actions of whole held-out videos, per episode kind."""
    out = {}
    for kind in sorted({ep.kind for ep in episodes}):
        eps = [ep for ep in episodes if ep.kind == kind]
        frames = torch.from_numpy(np.stack([ep.frames for ep in eps]))
        gen = torch.Generator(device="cpu").manual_seed(0)  # the same figure on every run
        pred = model.inverse_dynamics(frames, generator=gen).cpu().numpy().reshape(-1, 2)
        true = np.concatenate([ep.actions for ep in eps])
        out[kind] = float(1.0 - ((pred - true) ** 2).sum() / ((true - true.mean(0)) ** 2).sum())
    return out


def imagination_sheet(model, episodes: list[Episode], path, n_rows: int = 4, settings: SamplingSettings | None = None,
                      seed: int = 0) -> None:
    """A PNG: one row per window, history | true future | imagined future (any env: the frames as they are)."""
    from uva_plan.viz import save_image_grid

    cfg = model.config
    settings = settings or SamplingSettings("planner")
    wins = windows(episodes, cfg, cfg.chunk_len, 8)
    rng = np.random.default_rng(seed)
    wins = [wins[i] for i in sorted(rng.choice(len(wins), min(n_rows, len(wins)), replace=False))]
    imagined, _ = _imagine(model, episodes, wins, 1, settings, seed)
    stride = cfg.frame_stride
    rows = []
    for (e, t), im in zip(wins, imagined):
        ep = episodes[e]
        hist = ep.frames[_history_steps(cfg, t)]
        fut = ep.frames[_future_steps(cfg, t)]
        rows.append([*hist, *fut, *_as_uint8(im)])
    titles = [f"history t{-stride * k}" if k else "now" for k in range(cfg.n_history - 1, -1, -1)]
    titles += [f"true +{stride * k}" for k in range(1, cfg.n_future + 1)]
    titles += [f"imagined +{stride * k}" for k in range(1, cfg.n_future + 1)]
    save_image_grid(rows, path, column_titles=titles)
