"""Plain, JSON-serialisable configs for the frame tokenizer and the UVA model, and the tiny / small /
base presets. Configs validate themselves on construction so a bad value fails where it is written,
not deep inside a forward pass; ``from_dict`` is what checkpoints use, so it rejects unknown keys."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from world_model.errors import WorldModelError

MODE_NAMES = ("video_prediction", "forward_dynamics", "policy", "inverse_dynamics", "joint")
PREDICTION_TYPES = ("v_prediction", "sample")
VIDEO_TARGETS = ("frame", "residual")
ACTION_CONTEXTS = ("frame", "prefix")
WARP_KERNELS = ("free", "gaussian", "gaussian+local", "stepwise", "splat")
LATENT_DISTANCE_FORMS = ("pair", "metric")


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise WorldModelError(message)


def _positive_int(name: str, value: Any) -> None:
    _require(
        isinstance(value, int) and not isinstance(value, bool) and value > 0,
        f"{name} is {value!r}; expected a positive integer",
    )


def _number_in(name: str, value: Any, low: float, high: float) -> None:
    _require(
        isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and low <= value <= high,
        f"{name} is {value!r}; expected a number in [{low}, {high}]",
    )


@dataclass
class TokenizerConfig:
    """Frame autoencoder: ``[H, W, 3]`` frames -> ``[H/f, W/f, latent_channels]`` latents with
    ``f = 2 ** len(channels)`` (one stride-2 stage per entry)."""

    image_size: int = 64
    latent_channels: int = 4
    channels: tuple[int, ...] = (16, 32, 32)
    kl_weight: float = 1e-4
    # Pixels that differ from the dataset's median background by more than the threshold weigh
    # (1 + foreground_weight) in the reconstruction loss, so small moving objects survive.
    foreground_weight: float = 20.0
    foreground_threshold: float = 0.1

    def __post_init__(self):
        self.channels = tuple(self.channels)
        self.validate()

    def validate(self) -> None:
        _positive_int("tokenizer.image_size", self.image_size)
        _positive_int("tokenizer.latent_channels", self.latent_channels)
        _require(
            len(self.channels) >= 1 and all(isinstance(c, int) and c > 0 for c in self.channels),
            f"tokenizer.channels is {self.channels!r}; expected a non-empty list of positive integers",
        )
        factor = 2 ** len(self.channels)
        _require(
            self.image_size % factor == 0,
            f"tokenizer.image_size {self.image_size} is not divisible by the downsampling factor {factor} "
            f"(2 ** len(channels)); expected a multiple of {factor}",
        )
        _number_in("tokenizer.kl_weight", self.kl_weight, 0.0, 1.0)
        _number_in("tokenizer.foreground_weight", self.foreground_weight, 0.0, 1e4)
        _number_in("tokenizer.foreground_threshold", self.foreground_threshold, 0.0, 1.0)

    @property
    def downsample(self) -> int:
        return 2 ** len(self.channels)

    @property
    def latent_size(self) -> int:
        return self.image_size // self.downsample

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["channels"] = list(self.channels)
        return d

    @classmethod
    def from_dict(cls, data: Any) -> TokenizerConfig:
        return _from_dict(cls, data, "tokenizer config")


def _default_mode_weights() -> dict[str, float]:
    """Half the steps train forward dynamics, the planner's world model; policy and inverse dynamics
    (the proposal prior and the imitation labeller) a fifth each; the action-free video modes, which
    nothing here plans with, the rest. UVA draws the five uniformly: then the imagined agent stayed
    missing after 8,000 tiny steps (README, "What makes the forward model learn")."""
    return {"video_prediction": 0.05, "forward_dynamics": 0.5, "policy": 0.2, "inverse_dynamics": 0.2, "joint": 0.05}


@dataclass
class UVAConfig:
    """Everything that fixes the UVA model's shapes and its training/sampling laws.

    Frames are ``image_size`` square RGB; ``n_history`` past frames and ``n_future`` future frames are
    ``frame_stride`` env steps apart, so one action chunk is ``chunk_len = n_future * frame_stride``
    actions. ``env_name`` lets callers reject a checkpoint trained on another environment.
    """

    action_low: list[float] = field(default_factory=lambda: [-1.0, -1.0])
    action_high: list[float] = field(default_factory=lambda: [1.0, 1.0])
    action_dim: int = 2
    env_name: str = ""
    image_size: int = 64
    n_history: int = 4
    n_future: int = 4
    frame_stride: int = 4
    patch_size: int = 2
    # Imagination design (issue 10's ablation; README "what makes the forward model learn"):
    # every future token also carries the CURRENT frame's token at its position (UVA pairs future
    # frame i with history frame i only, so the first future frame sits beside the oldest one);
    fuse_current_frame: bool = True
    # the video head denoises the frame token ("frame", UVA) or its change from the current frame's
    # token ("residual": a still background is then exactly zero and the loss is the motion);
    video_target: str = "residual"
    # each future frame's tokens carry its own frame_stride actions ("frame", UVA) or every action
    # of the chunk up to that frame ("prefix": where the agent is at frame i depends on all of them).
    action_context: str = "prefix"
    # 3x3 residual convolutions over each future frame's fused token grid before the transformer: a
    # local, translation-equivariant path for "the agent next door moves here" (0 = UVA's pure
    # transformer).
    local_mixing: int = 2
    # CDNA-style motion kernels (Finn et al. 2016) on the latent grid: each future frame's action
    # context predicts a (2r+1)^2 softmax kernel that moves the current frame's latents, and the moved
    # grid joins that frame's tokens. A direct path for "the actions carry the agent r cells away",
    # which attention and local mixing must otherwise learn (0 = off, UVA's token).
    action_warp_radius: int = 0
    # the warp's kernel: "free" softmax logits per offset (CDNA) or "gaussian" (a learned mean move and
    # spread per frame: the move is nearly linear in the actions, so it is learnt sooner), or
    # "gaussian+local" (plus a per-cell correction from the frame round each cell: DNA), or "stepwise"
    # (gaussian+local applied frame after frame, each frame's own actions moving the previous moved
    # grid, so a wall can stop the agent where it is met; a radius of 1-2 cells is enough), or "splat"
    # (stepwise, but each cell SENDS its content, clamped to the grid, so nothing is pushed off it).
    action_warp_kernel: str = "free"
    # A deterministic conv forward model on the latent grid (`dynamics_prior.py`), regressed onto the
    # future latents with this loss weight; its prediction joins every future token when actions are
    # given (0 channels = off, UVA's token). With coords each cell also sees its (x, y), for actions that
    # are target positions; with frames > 1 it also sees the frames before the current one, for an agent
    # carried by its own speed (on PushT's reference net each moved the agent's error by a few units).
    dynamics_prior_width: int = 0
    dynamics_prior_blocks: int = 4
    dynamics_prior_loss_weight: float = 1.0
    dynamics_prior_coords: bool = False
    dynamics_prior_frames: int = 1
    # Proprioception (DINO-WM's proprio; `proprio.py`): what the robot knows of itself in every frame,
    # e.g. PushT's agent position and velocity, ``proprio_dim`` numbers mapped from [low, high] to
    # [-1, 1] (0 = off, UVA's frames only). A small MLP predicts the future proprio from the history's
    # and the action chunk, and, for the two entries ``proprio_image_xy`` naming the body's image
    # (x, y) (their [low, high] = the image's extent), a map of where that body will be joins the
    # dynamics prior's input: on PushT a conv on the latents placed a 2 px agent 2-3x closer with it
    # (README, "Proprioception"). ``proprio_state_indices`` records which env-state entries the
    # proprio is (for callers that read it from states; the model does not use it).
    proprio_dim: int = 0
    proprio_low: list[float] = field(default_factory=list)
    proprio_high: list[float] = field(default_factory=list)
    proprio_image_xy: list[int] = field(default_factory=list)
    proprio_state_indices: list[int] = field(default_factory=list)
    proprio_width: int = 256
    proprio_loss_weight: float = 1.0
    proprio_map_sigma: float = 0.6  # latent cells
    # > 0: the proprio MLP also reads the current latent grid in a (2r+1)^2-cell window around the body
    # (``proprio.glimpse``), to see the walls and door that stop it; needs ``proprio_image_xy``.
    proprio_glimpse: int = 0
    # How many of the newest history frames' proprio the MLP reads (0 = all n_history). 1 = the current
    # state only: on the Wall (no momentum) an MLP reading the whole history learnt to carry the
    # history's motion on and undershot every full-speed chunk from a still start (README,
    # "Proprioception on the Wall"); PushT's proprio holds the velocity.
    proprio_history_frames: int = 0
    # Proprio as CONTEXT of the transformer (not only of the forward prediction): the current proprio (and,
    # in the policy mode, the goal's) joins every token, as a vector and as a map of where the body is.
    # Tried for PushT's policy, which aims its position targets ~47 px from an agent the data never leads
    # by more than 30: 6,000 staged steps moved its aim by 4-6 px and its success not at all (README,
    # "PushT's policy: what its limit is not"), so it is off. Each is withheld from a share
    # ``proprio_context_dropout`` of the items (a learned "none" stands in), so action-free videos,
    # which have no states, keep a trained path (inverse dynamics never reads it).
    proprio_context: bool = False
    proprio_context_dropout: float = 0.25
    # An object among the proprio (``object_pose.py``): the proprio indices of its x, y (image positions,
    # normalised like the frame) and angle (radians; periodic). Its future pose is predicted in its own
    # frame (the body, the actions and its past rotated into it: a push looks the same wherever the object
    # lies) and a map of that pose (a bump of ``proprio_object_sigma`` cells telling each cell which part
    # of the object lies on it) joins the dynamics prior's input. PushT's T: README, "The block's pose".
    proprio_object_pose: list[int] = field(default_factory=list)
    proprio_object_sigma: float = 1.5
    # Roll the proprio out one env step at a time (``object_pose.StepwiseObjectDynamics``): the body by a
    # linear map of its state and action, the object by an MLP of the body's move seen from the object.
    # It then predicts the whole proprio (no proprio MLP is built); needs an object pose, no glimpse.
    proprio_object_stepwise: bool = False
    # The stepwise body's linear map solved by least squares on the data's consecutive states before the
    # world model trains, and then frozen: PushT's agent is exactly linear per step
    # (``StepwiseObjectDynamics.fit_body``), the Wall's agent wherever no wall stops it
    # (``StepwiseBodyDynamics.fit_free``, on the transitions that follow the linear step).
    proprio_body_fit: bool = False
    # The body alone rolled out one env step at a time (``proprio.StepwiseBodyDynamics``, no object): a
    # linear map of its state and action times a gate per proprio entry read from a glimpse where the body
    # is at each step (``proprio_glimpse`` cells, or pixels with ``proprio_glimpse_pixels``). It replaces
    # the proprio MLP and reads the newest state only (``proprio_history_frames`` does not apply); needs
    # the body's image position.
    proprio_body_stepwise: bool = False
    # The stepwise body's glimpse reads the newest history frame, decoded from its latents, at points one
    # pixel apart (``proprio_glimpse`` pixels) instead of the latent grid one cell apart: where a wall's
    # edge lies to the pixel, which an 8-pixel cell blurs.
    proprio_glimpse_pixels: bool = False
    # With the pixel glimpse: the body's own picture, a disc of this many pixels round its position in the
    # newest frame, is painted over with the frame's median colour (its floor) before the glimpse reads it
    # (0 = off). Why: the view is that one frame for every step of the chunk, so the glimpse sees the body's
    # own disc while the body is near where it was drawn, and the floor once it has moved on. Measured: it
    # flattens the gate's step-to-step pattern; the gate's 8% shortfall in free space came from the windows
    # past an episode's end instead (``future_valid``; README, "Proprioception on the Wall").
    proprio_glimpse_hide_body: float = 0.0
    # The stepwise body may also slide: a move the action did not command, read from the same glimpse and
    # let through as far as a gate is closed (0.7% of it where the gates are open; ``StepwiseBodyDynamics``).
    # Why: at a door's corner the Wall pushes the agent out along the line from the corner to its centre,
    # a move along an axis with no commanded motion, which a gate (it only shortens the commanded move)
    # cannot draw.
    proprio_body_slide: bool = False
    # The proprio MLPs learn in every step whose batch has the future proprio, not only in the
    # forward-dynamics ones (always so with an object pose).
    proprio_every_step: bool = False
    # The actions are image positions normalised like the frame (PushT's targets): the object's MLP then
    # sees them from the object.
    actions_image_xy: bool = False
    # transformer
    width: int = 128
    depth: int = 4
    heads: int = 4
    mlp_ratio: float = 4.0
    action_embed_dim: int = 16
    # heads
    video_head_width: int = 128
    video_head_depth: int = 3
    action_head_width: int = 128
    action_head_depth: int = 3
    action_pool_channels: int = 64
    distance_head_width: int = 128
    latent_distance_channels: int = 64
    # How the latent-distance head compares a frame with a goal: "pair" runs a conv net on the two
    # latent grids side by side; "metric" embeds each grid alone and returns the Euclidean distance of
    # the embeddings (HILP's form: symmetric, zero at the goal, obeys the triangle inequality, so a
    # shortest-path fit cannot leave isolated dips; see LatentDistanceHead / MetricDistanceHead).
    latent_distance_form: str = "pair"
    latent_distance_embed: int = 32
    # diffusion
    train_timesteps: int = 1000
    sample_steps: int = 4
    prediction_type: str = "v_prediction"
    temperature: float = 1.0
    eta: float = 0.0
    # Each masked token / action is noised this many times per step (MAR's diffusion_batch_mul): the
    # heads are cheap next to the backbone, so extra noise draws lower the loss variance for little cost.
    diffusion_batch_mul: int = 1
    # The video loss of a token where the current or the target frame shows something other than the
    # empty scene (a token farther than video_foreground_threshold, in latent units, from the empty
    # scene's token: the agent, the wall) counts (1 + video_foreground_weight) times. The agent is one
    # token in sixteen; a still agent pressed into a wall has a zero residual like the background, so
    # a weight on changing tokens would not see it (0 = UVA's plain mean).
    video_foreground_weight: float = 0.0
    video_foreground_threshold: float = 3.0
    # masked multi-task training
    goal_dropout: float = 0.1
    # With this probability an item's history is its current frame repeated (as at an episode start),
    # so the model - and temporal_distance, which scores single frames - is trained for that case.
    static_history_prob: float = 0.05
    mode_weights: dict[str, float] = field(default_factory=_default_mode_weights)
    mask_ratio_mean: float = 1.0
    mask_ratio_std: float = 0.25
    mask_ratio_min: float = 0.7
    mask_ratio_max: float = 1.0
    distance_loss_weight: float = 0.25
    # Expectile of the distance regression: hindsight step counts over-estimate the shortest way (a
    # random walk takes long to get anywhere), so an expectile below 0.5 fits their lower envelope,
    # the way the better trajectories in the data went. Measured (latent distance head alone, Wall,
    # 1500 steps): Spearman with the routed distance 0.82 at 0.5 (plain MSE), 0.89 at 0.1, 0.91 at 0.05.
    distance_expectile: float = 0.05
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)

    def __post_init__(self):
        if isinstance(self.tokenizer, dict):
            self.tokenizer = TokenizerConfig.from_dict(self.tokenizer)
        self.action_low = [float(v) for v in _as_list("action_low", self.action_low)]
        self.action_high = [float(v) for v in _as_list("action_high", self.action_high)]
        self.mode_weights = dict(self.mode_weights)
        for name in ("proprio_low", "proprio_high"):
            setattr(self, name, [float(v) for v in _as_list(name, getattr(self, name))])
        for name in ("proprio_image_xy", "proprio_state_indices", "proprio_object_pose"):
            setattr(self, name, list(_as_list(name, getattr(self, name))))
        self.validate()

    def validate(self) -> None:
        for name in (
            "action_dim", "image_size", "n_history", "n_future", "frame_stride", "patch_size", "width", "depth",
            "heads", "action_embed_dim", "video_head_width", "video_head_depth", "action_head_width",
            "action_head_depth", "action_pool_channels", "distance_head_width", "latent_distance_channels", "latent_distance_embed", "train_timesteps", "sample_steps", "diffusion_batch_mul",
        ):
            _positive_int(name, getattr(self, name))
        _require(isinstance(self.env_name, str), f"env_name is {self.env_name!r}; expected a string")
        _require(
            len(self.action_low) == self.action_dim and len(self.action_high) == self.action_dim,
            f"action_low/action_high have {len(self.action_low)}/{len(self.action_high)} entries; expected "
            f"action_dim={self.action_dim} each",
        )
        _require(
            all(math.isfinite(lo) and math.isfinite(hi) and lo < hi for lo, hi in zip(self.action_low, self.action_high)),
            f"action bounds low={self.action_low} high={self.action_high}; expected finite values with low < high",
        )
        # UVA pairs history frame i with future frame i inside one joint token.
        _require(
            self.n_history == self.n_future,
            f"n_history={self.n_history} and n_future={self.n_future}; expected them equal (history frame i "
            "is fused with future frame i in the joint latent)",
        )
        _require(
            self.tokenizer.image_size == self.image_size,
            f"tokenizer.image_size={self.tokenizer.image_size} but image_size={self.image_size}; expected equal",
        )
        _require(
            self.tokenizer.latent_size % self.patch_size == 0,
            f"latent size {self.tokenizer.latent_size} is not divisible by patch_size {self.patch_size}",
        )
        _require(self.width % self.heads == 0, f"width {self.width} is not divisible by heads {self.heads}")
        _number_in("mlp_ratio", self.mlp_ratio, 0.25, 64.0)
        _require(
            self.sample_steps <= self.train_timesteps,
            f"sample_steps={self.sample_steps}; expected at most train_timesteps={self.train_timesteps}",
        )
        _require(isinstance(self.action_warp_radius, int) and not isinstance(self.action_warp_radius, bool)
                 and 0 <= self.action_warp_radius <= 8,
                 f"action_warp_radius is {self.action_warp_radius!r}; expected an integer in [0, 8] (latent cells)")
        for name, high in (("dynamics_prior_width", 1024), ("dynamics_prior_blocks", 16)):
            value = getattr(self, name)
            _require(isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= high,
                     f"{name} is {value!r}; expected an integer in [0, {high}]")
        _number_in("dynamics_prior_loss_weight", self.dynamics_prior_loss_weight, 0.0, 1e4)
        _require(isinstance(self.dynamics_prior_frames, int) and not isinstance(self.dynamics_prior_frames, bool)
                 and 1 <= self.dynamics_prior_frames <= self.n_history,
                 f"dynamics_prior_frames is {self.dynamics_prior_frames!r}; expected an integer in [1, n_history="
                 f"{self.n_history}]")
        _require(isinstance(self.dynamics_prior_coords, bool),
                 f"dynamics_prior_coords is {self.dynamics_prior_coords!r}; expected true or false")
        self._validate_proprio()
        _require(self.action_warp_kernel in WARP_KERNELS,
                 f"action_warp_kernel is {self.action_warp_kernel!r}; expected one of {WARP_KERNELS}")
        _require(isinstance(self.local_mixing, int) and not isinstance(self.local_mixing, bool)
                 and 0 <= self.local_mixing <= 8, f"local_mixing is {self.local_mixing!r}; expected an integer in [0, 8]")
        _require(isinstance(self.fuse_current_frame, bool),
                 f"fuse_current_frame is {self.fuse_current_frame!r}; expected true or false")
        _require(self.latent_distance_form in LATENT_DISTANCE_FORMS,
                 f"latent_distance_form is {self.latent_distance_form!r}; expected one of {LATENT_DISTANCE_FORMS}")
        _require(self.video_target in VIDEO_TARGETS,
                 f"video_target is {self.video_target!r}; expected one of {VIDEO_TARGETS}")
        _require(self.action_context in ACTION_CONTEXTS,
                 f"action_context is {self.action_context!r}; expected one of {ACTION_CONTEXTS}")
        _require(
            self.prediction_type in PREDICTION_TYPES,
            f"prediction_type is {self.prediction_type!r}; expected one of {PREDICTION_TYPES}",
        )
        _number_in("temperature", self.temperature, 0.0, 10.0)
        _number_in("eta", self.eta, 0.0, 1.0)
        _number_in("goal_dropout", self.goal_dropout, 0.0, 1.0)
        _number_in("static_history_prob", self.static_history_prob, 0.0, 1.0)
        _number_in("distance_loss_weight", self.distance_loss_weight, 0.0, 1e3)
        _number_in("video_foreground_weight", self.video_foreground_weight, 0.0, 1e4)
        _number_in("video_foreground_threshold", self.video_foreground_threshold, 0.0, 1e4)
        _require(
            isinstance(self.distance_expectile, (int, float)) and 0.0 < self.distance_expectile < 1.0,
            f"distance_expectile is {self.distance_expectile!r}; expected a number in (0, 1)",
        )
        _require(
            isinstance(self.mode_weights, dict) and set(self.mode_weights) == set(MODE_NAMES),
            f"mode_weights has keys {sorted(self.mode_weights) if isinstance(self.mode_weights, dict) else self.mode_weights!r}; "
            f"expected exactly {list(MODE_NAMES)}",
        )
        for name, w in self.mode_weights.items():
            _number_in(f"mode_weights[{name!r}]", w, 0.0, 1e6)
        _require(sum(self.mode_weights.values()) > 0, "mode_weights are all zero; expected at least one positive weight")
        _number_in("mask_ratio_min", self.mask_ratio_min, 0.0, 1.0)
        _number_in("mask_ratio_max", self.mask_ratio_max, 0.0, 1.0)
        _number_in("mask_ratio_mean", self.mask_ratio_mean, -10.0, 10.0)
        _number_in("mask_ratio_std", self.mask_ratio_std, 1e-6, 10.0)
        _require(
            self.mask_ratio_min < self.mask_ratio_max,
            f"mask ratio range [{self.mask_ratio_min}, {self.mask_ratio_max}]; expected min < max",
        )

    # derived sizes
    def _validate_proprio(self) -> None:
        p = self.proprio_dim
        _require(isinstance(p, int) and not isinstance(p, bool) and 0 <= p <= 64,
                 f"proprio_dim is {p!r}; expected an integer in [0, 64] (0 = no proprioception)")
        _require(len(self.proprio_low) == p and len(self.proprio_high) == p,
                 f"proprio_low/proprio_high have {len(self.proprio_low)}/{len(self.proprio_high)} entries; expected "
                 f"proprio_dim={p} each")
        _require(all(math.isfinite(lo) and math.isfinite(hi) and lo < hi
                     for lo, hi in zip(self.proprio_low, self.proprio_high)),
                 f"proprio bounds low={self.proprio_low} high={self.proprio_high}; expected finite values with low < high")
        xy = self.proprio_image_xy
        _require(_index_list(xy) and (len(xy) == 0 or (len(xy) == 2 and len(set(xy)) == 2 and all(0 <= i < p for i in xy))),
                 f"proprio_image_xy is {xy!r}; expected [] or two distinct proprio indices in [0, {p}) (image x, y)")
        _require(not xy or self.dynamics_prior_width > 0,
                 "proprio_image_xy needs the dynamics prior (its map joins the prior's input); expected "
                 "dynamics_prior_width > 0")
        idx = self.proprio_state_indices
        _require(_index_list(idx) and len(idx) in (0, p) and all(i >= 0 for i in idx),
                 f"proprio_state_indices is {idx!r}; expected [] or {p} env-state indices >= 0")
        _require(isinstance(self.proprio_width, int) and not isinstance(self.proprio_width, bool)
                 and 1 <= self.proprio_width <= 4096, f"proprio_width is {self.proprio_width!r}; expected an integer in [1, 4096]")
        _number_in("proprio_loss_weight", self.proprio_loss_weight, 0.0, 1e4)
        _number_in("proprio_map_sigma", self.proprio_map_sigma, 0.05, 16.0)
        _require(isinstance(self.proprio_context, bool), f"proprio_context is {self.proprio_context!r}; expected true or false")
        _require(not self.proprio_context or p > 0, "proprio_context needs proprioception; expected proprio_dim > 0 "
                 "(uva-plan train --proprio)")
        _number_in("proprio_context_dropout", self.proprio_context_dropout, 0.0, 1.0)
        k = self.proprio_history_frames
        _require(isinstance(k, int) and not isinstance(k, bool) and 0 <= k <= self.n_history,
                 f"proprio_history_frames is {k!r}; expected an integer in [0, n_history={self.n_history}] (0 = all)")
        g = self.proprio_glimpse
        _require(isinstance(g, int) and not isinstance(g, bool) and 0 <= g <= 8,
                 f"proprio_glimpse is {g!r}; expected an integer in [0, 8] (latent cells, or pixels with "
                 "proprio_glimpse_pixels; 0 = off)")
        _require(g == 0 or len(xy) == 2, "proprio_glimpse needs proprio_image_xy (the glimpse is centred on the "
                 "body's image position); expected proprio_glimpse=0 or a proprio with an image position")
        pose = self.proprio_object_pose
        _require(_index_list(pose) and (len(pose) == 0 or (len(pose) == 3 and len(set(pose)) == 3
                                                           and all(0 <= i < p for i in pose) and not set(pose) & set(xy))),
                 f"proprio_object_pose is {pose!r}; expected [] or three distinct proprio indices in [0, {p}) (the "
                 f"object's x, y, angle), none of them the body's proprio_image_xy {xy}")
        _require(not pose or self.dynamics_prior_width > 0,
                 "proprio_object_pose needs the dynamics prior (its pose map joins the prior's input); expected "
                 "dynamics_prior_width > 0")
        _number_in("proprio_object_sigma", self.proprio_object_sigma, 0.05, 16.0)
        _require(isinstance(self.proprio_object_stepwise, bool), "proprio_object_stepwise is "
                 f"{self.proprio_object_stepwise!r}; expected true or false")
        _require(not self.proprio_object_stepwise or (pose and len(xy) == 2 and g == 0),
                 "proprio_object_stepwise needs an object pose (proprio_object_pose), the body's image position "
                 "(proprio_image_xy) and no glimpse (proprio_glimpse=0): it rolls the object out from the body")
        _require(isinstance(self.proprio_body_fit, bool), f"proprio_body_fit is {self.proprio_body_fit!r}; expected "
                 "true or false")
        _require(not self.proprio_body_fit or self.proprio_object_stepwise or self.proprio_body_stepwise,
                 "proprio_body_fit solves a stepwise body's linear step; expected proprio_object_stepwise=true or "
                 "proprio_body_stepwise=true")
        _require(isinstance(self.proprio_body_stepwise, bool), "proprio_body_stepwise is "
                 f"{self.proprio_body_stepwise!r}; expected true or false")
        _require(not self.proprio_body_stepwise or (len(xy) == 2 and not pose),
                 "proprio_body_stepwise needs the body's image position (proprio_image_xy) and no object pose "
                 "(with one, use proprio_object_stepwise)")
        _require(isinstance(self.proprio_glimpse_pixels, bool), "proprio_glimpse_pixels is "
                 f"{self.proprio_glimpse_pixels!r}; expected true or false")
        _require(not self.proprio_glimpse_pixels or (self.proprio_body_stepwise and g > 0),
                 "proprio_glimpse_pixels needs the stepwise body (proprio_body_stepwise) and a glimpse "
                 "(proprio_glimpse > 0, in pixels then)")
        _number_in("proprio_glimpse_hide_body", self.proprio_glimpse_hide_body, 0.0, 64.0)
        _require(isinstance(self.proprio_body_slide, bool) and (not self.proprio_body_slide or self.proprio_body_stepwise),
                 f"proprio_body_slide is {self.proprio_body_slide!r}; expected false, or true with proprio_body_stepwise")
        _require(not self.proprio_glimpse_hide_body or self.proprio_glimpse_pixels,
                 "proprio_glimpse_hide_body paints the body out of the pixel glimpse's frame; expected "
                 "proprio_glimpse_pixels=true")
        _require(isinstance(self.proprio_every_step, bool), f"proprio_every_step is {self.proprio_every_step!r}; "
                 "expected true or false")
        _require(isinstance(self.actions_image_xy, bool), f"actions_image_xy is {self.actions_image_xy!r}; expected "
                 "true or false")
        _require(not self.actions_image_xy or self.action_dim == 2,
                 f"actions_image_xy needs 2-D actions (image x, y); this model's action_dim is {self.action_dim}")

    @property
    def chunk_len(self) -> int:
        """Actions per chunk ``L``: one ``frame_stride`` group per future frame."""
        return self.n_future * self.frame_stride

    @property
    def latent_size(self) -> int:
        return self.tokenizer.latent_size

    @property
    def latent_channels(self) -> int:
        return self.tokenizer.latent_channels

    @property
    def grid_size(self) -> int:
        """Tokens per side of one frame's token grid."""
        return self.latent_size // self.patch_size

    @property
    def tokens_per_frame(self) -> int:
        return self.grid_size**2

    @property
    def token_dim(self) -> int:
        return self.patch_size**2 * self.latent_channels

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["tokenizer"] = self.tokenizer.to_dict()
        return d

    @classmethod
    def from_dict(cls, data: Any) -> UVAConfig:
        return _from_dict(cls, data, "model config")


