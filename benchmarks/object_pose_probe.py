"""Where will PushT's T be? Its pose predicted from states and actions, on board coordinates or from the T.

The plain reference for `uva-plan train --object-pose`: the two MLPs a world model can carry, trained
alone on the same windows with the same budget (steps x batch; the world model's recipe gives its MLPs
20,000 steps of 16 windows), then asked for the T's pose 4..16 steps ahead on held-out episodes (pusher
and random; seeds disjoint from the data's):
- board: the proprio MLP (`world_model.proprio.ProprioDynamics`) on the normalised proprio, the T's pose
  among it (its angle unwrapped to the current one);
- object: `world_model.object_pose.ObjectPoseDynamics`, everything seen from the T;
- ``StepwiseObjectDynamics``, one env step at a time: its body map learned by gradient, or solved by
  least squares on the data's consecutive states and frozen (``proprio_body_fit``);
- copy the last pose.
Both are trained on the world model's loss for the T (cells and radians). State units (8 = 1 px) and
degrees; "turning": windows whose T turns by more than 5 degrees by +16 steps.

    python benchmarks/object_pose_probe.py [--data data/pusht30.zarr] [--steps 20000] [--batch 16]
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from uva_plan.data.replay_buffer import load_replay_buffer
from uva_plan.data.windows import WindowSpec, normalizer_for
from uva_plan.envs import proprio_config
from uva_plan.imagination import heldout_episodes
from world_model import make_config
from world_model.actions import ActionNormalizer
from world_model.object_pose import ObjectPoseDynamics, StepwiseObjectDynamics, proprio_loss, unwrap_to
from world_model.proprio import ProprioDynamics

HORIZONS = (4, 8, 12, 16)


def windows(states: np.ndarray, actions: np.ndarray, ends: np.ndarray, spec: WindowSpec, idx: list[int],
            step: int = 1):
    """(history states [N, Th, D], actions [N, L, A], future states [N, Tf, D]) of every ``step``-th env step
    of each episode, clipped at its ends like the training windows."""
    starts = np.r_[0, ends[:-1]]
    hist, act, fut = [], [], []
    for s0, e0 in zip(starts, ends):
        for t in range(s0, e0, step):
            hist.append(states[np.clip(t + spec.history_offsets(), s0, e0 - 1)][:, idx])
            fut.append(states[np.clip(t + spec.future_offsets(), s0, e0 - 1)][:, idx])
            act.append(actions[np.clip(t + np.arange(spec.chunk_len), s0, e0 - 1)])
    return np.stack(hist), np.stack(act), np.stack(fut)


def normalise(norm: ActionNormalizer, hist: np.ndarray, fut: np.ndarray, angle: int):
    """Normalised history and future proprio, the T's angle unwrapped to the newest history frame's."""
    h, f = torch.from_numpy(hist).float(), torch.from_numpy(fut).float()
    now = h[:, -1, angle].clone()
    h[..., angle], f[..., angle] = unwrap_to(h[..., angle], now), unwrap_to(f[..., angle], now)
    return norm.normalize(h), norm.normalize(f)


class Variant(torch.nn.Module):
    """The proprio MLP, with (``object``) or without the T's own MLP for its pose; or (``"step"``) the
    stepwise model alone."""

    def __init__(self, cfg: dict, spec: WindowSpec, action_dim: int, width: int, object_frame: bool | str,
                 cells: float):
        super().__init__()
        p, pose = cfg["proprio_dim"], cfg["proprio_object_pose"]
        self.pose = pose
        k = pose[2]
        if object_frame in ("step", "step, body solved"):  # it predicts the whole proprio: no proprio MLP
            self.obj = StepwiseObjectDynamics(p, pose, cfg["proprio_image_xy"], spec.chunk_len, action_dim,
                                              spec.frame_stride, width, cfg["actions_image_xy"],
                                              cfg["proprio_low"][k], cfg["proprio_high"][k], cells,
                                              body_fitted=object_frame != "step")
        else:
            self.proprio = ProprioDynamics(p, spec.n_history, spec.chunk_len, action_dim, spec.n_future, width)
            self.obj = ObjectPoseDynamics(p, pose, cfg["proprio_image_xy"], spec.n_history, spec.chunk_len,
                                          action_dim, spec.n_future, width, cfg["actions_image_xy"],
                                          cfg["proprio_low"][k], cfg["proprio_high"][k], cells)
        self.object_frame = object_frame

    def forward(self, hist, acts):
        if isinstance(self.object_frame, str):
            return self.obj(hist, acts)
        out = self.proprio(hist, acts)
        if self.object_frame:
            out = out.index_copy(2, torch.tensor(self.pose), self.obj(hist, acts))
        return out

    def loss(self, pred, target):
        """The world model's loss (``object_pose.proprio_loss``): the T in cells and radians."""
        return proprio_loss(pred, target, self.obj)[0]


