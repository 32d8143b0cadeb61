"""UVA's five masked training modes as a table, the mask-ratio law and the future-token masks.

| mode              | future tokens          | history | actions | losses         |
|-------------------|------------------------|---------|---------|----------------|
| video_prediction  | masked at ratio r      | given   | no      | video          |
| forward_dynamics  | masked at ratio r      | given   | yes     | video          |
| policy            | all masked             | given   | no      | action         |
| inverse_dynamics  | all visible            | given   | no      | action         |
| joint             | masked at ratio r      | given   | no      | video + action |

r ~ N(1, 0.25) truncated to [0.7, 1] (configurable); the SAME spatial positions are masked in every
future frame so a token cannot be copied from the same place in a neighbouring frame. The distance
loss is added in every mode whenever a goal is given.

Deviation from UVA's code: UVA masks the history in inverse dynamics. Here the history stays visible,
because with position-target actions (PushT's absolute targets) the action at a step is not determined
by the frames after it alone: the frame the motion starts from is needed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from world_model.config import MODE_NAMES, UVAConfig
from world_model.errors import WorldModelError

PARTIAL, ALL_MASKED, VISIBLE = "partial", "all_masked", "visible"


@dataclass(frozen=True)
class Mode:
    """What one training mode shows the model and which losses it trains."""

    name: str
    future: str  # PARTIAL | ALL_MASKED | VISIBLE
    actions_given: bool
    video_loss: bool
    action_loss: bool
    # Predicts actions from the goal alone (no future frames shown): its targets may be the goal-reaching
    # relabel of the recorded chunk (``goal_actions``), since nothing it sees shows the recorded future.
    goal_directed: bool = False


MODES: dict[str, Mode] = {
    m.name: m
    for m in (
        Mode("video_prediction", PARTIAL, actions_given=False, video_loss=True, action_loss=False),
        Mode("forward_dynamics", PARTIAL, actions_given=True, video_loss=True, action_loss=False),
        Mode("policy", ALL_MASKED, actions_given=False, video_loss=False, action_loss=True, goal_directed=True),
        Mode("inverse_dynamics", VISIBLE, actions_given=False, video_loss=False, action_loss=True),
        Mode("joint", PARTIAL, actions_given=False, video_loss=True, action_loss=True),
    )
}
assert tuple(MODES) == MODE_NAMES
# The modes a model with ``proprio_context`` shows the current proprio to: those a robot runs knowing its
# own state. Inverse dynamics and video prediction label and predict action-free videos, which have none.
PROPRIO_CONTEXT_MODES = ("forward_dynamics", "policy", "joint")


@dataclass(frozen=True)
class MaskLaw:
    """Truncated normal N(mean, std) on [low, high] for the fraction of masked spatial positions."""

    mean: float = 1.0
    std: float = 0.25
    low: float = 0.7
    high: float = 1.0

    @classmethod
    def from_config(cls, config: UVAConfig) -> MaskLaw:
        return cls(config.mask_ratio_mean, config.mask_ratio_std, config.mask_ratio_min, config.mask_ratio_max)


def _rand(shape, generator, device) -> torch.Tensor:
    gen_device = generator.device if generator is not None else device
    return torch.rand(shape, generator=generator, device=gen_device).to(device)


def sample_mask_ratios(n: int, law: MaskLaw, generator=None, device="cpu") -> torch.Tensor:
    """``[n]`` ratios from the truncated normal by inverse-CDF sampling: written here (not scipy's
    truncnorm) so the draw follows the caller's torch generator and stays reproducible."""
    a = torch.special.ndtr(torch.tensor((law.low - law.mean) / law.std, dtype=torch.float64))
    b = torch.special.ndtr(torch.tensor((law.high - law.mean) / law.std, dtype=torch.float64))
    u = a + (b - a) * _rand((n,), generator, "cpu").double()
    r = law.mean + law.std * torch.special.ndtri(u.clamp(1e-12, 1 - 1e-12))
    return r.clamp(law.low, law.high).float().to(device)


def random_orders(batch: int, n_spatial: int, generator=None, device="cpu") -> torch.Tensor:
    """A random permutation of the spatial positions per item ``[B, S]`` (MAR's unmasking order)."""
    return torch.argsort(_rand((batch, n_spatial), generator, device), dim=1)


def mask_first(orders: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Bool ``[B, S]``: True at the first ``counts[b]`` positions of each item's order."""
    b, s = orders.shape
    rank = torch.empty_like(orders)
    rank.scatter_(1, orders, torch.arange(s, device=orders.device).expand(b, s))
    return rank < counts.view(b, 1)


def future_mask(mode: Mode, batch: int, n_future: int, n_spatial: int, law: MaskLaw, generator=None,
                device="cpu") -> torch.Tensor:
    """Bool ``[B, Tf, S]`` (True = masked) for one mode; the same positions in every future frame."""
    if mode.future == ALL_MASKED:
        spatial = torch.ones(batch, n_spatial, dtype=torch.bool, device=device)
    elif mode.future == VISIBLE:
        spatial = torch.zeros(batch, n_spatial, dtype=torch.bool, device=device)
    else:
        ratios = sample_mask_ratios(batch, law, generator, device)
        counts = torch.ceil(ratios * n_spatial).long().clamp(1, n_spatial)
        spatial = mask_first(random_orders(batch, n_spatial, generator, device), counts)
    return spatial.unsqueeze(1).expand(batch, n_future, n_spatial)


def resolve_mode(mode, weights: dict[str, float], generator=None) -> Mode:
    """A given mode (name or Mode) or, for None, one drawn with the configured weights."""
    if mode is None:
        w = torch.tensor([float(weights[name]) for name in MODE_NAMES])
        gen_device = generator.device if generator is not None else "cpu"
        idx = int(torch.multinomial(w.to(gen_device), 1, generator=generator))
        return MODES[MODE_NAMES[idx]]
    if isinstance(mode, Mode):
        return mode
    if mode not in MODES:
        raise WorldModelError(f"unknown mode {mode!r}; expected one of {list(MODE_NAMES)} or None")
    return MODES[mode]


def cosine_mask_counts(num_iters: int, n_spatial: int) -> list[int]:
    """MAR's cosine unmasking schedule: how many positions stay masked after each of ``num_iters``
    passes (strictly decreasing, ending at 0)."""
    counts, masked = [], n_spatial
    for i in range(num_iters):
        keep = int(math.floor(n_spatial * math.cos(math.pi / 2.0 * (i + 1) / num_iters)))
        keep = 0 if i == num_iters - 1 else max(1, min(masked - 1, keep))
        counts.append(keep)
        masked = keep
    return counts