def _index_list(value: Any) -> bool:
    return all(isinstance(i, int) and not isinstance(i, bool) for i in value)


def _as_list(name: str, value: Any) -> list:
    try:
        return list(value)
    except TypeError:
        raise WorldModelError(f"{name} is {value!r}; expected a list of numbers") from None


def _from_dict(cls, data: Any, what: str):
    if not isinstance(data, dict):
        raise WorldModelError(f"{what} is a {type(data).__name__}; expected a JSON object")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise WorldModelError(f"{what} has unknown keys {unknown}; expected only {sorted(names)}")
    try:
        return cls(**data)
    except WorldModelError:
        raise
    except (TypeError, ValueError) as exc:
        raise WorldModelError(f"{what} is invalid ({exc}); expected the fields of {cls.__name__}") from None


def _preset(defaults: dict[str, Any], tokenizer: dict[str, Any]):
    def make(action_low, action_high, env_name: str = "", **overrides) -> UVAConfig:
        low, high = list(action_low), list(action_high)
        params = {**defaults, **overrides}
        known = {f.name for f in dataclasses.fields(UVAConfig)} - {"action_low", "action_high", "action_dim", "env_name"}
        unknown = sorted(set(params) - known)
        if unknown:
            raise WorldModelError(f"unknown model option(s) {unknown}; expected some of {sorted(known)}")
        tok_overrides = params.pop("tokenizer", {})
        if isinstance(tok_overrides, TokenizerConfig):
            tok_overrides = tok_overrides.to_dict()
        tok = {**tokenizer, "image_size": params.get("image_size", 64), **tok_overrides}
        return UVAConfig(
            action_low=low, action_high=high, action_dim=len(low), env_name=env_name,
            tokenizer=TokenizerConfig(**tok), **params,
        )

    return make