def train(variant: Variant, hist, acts, fut, steps: int, batch: int, lr: float, seed: int) -> float:
    torch.manual_seed(seed)
    opt = torch.optim.AdamW([p for p in variant.parameters() if p.requires_grad], lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    g = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    for _ in range(steps):
        i = torch.randint(0, hist.shape[0], (batch,), generator=g)
        loss = variant.loss(variant(hist[i], acts[i]), fut[i])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return time.perf_counter() - start


def errors(pred_env: np.ndarray, fut_env: np.ndarray, pose: list[int]):
    """Per window and horizon: the T's position error (state units) and angle error (degrees)."""
    x, y, k = pose
    pos = np.hypot(pred_env[..., x] - fut_env[..., x], pred_env[..., y] - fut_env[..., y])
    turn = np.abs((pred_env[..., k] - fut_env[..., k] + math.pi) % (2 * math.pi) - math.pi)
    return pos, np.degrees(turn)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="data/pusht30.zarr")
    ap.add_argument("--steps", type=int, default=20000)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--episodes", type=int, default=12, help="held-out episodes per kind")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rows", nargs="*", default=[], help="only these rows (by name)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    cfg = proprio_config("pusht", object_pose=True)
    idx, pose = cfg["proprio_state_indices"], cfg["proprio_object_pose"]
    norm = ActionNormalizer(cfg["proprio_low"], cfg["proprio_high"])
    spec = WindowSpec()
    buffer = load_replay_buffer(args.data)
    # the world model's scale: half its latent grid (tiny at this image size: 8 cells)
    half_grid = make_config("tiny", [0.0, 0.0], [1.0, 1.0], image_size=buffer.image_size).latent_size / 2.0
    actions_norm = normalizer_for(buffer)
    h, a, f = windows(np.asarray(buffer.state), np.asarray(buffer.action), np.asarray(buffer.episode_ends), spec, idx)
    hist, fut = normalise(norm, h, f, pose[2])
    acts = actions_norm.normalize(torch.from_numpy(a).float())
    eps = heldout_episodes(n_per_kind=args.episodes, steps=64, env_name="pusht")
    tests = {}
    for kind in ("pusher", "random"):
        kept = [e for e in eps if e.kind == kind]
        ends = np.cumsum([len(e.states) for e in kept])
        states = np.concatenate([e.states for e in kept])
        acts_all = np.concatenate([np.vstack([e.actions, e.actions[-1:]]) for e in kept])  # one action per state
        th, ta, tf = windows(states, acts_all, ends, spec, idx, step=4)
        tests[kind] = (th, ta, tf)
    table = Table(title=f"The T's pose ahead: {args.steps} steps x {args.batch} windows, held-out episodes "
                        f"(state units / degrees at +{' / +'.join(map(str, HORIZONS))})")
    for col in ("predictor", "s", "pusher: position", "pusher: angle", "turning: position", "turning: angle",
                "random: position", "random: angle", "pusher: agent position"):
        table.add_column(col)
    rows = {"copy the last pose": None, "board coordinates (proprio MLP)": False, "from the T (object MLP)": True,
            "from the T, one step at a time": "step", "one step at a time, body solved": "step, body solved"}
    rows = {k: v for k, v in rows.items() if k in args.rows or not args.rows}
    for name, object_frame in rows.items():
        seconds = 0.0
        if object_frame is not None:
            torch.manual_seed(args.seed)  # the same initial weights whatever ran before
            variant = Variant(cfg, spec, acts.shape[-1], args.width, object_frame, half_grid)
            if object_frame == "step, body solved":
                from uva_plan.proprio import one_step_transitions

                now, act, nxt = (torch.from_numpy(x) for x in one_step_transitions(buffer, range(buffer.n_episodes), idx))
                variant.obj.fit_body(norm.normalize(now), actions_norm.normalize(act), norm.normalize(nxt))
            seconds = train(variant, hist, acts, fut, args.steps, args.batch, args.lr, args.seed)
        cells = [name, f"{seconds:.0f}"]
        turning_cells = []
        for kind, (th, ta, tf) in tests.items():
            if object_frame is None:
                pred = np.repeat(th[:, -1:], len(HORIZONS), axis=1)
            else:
                nh, _ = normalise(norm, th, tf, pose[2])
                with torch.no_grad():
                    pred = norm.unnormalize(variant(nh, actions_norm.normalize(torch.from_numpy(ta).float()))).numpy()
            pos, ang = errors(pred, tf, pose)
            fmt = lambda e: " / ".join(f"{np.median(e[:, j]):.1f}" for j in range(len(HORIZONS)))  # noqa: E731
            cells += [fmt(pos), fmt(ang)]
            if kind == "pusher":
                bx, by = cfg["proprio_image_xy"]
                agent_cell = fmt(np.hypot(pred[..., bx] - tf[..., bx], pred[..., by] - tf[..., by]))
                _, true_turn = errors(np.repeat(th[:, -1:], len(HORIZONS), axis=1), tf, pose)
                turning = true_turn[:, -1] > 5.0
                turning_cells = [fmt(pos[turning]), fmt(ang[turning])]
        table.add_row(*cells[:4], *turning_cells, *cells[4:], agent_cell)
    Console(width=220).print(table)


if __name__ == "__main__":
    main()
