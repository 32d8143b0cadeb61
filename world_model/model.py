"""UVA: one joint video-action latent, three light heads, masked multi-task training, and the
inference API (policy, forward dynamics, inverse dynamics, video prediction, temporal distance).

Shapes: frames ``[B, T, H, W, 3]`` (uint8, or float in [0, 1]); latents ``[B, T, h, w, c]``; actions in
ENV units ``[B, L, A]`` at the public API (normalised to [-1, 1] internally; ``loss`` takes the
dataset's already normalised actions). ``L = chunk_len = n_future * frame_stride``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from world_model.actions import ActionNormalizer
from world_model.backbone import JointBackbone
from world_model.config import UVAConfig
from world_model.dynamics_prior import DynamicsPrior
from world_model.errors import WorldModelError
from world_model.heads import ActionHead, DistanceHead, VideoHead, latent_distance_head
from world_model.inputs import InputChecks
from world_model.modes import (
    PROPRIO_CONTEXT_MODES,
    MaskLaw,
    Mode,
    cosine_mask_counts,
    future_mask,
    mask_first,
    random_orders,
    resolve_mode,
)
from world_model.object_pose import (
    ObjectPoseDynamics,
    StepwiseObjectDynamics,
    pose_maps,
    proprio_loss,
    unwrap_to,
)
from world_model.proprio import (
    LinearStepFit,
    ProprioDynamics,
    StepwiseBodyDynamics,
    glimpse,
    glimpse_size,
    hide_body,
    position_maps,
)
from world_model.tokenizer import FrameTokenizer

ENCODE_BATCH = 256


@dataclass
class ForwardResult:
    """Imagined future: ``latents [B, T, h, w, c]`` (None when not sampled), ``frames [B, T, H, W, 3]``
    float in [0, 1] (when decoded); with a goal, predicted env steps from each imagined frame to it:
    ``distance [B, T]`` from the joint-latent head (needs no sampled latents) and ``latent_distance
    [B, T]`` from the latent-comparison head applied to the imagined latents (when sampled)."""

    latents: torch.Tensor | None
    frames: torch.Tensor | None = None
    distance: torch.Tensor | None = None
    latent_distance: torch.Tensor | None = None
    proprio: torch.Tensor | None = None  # [B, T, P] env units, with a proprio model
    # [B, n*L, P] env units: the proprio after every env step, from a model that rolls it out one step
    # at a time (``proprio_object_stepwise``), else None
    proprio_steps: torch.Tensor | None = None


def expectile_loss(pred: torch.Tensor, target: torch.Tensor, tau: float) -> torch.Tensor:
    """Asymmetric squared error: over-estimates weigh ``1 - tau``, under-estimates ``tau``, doubled so 0.5 is the MSE."""
    err = target - pred
    weight = torch.where(err < 0, 1.0 - tau, tau)
    return 2.0 * weight * err.pow(2)


def _rand(shape, generator, device):
    gen_device = generator.device if generator is not None else device
    return torch.rand(shape, generator=generator, device=gen_device).to(device)


class UVA(InputChecks, nn.Module):
    """The Unified Video Action model (see the package docs for the contract)."""

    def __init__(self, config: UVAConfig):
        super().__init__()
        if not isinstance(config, UVAConfig):
            raise WorldModelError(f"config is a {type(config).__name__}; expected a UVAConfig")
        self.config = config
        self.tokenizer = FrameTokenizer(config.tokenizer, config.patch_size)
        self.normalizer = ActionNormalizer(config.action_low, config.action_high)
        self.backbone = JointBackbone(config)
        self.dynamics_prior = None
        if config.dynamics_prior_width > 0:
            self.dynamics_prior = DynamicsPrior(config.latent_channels, config.chunk_len, config.action_dim,
                                                config.n_future, config.dynamics_prior_width,
                                                config.dynamics_prior_blocks, coords=config.dynamics_prior_coords,
                                                frames=config.dynamics_prior_frames,
                                                map_channels=config.n_future * ((3 if config.proprio_image_xy else 0)
                                                                                + (5 if config.proprio_object_pose else 0)))
        self.proprio_dynamics = self.proprio_normalizer = self.object_dynamics = None
        if config.proprio_dim > 0:
            self.proprio_normalizer = ActionNormalizer(config.proprio_low, config.proprio_high)
        if config.proprio_body_stepwise:
            self.proprio_dynamics = StepwiseBodyDynamics(config.proprio_dim, config.proprio_image_xy, config.chunk_len,
                                                         config.action_dim, config.frame_stride, config.proprio_width,
                                                         config.proprio_glimpse,
                                                         3 if config.proprio_glimpse_pixels else config.latent_channels,
                                                         free_fitted=config.proprio_body_fit, slide=config.proprio_body_slide)
        elif config.proprio_dim > 0 and not config.proprio_object_stepwise:
            self.proprio_dynamics = ProprioDynamics(config.proprio_dim, self._proprio_frames, config.chunk_len,
                                                    config.action_dim, config.n_future, config.proprio_width,
                                                    glimpse_size(config.proprio_glimpse, config.latent_channels))
        if config.proprio_object_stepwise:  # it predicts the whole proprio, the body's state too
            angle = config.proprio_object_pose[2]
            self.object_dynamics = StepwiseObjectDynamics(
                config.proprio_dim, config.proprio_object_pose, config.proprio_image_xy, config.chunk_len,
                config.action_dim, config.frame_stride, config.proprio_width, config.actions_image_xy,
                config.proprio_low[angle], config.proprio_high[angle], config.latent_size / 2.0,
                body_fitted=config.proprio_body_fit)
        elif config.proprio_object_pose:
            angle = config.proprio_object_pose[2]
            self.object_dynamics = ObjectPoseDynamics(
                config.proprio_dim, config.proprio_object_pose, config.proprio_image_xy, self._proprio_frames,
                config.chunk_len, config.action_dim, config.n_future, config.proprio_width, config.actions_image_xy,
                config.proprio_low[angle], config.proprio_high[angle], config.latent_size / 2.0)
        self.video_head = VideoHead(config)
        self.action_head = ActionHead(config)
        self.distance_head = DistanceHead(config)
        self.latent_distance_head = latent_distance_head(config)
        self.mask_law = MaskLaw.from_config(config)

    # ---- housekeeping -------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return self.backbone.fuse.weight.device

    def freeze_tokenizer(self) -> None:
        """End of the tokenizer stage: its weights stop training (UVA keeps its VAE frozen)."""
        self.tokenizer.requires_grad_(False)
        self.tokenizer.eval()

    def fit_body_dynamics(self, proprio: torch.Tensor, actions: torch.Tensor, next_proprio: torch.Tensor) -> LinearStepFit:
        """Solve the stepwise body's linear step (``proprio_body_fit``) from one-step transitions in env
        units: ``proprio [N, P]``, ``actions [N, A]``, ``next_proprio [N, P]``. PushT's PD body: every
        transition; the Wall's free move: the transitions no wall changed. Returns the largest residual
        on those (normalised; near zero: the body is linear per step) and the fraction they make."""
        if not self.config.proprio_body_fit:
            raise WorldModelError("fit_body_dynamics needs a model built with proprio_body_fit=true")
        device = self.device
        norm = lambda x: self.proprio_normalizer.normalize(torch.as_tensor(x, dtype=torch.float32, device=device))  # noqa: E731
        acts = self.normalizer.normalize(torch.as_tensor(actions, dtype=torch.float32, device=device))
        if self.config.proprio_object_stepwise:
            return self.object_dynamics.fit_body(norm(proprio), acts, norm(next_proprio))
        return self.proprio_dynamics.fit_free(norm(proprio), acts, norm(next_proprio))

    def world_parameters(self) -> list[nn.Parameter]:
        """Parameters trained by ``forward`` (everything but the tokenizer)."""
        return [p for name, p in self.named_parameters() if not name.startswith("tokenizer.")]

    # ---- tokenizer ----------------------------------------------------------------------------
    @torch.no_grad()
    def _encode_checked(self, frames: torch.Tensor) -> torch.Tensor:
        lead = frames.shape[:-3]
        flat = frames.reshape(-1, *frames.shape[-3:])
        out = [self.tokenizer.encode(flat[i : i + ENCODE_BATCH]) for i in range(0, flat.shape[0], ENCODE_BATCH)]
        lat = torch.cat(out)
        return lat.reshape(*lead, *lat.shape[1:])

    @torch.no_grad()
    def encode(self, frames) -> torch.Tensor:
        """Frames ``[B, T, H, W, 3]`` (or ``[B, H, W, 3]``) -> latents ``[B, T, h, w, c]`` (or ``[B, h, w, c]``)."""
        x = self._as_tensor(frames, "frames")
        single = x.ndim == 4
        return self._encode_checked(self._frames(x, "frames", single=single))

    @torch.no_grad()
    def decode(self, latents) -> torch.Tensor:
        """Latents ``[B, T, h, w, c]`` (or ``[B, h, w, c]``) -> frames float in [0, 1] ``[B, T, H, W, 3]``."""
        x = self._as_tensor(latents, "latents")
        lat = self._latents(x, "latents", single=x.ndim == 4)
        lead = lat.shape[:-3]
        flat = lat.reshape(-1, *lat.shape[-3:])
        out = [self.tokenizer.decode(flat[i : i + ENCODE_BATCH]) for i in range(0, flat.shape[0], ENCODE_BATCH)]
        frames = torch.cat(out)
        return frames.reshape(*lead, *frames.shape[1:])

    # ---- training -----------------------------------------------------------------------------
    def _batch_latents(self, batch: dict):
        cfg = self.config
        if not isinstance(batch, dict):
            raise WorldModelError(f"batch is a {type(batch).__name__}; expected a dict of tensors")
        hist = self._either(batch.get("history"), batch.get("history_latents"), "history", cfg.n_history)
        fut = self._either(batch.get("future"), batch.get("future_latents"), "future", cfg.n_future)
        goal = self._either(batch.get("goal"), batch.get("goal_latents"), "goal", single=True, required=False)
        b = hist.shape[0]
        for name, x in (("future", fut), ("goal", goal)):
            if x is not None and x.shape[0] != b:
                raise WorldModelError(f"{name} has batch size {x.shape[0]}; expected {b} like history")
        if "actions" not in batch:
            raise WorldModelError(f"batch has no 'actions'; expected normalised actions [B, {cfg.chunk_len}, {cfg.action_dim}]")
        actions = self._actions(batch["actions"], "actions", normalise=False)
        if tuple(actions.shape[:2]) != (b, cfg.chunk_len):
            raise WorldModelError(
                f"actions have shape {tuple(actions.shape)}; expected [{b}, {cfg.chunk_len}, {cfg.action_dim}] "
                "(one normalised chunk per item)"
            )
        goal_actions = None
        if batch.get("goal_actions") is not None:
            goal_actions = self._actions(batch["goal_actions"], "goal_actions", normalise=False)
            if goal_actions.shape != actions.shape:
                raise WorldModelError(f"goal_actions have shape {tuple(goal_actions.shape)}; expected {tuple(actions.shape)} like actions")
        weights = batch.get("action_weights")
        if weights is not None:
            weights = self._as_tensor(weights, "action_weights").to(self.device, torch.float32).reshape(-1)
            if weights.shape[0] != b or not torch.isfinite(weights).all() or (weights < 0).any() or not weights.sum() > 0:
                raise WorldModelError(
                    f"action_weights has shape {tuple(weights.shape)}; expected [{b}] finite weights >= 0, not all zero"
                )
        steps = batch.get("goal_steps")
        if steps is not None:
            steps = self._as_tensor(steps, "goal_steps").to(self.device, torch.float32).reshape(-1)
            if steps.shape[0] != b or not torch.isfinite(steps).all() or (steps < 0).any():
                raise WorldModelError(
                    f"goal_steps has shape {tuple(steps.shape)} (min {float(steps.min()):.3g}); expected [{b}] "
                    "finite env-step counts >= 0"
                )
        return hist, fut, goal, actions, goal_actions, steps, weights

    def _batch_proprio(self, batch: dict, b: int):
        """Normalised ``(history [B, Th, P], future [B, Tf, P])`` proprio of a training batch (env units
        in ``history_proprio`` / ``future_proprio``), or ``(None, None)`` for a model without proprio;
        the future may be absent (None)."""
        if self.proprio_normalizer is None:
            return None, None
        cfg = self.config
        out = []
        for name, t in (("history_proprio", cfg.n_history), ("future_proprio", cfg.n_future)):
            if batch.get(name) is None:
                if name == "future_proprio":  # the maps then come from the predicted proprio, as at inference
                    out.append(None)
                    continue
                raise WorldModelError(f"batch has no {name!r}; this model was built with proprioception, expected "
                                      f"[B, {t}, {cfg.proprio_dim}] in env units")
            reference = None if name == "history_proprio" else out[0]
            out.append(self._broadcast(self._proprio(batch[name], name, t, b, reference), b, name))
        return out[0], out[1]

    def _proprio(self, x, name: str, t: int, b: int | None = None, reference: torch.Tensor | None = None) -> torch.Tensor:
        """Check ``x [B, t, P]`` env units and normalise it. An object's angle is unwrapped to lie within
        half a turn of the newest frame of ``reference`` (normalised history proprio; default ``x``'s own)."""
        p = self.config.proprio_dim
        x = self._as_tensor(x, name)
        if x.ndim != 3 or tuple(x.shape[1:]) != (t, p) or (b is not None and x.shape[0] not in (1, b)):
            raise WorldModelError(f"{name} has shape {tuple(x.shape)}; expected [B, {t}, {p}] (proprio in env units)")
        x = x.to(self.device, torch.float32)
        if not torch.isfinite(x).all():
            raise WorldModelError(f"{name} contains NaN or infinite values; expected finite proprio")
        if self.object_dynamics is not None:
            # the newest angle in [0, 2 pi), as the env's states hold it in training; the rest within half a turn
            k = self.config.proprio_object_pose[2]
            now = (torch.remainder(x[:, -1, k], 2.0 * math.pi) if reference is None
                   else self.object_dynamics.angle(reference[:, -1, k]))
            if now.shape[0] != x.shape[0]:  # a batch of 1 on either side is shared
                x, now = x.expand(max(x.shape[0], now.shape[0]), -1, -1), now.expand(max(x.shape[0], now.shape[0]))
            x = x.clone()
            x[..., k] = unwrap_to(x[..., k], now)
        return self.proprio_normalizer.normalize(x)

    @property
    def _proprio_frames(self) -> int:
        """The newest history frames whose proprio the proprio MLP reads."""
        return self.config.proprio_history_frames or self.config.n_history

    def _reads_context(self, mode) -> bool:
        return self.config.proprio_context and mode.name in PROPRIO_CONTEXT_MODES

    def _context_tokens(self, proprio_norm: torch.Tensor | None) -> torch.Tensor | None:
        """Proprio ``[B, P]`` (normalised) -> the backbone's proprio context tokens ``[B, S, n]``: the
        proprio on every token, and the body's position map over each token's cells; None when the
        model has no proprio context or nothing is known."""
        cfg = self.config
        if proprio_norm is None or not cfg.proprio_context:
            return None
        b, s = proprio_norm.shape[0], cfg.tokens_per_frame
        parts = [proprio_norm[:, None].expand(b, s, cfg.proprio_dim)]
        if cfg.proprio_image_xy:
            maps = position_maps(proprio_norm[:, None, cfg.proprio_image_xy], cfg.latent_size, cfg.proprio_map_sigma)
            parts.insert(0, self.tokenizer.patchify(maps.permute(0, 2, 3, 1)))
        return torch.cat(parts, dim=-1)

    def _training_context(self, batch: dict, mode, hist_p, goal_given, b: int, generator) -> dict:
        """The backbone's proprio-context arguments of one training step: the current proprio in the
        modes that read it, the goal's in the goal-directed one, each withheld from a random share
        ``proprio_context_dropout`` of the items (and the goal's wherever the goal is)."""
        cfg = self.config
        if not self._reads_context(mode):
            return {}
        out = {}
        if hist_p is not None:
            out["proprio"] = self._context_tokens(hist_p[:, -1])
            out["proprio_given"] = _rand((b,), generator, self.device) >= cfg.proprio_context_dropout
        if mode.goal_directed and goal_given is not None and batch.get("goal_proprio") is not None:
            goal_p = self._goal_proprio(batch["goal_proprio"], b)
            out["goal_proprio"] = self._context_tokens(goal_p)
            out["goal_proprio_given"] = goal_given & (_rand((b,), generator, self.device) >= cfg.proprio_context_dropout)
        return out

    def _goal_proprio(self, x, b: int) -> torch.Tensor:
        """Check a goal's proprio ``[B, P]`` (env units; a batch of 1 is shared) and normalise it."""
        x = self._as_tensor(x, "goal_proprio")
        if x.ndim != 2:
            raise WorldModelError(f"goal_proprio has shape {tuple(x.shape)}; expected [B, {self.config.proprio_dim}] "
                                  "(proprio in env units)")
        return self._broadcast(self._proprio(x[:, None], "goal_proprio", 1, b)[:, 0], b, "goal_proprio")

    def _glimpse(self, hist_lat: torch.Tensor, hist_proprio: torch.Tensor) -> torch.Tensor | None:
        """The proprio MLP's view of the newest history latent around the body, or None when off."""
        cfg = self.config
        if cfg.proprio_glimpse == 0:
            return None
        return glimpse(hist_lat[:, -1], hist_proprio[:, -1, cfg.proprio_image_xy], cfg.proprio_glimpse)

    def _wrapped(self, proprio: torch.Tensor) -> torch.Tensor:
        """Env-unit proprio with the object's angle wrapped into [0, 2 pi), as the env's states hold it."""
        if self.object_dynamics is None:
            return proprio
        k = self.config.proprio_object_pose[2]
        out = proprio.clone()
        out[..., k] = torch.remainder(proprio[..., k], 2.0 * math.pi)
        return out

    def _recentred(self, proprio_norm: torch.Tensor) -> torch.Tensor:
        """Normalised proprio ``[B, T, P]`` whose object angle is moved by whole turns so that the newest lies
        in [0, 2 pi), as in training (a rollout's predicted angles are unwrapped and may leave it)."""
        if self.object_dynamics is None:
            return proprio_norm
        k, obj = self.config.proprio_object_pose[2], self.object_dynamics
        angle = obj.angle(proprio_norm[..., k])
        newest = angle[:, -1:]
        out = proprio_norm.clone()
        out[..., k] = obj.normalised_angle(angle + torch.remainder(newest, 2.0 * math.pi) - newest)
        return out

    @torch.no_grad()
    def _decoded_once(self, latents: torch.Tensor) -> torch.Tensor:
        """The frozen tokenizer's pictures of frame ``latents [B, h, w, c]``, each distinct frame decoded once:
        a planner's candidates share their problem's history (broadcast or gathered), so B rows hold a few frames."""
        distinct, which = torch.unique(latents.reshape(latents.shape[0], -1), dim=0, return_inverse=True)
        return self.tokenizer.decode(distinct.reshape(-1, *latents.shape[1:]))[which]

    def body_view(self, hist_lat: torch.Tensor, hist_p: torch.Tensor) -> torch.Tensor | None:
        """What the stepwise body's glimpse reads: the newest history latent grid, or with
        ``proprio_glimpse_pixels`` its decoded frame (the body's own disc painted out with
        ``proprio_glimpse_hide_body``); None without a glimpse. ``hist_p`` normalised."""
        cfg = self.config
        if cfg.proprio_glimpse_pixels:
            view = self._decoded_once(hist_lat[:, -1]).to(hist_lat.dtype)
            if cfg.proprio_glimpse_hide_body:
                view = hide_body(view, hist_p[:, -1, list(cfg.proprio_image_xy)], cfg.proprio_glimpse_hide_body)
            return view
        return hist_lat[:, -1] if cfg.proprio_glimpse else None

    def _predict_proprio(self, hist_lat: torch.Tensor, hist_p: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """The future proprio ``[B, Tf, P]`` (normalised) of a chunk; an object's pose comes from its own
        MLP (``object_pose``), which replaces what the proprio MLP says of it. A stepwise model (object or
        body) predicts the whole proprio, one env step at a time."""
        recent = hist_p[:, -self._proprio_frames:]
        if self.config.proprio_object_stepwise:
            return self.object_dynamics(recent, actions)
        if self.config.proprio_body_stepwise:
            return self.proprio_dynamics(recent, actions, self.body_view(hist_lat, recent))
        predicted = self.proprio_dynamics(recent, actions, self._glimpse(hist_lat, hist_p))
        if self.object_dynamics is None:
            return predicted
        index = torch.tensor(self.config.proprio_object_pose, device=predicted.device)
        return predicted.index_copy(2, index, self.object_dynamics(recent, actions).to(predicted.dtype))

    def _proprio_loss(self, predicted: torch.Tensor, target: torch.Tensor, logs: dict,
                      valid: torch.Tensor | None = None) -> torch.Tensor:
        """Mean squared error of the predicted future proprio (normalised); an object's pose in cells and
        radians (``object_pose.proprio_loss``). ``valid [B, Tf]`` (a batch's ``future_valid``): only the
        future frames within the episode count. Past its end the data repeats the last state while the
        chunk repeats the last action; learnt from, that stop looks like a wall nowhere to be seen, and the
        Wall's stepwise gate shut by 8% in free space (README, "Proprioception on the Wall")."""
        if valid is not None:
            keep = torch.as_tensor(valid, device=predicted.device).bool()
            if tuple(keep.shape) != tuple(predicted.shape[:2]):
                raise WorldModelError(f"future_valid has shape {tuple(keep.shape)}; expected "
                                      f"{tuple(predicted.shape[:2])} (one flag per future frame)")
            predicted, target = predicted[keep], target[keep]
            if predicted.numel() == 0:
                return predicted.sum()  # no frame to learn from in this batch
        if self.object_dynamics is None:
            return (predicted - target).pow(2).mean()
        loss, object_part = proprio_loss(predicted, target, self.object_dynamics)
        logs["object_loss"] = object_part.item()
        return loss

    def _proprio_maps(self, proprio_norm: torch.Tensor | None) -> torch.Tensor | None:
        """Future proprio ``[B, Tf, P]`` (normalised) -> the dynamics prior's maps: where the body will
        be (``proprio_image_xy``) and the object's pose (``proprio_object_pose``), where the config names them."""
        cfg = self.config
        if proprio_norm is None or not (cfg.proprio_image_xy or cfg.proprio_object_pose):
            return None
        maps = []
        if cfg.proprio_image_xy:
            maps.append(position_maps(proprio_norm[..., cfg.proprio_image_xy], cfg.latent_size, cfg.proprio_map_sigma))
        if cfg.proprio_object_pose:
            x, y, k = cfg.proprio_object_pose
            maps.append(pose_maps(proprio_norm[..., [x, y]], self.object_dynamics.angle(proprio_norm[..., k]),
                                  cfg.latent_size, cfg.proprio_object_sigma))
        return torch.cat(maps, dim=1)

    def forward(self, batch: dict, mode: str | Mode | None = None, generator: torch.Generator | None = None):
        """The training objective: UVA's masked multi-task loss for one batch; one mode per call (drawn with the configured weights
        when ``mode`` is None). Returns ``(loss, logs)``; logs hold floats and ``"mode"``.

        batch: ``history [B, Th, H, W, 3]`` / ``future [B, Tf, H, W, 3]`` / ``goal [B, H, W, 3]`` frames
        or ``history_latents`` / ``future_latents`` / ``goal_latents``; ``actions [B, L, A]``
        normalised; optional ``goal_steps [B]`` (env steps to the goal, trains the distance head);
        optional ``action_weights [B]`` (>= 0): the action loss becomes the weighted mean over items, as
        advantage-weighted regression needs (policy extraction); optional ``goal_actions [B, L, A]``: the
        targets of goal-directed modes (policy) where the goal is shown, e.g. the chunk with the steps
        past a near goal replaced by holding still there. A model with proprioception also needs
        ``history_proprio [B, Th, P]`` and, to train it, ``future_proprio [B, Tf, P]`` (env units); without
        the future, the prior's position maps come from the predicted proprio (as at inference). With
        ``proprio_context`` the policy and joint modes also read ``history_proprio`` where it is given,
        and the policy mode ``goal_proprio [B, P]`` (the goal frame's, env units).
        A mode leaves the heads it does not use out of the graph (their gradients stay None).
        """
        cfg = self.config
        hist, fut, goal, actions, goal_actions, steps, weights = self._batch_latents(batch)
        mode = resolve_mode(mode, cfg.mode_weights, generator)
        b, dev = hist.shape[0], self.device
        # forward dynamics needs proprio; a proprio_context model also reads it in the policy and joint modes
        # where given (action-free videos have none); inverse dynamics and video prediction never do
        hist_p = fut_p = None
        # the proprio MLPs read only states and actions, which every window with states has: with an object
        # pose (or proprio_every_step) they learn in every step (in the forward-dynamics half alone the T's
        # MLP misses its turn by 0.7 degree more; README, "The block's pose"), else in forward-dynamics steps
        learns_proprio = self.proprio_normalizer is not None and (mode.actions_given or (
            (self.object_dynamics is not None or cfg.proprio_every_step) and batch.get("future_proprio") is not None))
        if learns_proprio:
            hist_p, fut_p = self._batch_proprio(batch, b)
        elif self._reads_context(mode) and batch.get("history_proprio") is not None:
            hist_p = self._batch_proprio(batch, b)[0]  # action-free videos (no states) go without
        if cfg.static_history_prob > 0:
            static = _rand((b,), generator, dev) < cfg.static_history_prob
            hist = torch.where(static.view(b, 1, 1, 1, 1), hist[:, -1:].expand_as(hist), hist)
            if hist_p is not None:
                hist_p = torch.where(static.view(b, 1, 1), hist_p[:, -1:].expand_as(hist_p), hist_p)
        tok = self.tokenizer
        hist_t, fut_t = tok.patchify(hist), tok.patchify(fut)
        goal_t = tok.patchify(goal) if goal is not None else None
        goal_given = None
        if goal_t is not None:
            goal_given = _rand((b,), generator, dev) >= cfg.goal_dropout
        mask = future_mask(mode, b, cfg.n_future, cfg.tokens_per_frame, self.mask_law, generator, dev)
        context = self._training_context(batch, mode, hist_p, goal_given, b, generator)
        actions_given = torch.full((b,), mode.actions_given, dtype=torch.bool, device=dev)
        logs: dict = {"mode": mode.name}
        total = torch.zeros((), device=dev)
        prior_t = None
        if learns_proprio:
            predicted_p = self._predict_proprio(hist, hist_p, actions)
            if fut_p is None:  # no true future given: the maps follow the prediction, as at inference
                fut_p = predicted_p.detach()
            else:
                proprio_loss = self._proprio_loss(predicted_p, fut_p, logs, batch.get("future_valid"))
                total = total + cfg.proprio_loss_weight * proprio_loss
                logs["proprio_loss"] = proprio_loss.item()
        if self.dynamics_prior is not None and mode.actions_given:
            # the maps of the TRUE future positions (teacher forcing); inference uses the predicted ones
            prior = self.dynamics_prior(hist[:, -self.dynamics_prior.frames:], actions, self._proprio_maps(fut_p))
            prior_t = tok.patchify(prior)
            prior_loss = (prior - fut).pow(2).mean()
            total = total + cfg.dynamics_prior_loss_weight * prior_loss
            logs["prior_loss"] = prior_loss.item()
        z = self.backbone(future=fut_t, history=hist_t, future_mask=mask, actions=actions, actions_given=actions_given,
                          goal=goal_t, goal_given=goal_given, prior=prior_t, **context)

        if mode.video_loss:
            target = fut_t - self._video_offset(hist_t)
            per_token = self.video_head.loss(target[mask], z[mask], generator, cfg.diffusion_batch_mul)
            if cfg.video_foreground_weight > 0:
                w = self._foreground_token_weights(hist_t[:, -1:], fut_t)[mask]
                video = (per_token * w).sum() / w.sum()
            else:
                video = per_token.mean()
            total = total + video
            logs["video_loss"] = video.item()
        if mode.action_loss:
            targets = actions
            if mode.goal_directed and goal_actions is not None and goal_given is not None:
                targets = torch.where(goal_given.view(b, 1, 1), goal_actions, actions)
            per_item = self.action_head.loss(z, targets, generator, cfg.diffusion_batch_mul).view(b, -1).mean(dim=1)
            action = per_item.mean() if weights is None else (per_item * weights).sum() / weights.sum()
            total = total + action
            logs["action_loss"] = action.item()
        if steps is not None and goal is not None:
            # log(1 + env steps to the goal) for the current frame and each future frame k (k * stride
            # steps later), from the hindsight goal's distance; past the goal it is clamped to 0.
            offsets = torch.arange(cfg.n_future + 1, device=dev, dtype=torch.float32) * cfg.frame_stride
            target = torch.log1p((steps.view(b, 1) - offsets).clamp(min=0.0))
            if bool(goal_given.any()):
                err = expectile_loss(self.distance_head(z), target, cfg.distance_expectile).mean(dim=1)
                dist = err[goal_given].mean()
                total = total + cfg.distance_loss_weight * dist
                logs["distance_loss"] = dist.item()
            frames = torch.cat([hist[:, -1:], fut], dim=1)  # current frame, then the futures
            n = frames.shape[1]
            pred = self.latent_distance_head(frames.flatten(0, 1), goal.repeat_interleave(n, dim=0)).view(b, n)
            latent_dist = expectile_loss(pred, target, cfg.distance_expectile).mean()
            total = total + cfg.distance_loss_weight * latent_dist
            logs["latent_distance_loss"] = latent_dist.item()
        logs["loss"] = total.item()
        return total, logs

    # ---- inference internals ------------------------------------------------------------------
    def _foreground_token_weights(self, current_t: torch.Tensor, fut_t: torch.Tensor) -> torch.Tensor:
        """Video-loss weights ``[B, Tf, S]``: ``1 + video_foreground_weight`` at tokens where the current
        frame ``[B, 1, S, D]`` or the future frame ``[B, Tf, S, D]`` differs from the empty scene."""
        cfg = self.config
        with torch.no_grad():
            empty_t = self.tokenizer.patchify(self.tokenizer.encode(self.tokenizer.empty_frame()[None].to(self.device)))
            far = cfg.video_foreground_threshold
            fg = ((fut_t - empty_t.unsqueeze(1)).norm(dim=-1) > far) | ((current_t - empty_t.unsqueeze(1)).norm(dim=-1) > far)
        return 1.0 + cfg.video_foreground_weight * fg.float()

    def _video_offset(self, hist_t: torch.Tensor) -> torch.Tensor:
        """What the video head's samples are added to: the current frame's tokens ``[B, 1, S, D]`` for
        ``video_target="residual"`` (the head models the change), else zero."""
        if self.config.video_target == "residual":
            return hist_t[:, -1:]
        return torch.zeros_like(hist_t[:, -1:])

    def _goal_inputs(self, goal_latents: torch.Tensor | None, b: int):
        if goal_latents is None:
            return None, None
        goal_latents = self._broadcast(goal_latents, b, "goal")
        return self.tokenizer.patchify(goal_latents), torch.ones(b, dtype=torch.bool, device=self.device)

    def _distance_steps(self, z: torch.Tensor) -> torch.Tensor:
        """Joint latent -> predicted env steps to the goal ``[B, 1 + Tf]`` (current frame, then futures)."""
        return torch.expm1(self.distance_head(z).clamp(min=0.0))

    def _latent_distance_steps(self, latents: torch.Tensor, goal_latents: torch.Tensor, max_batch: int = 4096):
        """Frame latents ``[B, T, h, w, c]`` vs goal latents ``[B, h, w, c]`` -> env steps ``[B, T]``."""
        b, t = latents.shape[:2]
        flat = latents.reshape(b * t, *latents.shape[2:])
        goals = self._broadcast(goal_latents, b, "goal").repeat_interleave(t, dim=0)
        out = [self.latent_distance_head(flat[i : i + max_batch], goals[i : i + max_batch])
               for i in range(0, b * t, max_batch)]
        return torch.expm1(torch.cat(out).clamp(min=0.0)).reshape(b, t)

    def _generate(self, hist_lat, goal_lat, actions_norm, num_iters, num_steps, temperature, generator,
                  sample_latents=True, hist_proprio=None, need_joint: bool = True):
        """One chunk of MAR-style generation: ``num_iters`` passes, each revealing spatial positions
        (the same in every future frame) in a random order on a cosine schedule. Returns
        (future latents ``[B, Tf, h, w, c]`` or None, joint latent of the last pass, predicted future
        proprio ``[B, Tf, P]`` normalised or None, the proprio after every env step ``[B, L, P]`` normalised
        from a stepwise object model, else None). Neither latents nor the joint latent asked for
        (``need_joint=False``): only the proprio MLPs run."""
        cfg, tok = self.config, self.tokenizer
        b, tf, s, d = hist_lat.shape[0], cfg.n_future, cfg.tokens_per_frame, cfg.token_dim
        hist_t = tok.patchify(hist_lat)
        goal_t, goal_given = self._goal_inputs(goal_lat, b)
        given = None if actions_norm is None else torch.ones(b, dtype=torch.bool, device=self.device)
        prior_t = fut_p = steps_p = None
        context = {"proprio": self._context_tokens(hist_proprio[:, -1])} if hist_proprio is not None else {}
        if hist_proprio is not None and actions_norm is not None:
            if cfg.proprio_object_stepwise:  # every step is rolled out anyway: keep them, the frames among them
                steps_p = self.object_dynamics(hist_proprio, actions_norm, every_step=True)
                fut_p = steps_p[:, cfg.frame_stride - 1 :: cfg.frame_stride]
            else:
                fut_p = self._predict_proprio(hist_lat, hist_proprio, actions_norm)
        if not sample_latents and not need_joint:
            return None, None, fut_p, steps_p
        if self.dynamics_prior is not None and actions_norm is not None:
            prior_t = tok.patchify(self.dynamics_prior(hist_lat[:, -self.dynamics_prior.frames:], actions_norm,
                                                       self._proprio_maps(fut_p)))
        fut = torch.zeros(b, tf, s, d, device=self.device)
        spatial = torch.ones(b, s, dtype=torch.bool, device=self.device)
        if not sample_latents:
            z = self.backbone(future=fut, history=hist_t, future_mask=spatial.unsqueeze(1).expand(b, tf, s),
                              actions=actions_norm, actions_given=given, goal=goal_t, goal_given=goal_given,
                              prior=prior_t, **context)
            return None, z, fut_p, steps_p
        orders = random_orders(b, s, generator, self.device)
        offset = self._video_offset(hist_t).expand(b, tf, s, d)
        for keep in cosine_mask_counts(num_iters, s):
            mask = spatial.unsqueeze(1).expand(b, tf, s)
            z = self.backbone(future=fut, history=hist_t, future_mask=mask, actions=actions_norm, actions_given=given,
                              goal=goal_t, goal_given=goal_given, prior=prior_t, **context)
            nxt = mask_first(orders, torch.full((b,), keep, device=self.device))
            sel = (spatial & ~nxt).unsqueeze(1).expand(b, tf, s)
            fut = fut.clone()
            fut[sel] = self.video_head.sample(z[sel], num_steps, temperature, generator) + offset[sel]
            spatial = nxt
        return tok.unpatchify(fut), z, fut_p, steps_p

    # ---- public inference ---------------------------------------------------------------------
    @torch.no_grad()
    def policy(self, history=None, goal=None, *, history_latents=None, goal_latents=None, num_samples: int = 1,
               num_steps: int | None = None, temperature: float | None = None,
               generator: torch.Generator | None = None, history_proprio=None, goal_proprio=None) -> torch.Tensor:
        """Action chunks from ONE transformer pass + the action head (never the video head or the
        decoder): history ``[B, Th, H, W, 3]`` (or ``history_latents``), optional goal ``[B, H, W, 3]``
        -> ``[B, K, L, A]`` in env units, ``K = num_samples``. ``history_proprio [B, Th, P]`` and
        ``goal_proprio [B, P]`` (env units; optional) are read by a model with ``proprio_context`` and
        ignored by others, so a caller may pass what it knows."""
        cfg = self.config
        self._check_count(num_samples, "num_samples", 1)
        self._check_sampling(num_steps, temperature)
        hist = self._either(history, history_latents, "history", cfg.n_history)
        goal_lat = self._either(goal, goal_latents, "goal", single=True, required=False)
        b = hist.shape[0]
        goal_t, goal_given = self._goal_inputs(goal_lat, b)
        fut = torch.zeros(b, cfg.n_future, cfg.tokens_per_frame, cfg.token_dim, device=self.device)
        mask = torch.ones(b, cfg.n_future, cfg.tokens_per_frame, dtype=torch.bool, device=self.device)
        context = {}
        if cfg.proprio_context:
            if history_proprio is not None:
                hist_p = self._proprio(history_proprio, "history_proprio", cfg.n_history)
                context["proprio"] = self._context_tokens(self._broadcast(hist_p, b, "history_proprio")[:, -1])
            if goal_proprio is not None and goal_lat is not None:
                context["goal_proprio"] = self._context_tokens(self._goal_proprio(goal_proprio, b))
        z = self.backbone(future=fut, history=self.tokenizer.patchify(hist), future_mask=mask, goal=goal_t,
                          goal_given=goal_given, **context)
        actions = self.action_head.sample(z, num_samples, num_steps, temperature, generator)
        return self.normalizer.unnormalize(actions)

    @torch.no_grad()
    def forward_dynamics(self, history=None, actions=None, goal=None, *, history_latents=None, goal_latents=None,
                         history_proprio=None, decode: bool = False, sample_latents: bool = True, num_iters: int = 1,
                         num_steps: int | None = None, temperature: float | None = None,
                         generator: torch.Generator | None = None,
                         distance_heads: tuple[str, ...] = ("joint", "latent")) -> ForwardResult:
        """Imagine the frames that ``actions [B, n*L, A]`` (env units) lead to from history
        ``[B, Th, H, W, 3]`` (or ``history_latents [B, Th, h, w, c]``; a batch of 1 is shared by all
        action sequences). Chunk by chunk: each chunk's predicted frames become the next history.
        Returns ``ForwardResult(latents [B, n*Tf, h, w, c], frames if decode, distance and
        latent_distance [B, n*Tf] if a goal is given)``. ``sample_latents=False`` skips the video head
        where nothing needs the latents (only the joint-latent ``distance`` is then returned; earlier
        chunks are still sampled to roll on); with no joint distance asked for either, a proprio model runs
        its proprio MLPs alone, chunk after chunk (what a cost on the predicted poses reads), unless they
        read the latents (``proprio_glimpse``). ``distance_heads`` names the distance heads to run when a
        goal is given (a planner's cost reads one of them; the other is then left as None).
        ``history_proprio [B, Th, P]`` (env units; a batch of 1 is shared): the history's proprioception,
        required by a model built with ``proprio_dim > 0``; the predicted proprio is then returned as
        ``proprio [B, n*Tf, P]`` and rolls on with the frames."""
        cfg = self.config
        unknown = set(distance_heads) - {"joint", "latent"}
        if unknown:
            raise WorldModelError(f"unknown distance heads {sorted(unknown)}; expected 'joint' and/or 'latent'")
        self._check_count(num_iters, "num_iters", 1, cfg.tokens_per_frame)
        self._check_sampling(num_steps, temperature)
        if actions is None:
            raise WorldModelError(f"actions were not given; expected [B, n*{cfg.chunk_len}, {cfg.action_dim}] in env units")
        acts = self._actions(actions, "actions", normalise=True)
        b, total = acts.shape[0], acts.shape[1]
        if total % cfg.chunk_len:
            raise WorldModelError(
                f"actions have {total} steps; expected a multiple of the chunk length {cfg.chunk_len} "
                f"(shape [B, n*{cfg.chunk_len}, {cfg.action_dim}])"
            )
        hist = self._broadcast(self._either(history, history_latents, "history", cfg.n_history), b, "history")
        goal_lat = self._either(goal, goal_latents, "goal", single=True, required=False)
        hist_p = None
        if self.proprio_normalizer is not None:
            if history_proprio is None:
                raise WorldModelError(f"history_proprio was not given; this model was built with proprioception, "
                                      f"expected [B, {cfg.n_history}, {cfg.proprio_dim}] in env units")
            hist_p = self._broadcast(self._proprio(history_proprio, "history_proprio", cfg.n_history, b), b,
                                     "history_proprio")
        n_chunks = total // cfg.chunk_len
        need_joint = goal_lat is not None and "joint" in distance_heads
        # only the predicted proprio asked for, and its MLPs read no latents: no chunk needs its frames
        proprio_only = hist_p is not None and not (sample_latents or decode or need_joint or cfg.proprio_glimpse)
        latents, distances, proprio, steps = [], [], [], []
        for k in range(n_chunks):
            need = (sample_latents or decode or k < n_chunks - 1) and not proprio_only
            chunk = acts[:, k * cfg.chunk_len : (k + 1) * cfg.chunk_len]
            fut, z, fut_p, steps_p = self._generate(hist, goal_lat, chunk, num_iters, num_steps, temperature, generator,
                                                    need, hist_proprio=hist_p, need_joint=need_joint)
            if steps_p is not None:
                steps.append(steps_p)
            if need_joint:
                distances.append(self._distance_steps(z)[:, 1:])
            if fut_p is not None:
                proprio.append(fut_p)
                hist_p = self._recentred(torch.cat([hist_p, fut_p], dim=1)[:, -cfg.n_history :])
            if fut is not None:
                latents.append(fut)
                hist = fut[:, -cfg.n_history :]
        lat = torch.cat(latents, dim=1) if (sample_latents or decode) else None
        return ForwardResult(
            latents=lat,
            frames=self.decode(lat) if decode else None,
            distance=torch.cat(distances, dim=1) if distances else None,
            latent_distance=(self._latent_distance_steps(lat, goal_lat)
                             if lat is not None and goal_lat is not None and "latent" in distance_heads else None),
            proprio=self._wrapped(self.proprio_normalizer.unnormalize(torch.cat(proprio, dim=1))) if proprio else None,
            proprio_steps=self._wrapped(self.proprio_normalizer.unnormalize(torch.cat(steps, dim=1))) if steps else None,
        )

    @torch.no_grad()
    def predict_video(self, history=None, goal=None, *, history_latents=None, goal_latents=None, num_iters: int = 1,
                      decode: bool = False, num_steps: int | None = None, temperature: float | None = None,
                      generator: torch.Generator | None = None) -> ForwardResult:
        """Video prediction without actions (MAR iterative unmasking, ``num_iters`` in 1..8 typical):
        history ``[B, Th, H, W, 3]`` -> ``ForwardResult(latents [B, Tf, h, w, c], ...)``."""
        cfg = self.config
        self._check_count(num_iters, "num_iters", 1, cfg.tokens_per_frame)
        self._check_sampling(num_steps, temperature)
        hist = self._either(history, history_latents, "history", cfg.n_history)
        goal_lat = self._either(goal, goal_latents, "goal", single=True, required=False)
        fut, z, *_ = self._generate(hist, goal_lat, None, num_iters, num_steps, temperature, generator)
        return ForwardResult(
            latents=fut,
            frames=self.decode(fut) if decode else None,
            distance=self._distance_steps(z)[:, 1:] if goal_lat is not None else None,
            latent_distance=self._latent_distance_steps(fut, goal_lat) if goal_lat is not None else None,
        )

    @torch.no_grad()
    def inverse_dynamics(self, frames=None, *, latents=None, num_samples: int = 1, return_std: bool = False,
                         num_steps: int | None = None, temperature: float | None = None,
                         generator: torch.Generator | None = None, max_batch: int = 512):
        """Actions between consecutive frames ``[B, T, H, W, 3]`` (or ``latents [B, T, h, w, c]``, one
        frame per env step) -> ``[B, T-1, A]`` env units. Windows start every ``frame_stride`` steps
        (history clamped at the first frame, future at the last, as in training); the overlapping
        predictions of each step are averaged over windows and ``num_samples`` samples. With
        ``return_std`` also returns their spread ``[B, T-1, A]`` (an uncertainty estimate)."""
        cfg = self.config
        self._check_count(num_samples, "num_samples", 1)
        self._check_count(max_batch, "max_batch", 1)
        self._check_sampling(num_steps, temperature)
        lat = self._either(frames, latents, "frames", None, latent_name="latents")
        b, t = lat.shape[:2]
        if t < 2:
            raise WorldModelError(f"frames have {t} frame(s) per item; expected at least 2 to infer actions between them")
        s, L = cfg.frame_stride, cfg.chunk_len
        starts = torch.arange(0, t - 1, s, device=self.device)
        hist_idx = (starts.view(-1, 1) + s * torch.arange(-(cfg.n_history - 1), 1, device=self.device)).clamp(0, t - 1)
        fut_idx = (starts.view(-1, 1) + s * torch.arange(1, cfg.n_future + 1, device=self.device)).clamp(0, t - 1)
        n_win = starts.shape[0]
        hist = lat[:, hist_idx].reshape(b * n_win, cfg.n_history, *lat.shape[2:])
        fut = lat[:, fut_idx].reshape(b * n_win, cfg.n_future, *lat.shape[2:])
        preds = []
        mask_shape = (cfg.n_future, cfg.tokens_per_frame)
        for i in range(0, b * n_win, max_batch):
            h, f = hist[i : i + max_batch], fut[i : i + max_batch]
            mask = torch.zeros(h.shape[0], *mask_shape, dtype=torch.bool, device=self.device)
            z = self.backbone(future=self.tokenizer.patchify(f), history=self.tokenizer.patchify(h), future_mask=mask)
            preds.append(self.action_head.sample(z, num_samples, num_steps, temperature, generator))
        pred = torch.cat(preds).reshape(b, n_win, num_samples, L, cfg.action_dim)
        # Scatter every window's L predictions onto the steps they cover; drop steps past the video.
        step = (starts.view(-1, 1) + torch.arange(L, device=self.device)).view(1, n_win, 1, L, 1)
        valid = (step < t - 1).expand(b, n_win, num_samples, L, 1).float()
        idx = step.clamp(max=t - 2).expand(b, n_win, num_samples, L, cfg.action_dim).reshape(b, -1, cfg.action_dim)
        flat, w = (pred * valid).reshape(b, -1, cfg.action_dim), valid.reshape(b, -1, 1)
        zeros = torch.zeros(b, t - 1, cfg.action_dim, device=self.device)
        total = zeros.scatter_add(1, idx, flat)
        sq = zeros.scatter_add(1, idx, flat.pow(2))
        count = torch.zeros(b, t - 1, 1, device=self.device).scatter_add(1, idx[..., :1], w)
        mean = total / count
        actions = self.normalizer.unnormalize(mean)
        if not return_std:
            return actions
        var = (sq / count - mean.pow(2)).clamp(min=0.0)
        scale = torch.as_tensor((self.normalizer.high - self.normalizer.low) / 2.0, device=self.device)
        return actions, var.sqrt() * scale

    @torch.no_grad()
    def temporal_distance(self, frames=None, goal=None, *, latents=None, goal_latents=None, head: str = "latent",
                          max_batch: int = 512) -> torch.Tensor:
        """Predicted env steps from each frame to the goal: frames ``[B, T, H, W, 3]`` (or latents) and
        goal ``[B, H, W, 3]`` (or ``goal_latents``; a batch of 1 is shared) -> ``[B, T]``.
        ``head="latent"`` (default) compares each frame's latents with the goal's; ``head="joint"``
        scores each frame alone as the current frame of a still history (its own frame repeated, as
        at an episode start, which training covers), no actions, future masked - one transformer pass."""
        cfg = self.config
        self._check_count(max_batch, "max_batch", 1)
        if head not in ("latent", "joint"):
            raise WorldModelError(f"head is {head!r}; expected 'latent' or 'joint'")
        lat = self._either(frames, latents, "frames", None, latent_name="latents")
        goal_lat = self._either(goal, goal_latents, "goal", single=True)
        b, t = lat.shape[:2]
        goal_lat = self._broadcast(goal_lat, b, "goal")
        if head == "latent":
            return self._latent_distance_steps(lat, goal_lat)
        cur = lat.reshape(b * t, 1, *lat.shape[2:]).expand(b * t, cfg.n_history, *lat.shape[2:])
        goals = goal_lat.repeat_interleave(t, dim=0)
        out = []
        for i in range(0, b * t, max_batch):
            h, g = cur[i : i + max_batch], goals[i : i + max_batch]
            n = h.shape[0]
            goal_t, goal_given = self._goal_inputs(g, n)
            fut = torch.zeros(n, cfg.n_future, cfg.tokens_per_frame, cfg.token_dim, device=self.device)
            mask = torch.ones(n, cfg.n_future, cfg.tokens_per_frame, dtype=torch.bool, device=self.device)
            z = self.backbone(future=fut, history=self.tokenizer.patchify(h), future_mask=mask, goal=goal_t,
                              goal_given=goal_given)
            out.append(self._distance_steps(z)[:, 0])
        return torch.cat(out).reshape(b, t)
