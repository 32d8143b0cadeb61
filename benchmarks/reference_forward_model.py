"""A plain reference for the world model: a deterministic residual conv net on the SAME frozen tokenizer
latents, trained for a fixed number of CPU minutes, measured with the same imagination benchmark.

It answers "is compute the limit?": if this small net places the imagined agent well in the minutes a
UVA ablation row gets, the UVA design, not the CPU, is what learns slowly. Not part of the library.

    python benchmarks/reference_forward_model.py --checkpoint runs/abl-base --data data/wall.zarr --minutes 10

With ``--proprio`` the net also gets UVA's proprioception path (``world_model/proprio.py``): an MLP predicts
the agent's future proprio from the history's and the actions, and a map of where that puts the agent
joins the net's input (the true future during training, the predicted one when measured), as in
``uva-plan train --proprio``.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from types import SimpleNamespace  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

import world_model  # noqa: E402
from uva_plan.data import WindowDataset, WindowSpec, load_replay_buffer  # noqa: E402
from uva_plan.envs import proprio_config  # noqa: E402
from uva_plan.imagination import (  # noqa: E402
    SamplingSettings,
    direction_test,
    heldout_episodes,
    measure_imagination,
    model_env,
    pressed_test,
)
from world_model.actions import ActionNormalizer  # noqa: E402
from world_model.dynamics_prior import DynamicsPrior  # noqa: E402
from world_model.proprio import ProprioDynamics, position_maps  # noqa: E402


class _Proprio:
    """The proprioception path of a proprio UVA, alone: the MLP, its normaliser and the maps."""

    def __init__(self, env_name, cfg):
        spec = proprio_config(env_name)
        self.indices, self.image_xy = spec["proprio_state_indices"], spec["proprio_image_xy"]
        self.normalizer = ActionNormalizer(spec["proprio_low"], spec["proprio_high"])
        self.net = ProprioDynamics(len(self.indices), cfg.n_history, cfg.chunk_len, cfg.action_dim, cfg.n_future,
                                   cfg.proprio_width)  # UVA's defaults for the sizes
        self.size, self.sigma = cfg.latent_size, cfg.proprio_map_sigma

    def maps(self, proprio_norm):
        return position_maps(proprio_norm[..., self.image_xy], self.size, self.sigma)


class _ConfigWithProprio:
    """The UVA config, saying which state entries the reference's proprio is."""

    def __init__(self, config, indices):
        self._config, self.proprio_state_indices, self.proprio_dim = config, list(indices), len(indices)

    def __getattr__(self, name):
        return getattr(self._config, name)