# tiny: tests (< 1M parameters, a few hundred steps in < 2 min on 2 CPU cores).
# small: the CPU default (~80 tokens of width 128, 4 layers; ~20 min to useful quality).
# base: for GPUs.
CONFIGS = {
    "tiny": _preset(
        dict(width=64, depth=2, heads=2, action_embed_dim=8, video_head_width=64, video_head_depth=2,
             action_head_width=64, action_head_depth=2, action_pool_channels=32, distance_head_width=64,
             latent_distance_channels=32),
        dict(channels=(8, 16, 16)),
    ),
    "small": _preset(dict(), dict(channels=(16, 32, 32))),
    "base": _preset(
        dict(width=512, depth=8, heads=8, action_embed_dim=32, video_head_width=512, video_head_depth=3,
             action_head_width=512, action_head_depth=3, action_pool_channels=128, distance_head_width=256,
             latent_distance_channels=128, diffusion_batch_mul=4),
        dict(channels=(64, 128, 128)),
    ),
}


def make_config(name: str, action_low, action_high, env_name: str = "", **overrides) -> UVAConfig:
    """``CONFIGS[name](...)`` with a clear error for an unknown preset name."""
    if name not in CONFIGS:
        raise WorldModelError(f"unknown config {name!r}; expected one of {sorted(CONFIGS)}")
    return CONFIGS[name](action_low, action_high, env_name, **overrides)