class _AsWorldModel:
    """Gives ConvForward the slice of UVA's interface the imagination benchmark calls."""

    def __init__(self, net, uva, proprio=None):
        self.net, self.uva, self.config, self.proprio = net, uva, uva.config, proprio
        self.normalizer = uva.normalizer
        if proprio is not None:  # the benchmark then passes the history's proprio, as to a proprio UVA
            self.config = _ConfigWithProprio(uva.config, proprio.indices)

    @torch.no_grad()
    def forward_dynamics(self, history, actions, decode=True, history_proprio=None, **_):
        recent = self.uva.encode(history[:, -self.net.frames:])  # [B, k, h, w, c]
        acts = self.uva.normalizer.normalize(actions.float())
        maps = None
        if self.proprio is not None:
            maps = self.proprio.maps(self.proprio.net(self.proprio.normalizer.normalize(history_proprio), acts))
        fut = self.net(recent, acts, maps)
        return SimpleNamespace(frames=self.uva.decode(fut))

    def encode(self, frames):
        return self.uva.encode(frames)

    def decode(self, latents):
        return self.uva.decode(latents)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="a UVA run whose frozen tokenizer and latents to use")
    parser.add_argument("--data", required=True)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--coords", action="store_true", help="give the net each cell's (x, y) (dynamics_prior_coords)")
    parser.add_argument("--frames", type=int, default=1, help="history frames the net sees (dynamics_prior_frames)")
    parser.add_argument("--proprio", action="store_true", help="add the proprioception path (uva-plan train --proprio)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    uva = world_model.load(args.checkpoint).eval()
    cfg = uva.config
    info = json.loads(open(os.path.join(args.checkpoint, "train_config.json")).read())
    buffer = load_replay_buffer(args.data)
    latents = uva.encode(torch.from_numpy(np.asarray(buffer.img))).numpy()
    spec = WindowSpec.of(cfg)
    proprio = _Proprio(model_env(uva), cfg) if args.proprio else None
    if proprio is not None:
        spec = WindowSpec(spec.n_history, spec.n_future, spec.frame_stride, tuple(proprio.indices))
    data = WindowDataset(buffer, spec, episodes=info["train_episodes"], frames=latents)
    # the same net UVA's dynamics prior is (`dynamics_prior_width=64`), here alone and deterministic
    net = DynamicsPrior(cfg.latent_channels, cfg.chunk_len, cfg.action_dim, cfg.n_future, width=64, blocks=4,
                        coords=args.coords, frames=args.frames, map_channels=3 * cfg.n_future if proprio else 0)
    params = list(net.parameters()) + (list(proprio.net.parameters()) if proprio else [])
    opt = torch.optim.AdamW(params, lr=1e-3)
    rng = np.random.default_rng(0)
    start, step = time.time(), 0
    while time.time() - start < 60 * args.minutes:
        items = [data[int(i)] for i in rng.integers(0, len(data), args.batch)]
        hist = torch.from_numpy(np.stack([it["history_latents"] for it in items]))
        fut = torch.from_numpy(np.stack([it["future_latents"] for it in items]))
        acts = torch.from_numpy(np.stack([it["actions"] for it in items]))
        maps = None
        loss = torch.zeros(())
        if proprio is not None:
            hist_p, fut_p = (proprio.normalizer.normalize(torch.from_numpy(np.stack([it[k] for it in items])))
                             for k in ("history_proprio", "future_proprio"))
            loss = (proprio.net(hist_p, acts) - fut_p).pow(2).mean()
            maps = proprio.maps(fut_p)  # teacher forcing with the true future, as UVA's training does
        loss = loss + (net(hist[:, -args.frames:], acts, maps) - fut).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        if step % 500 == 0:
            print(f"step {step}  loss {loss.item():.4f}  {time.time() - start:.0f}s", flush=True)
    print(f"trained {step} steps in {(time.time() - start) / 60:.1f} min")
    model = _AsWorldModel(net.eval(), uva, proprio)
    env = model_env(uva)
    episodes = heldout_episodes(n_per_kind=12, steps=64, env_name=env)
    for rep in measure_imagination(model, episodes, SamplingSettings("deterministic")):
        for h in rep.horizons:
            line = (f"{rep.kind:7s} +{h.steps:2d}: present {100 * h.present:.0f}%  median err {h.median_error:.2f}  "
                    f"copy-last {h.copy_last_error:.2f}")
            if env != "wall":
                line += (f"  block present {100 * h.block_present:.0f}%  centre err {h.block_centre_error:.2f} "
                         f"(copy-last {h.block_centre_copy_last_error:.2f})  angle err {h.angle_error_deg:.1f} deg "
                         f"(copy-last {h.angle_copy_last_error_deg:.1f})")
            print(line)
    if env != "wall":
        return  # the still-start and pressed tests are the Wall's
    dirs = direction_test(model, settings=SamplingSettings("deterministic"))
    print(f"still-start full-speed chunks within 4 px: {100 * np.mean([d.near for d in dirs]):.0f}%")
    for d in dirs:
        print(f"  {d.direction:5s} near {100 * d.near:.0f}%  free {100 * d.near_free:.0f}% ({d.n_free})  "
              f"blocked {100 * d.near_blocked:.0f}%  blocked missing {100 * d.missing_blocked:.0f}%")
    press = pressed_test(model, settings=SamplingSettings("deterministic"))
    print(f"pressed: present {100 * np.mean([p.present[-1] for p in press]):.0f}%  "
          f"in place {100 * np.mean([p.held for p in press]):.0f}%")
    for p in press:
        print(f"  {p.place:12s} speed {p.speed_fraction:.1f}: present {100 * p.present[-1]:.0f}%  "
              f"in place {100 * p.held:.0f}%  median err {p.median_error:.1f}")


if __name__ == "__main__":
    main()
