"""Populations of candidate action sequences `[B, N, H, A]`: how planners put them together (candidates
carried unchanged first, fresh samples after) and how an evaluated one yields its elites, all batched
over the B problems with no per-problem indexing."""

from __future__ import annotations

from dataclasses import dataclass

import torch


def carried_parts(*parts: torch.Tensor | None) -> list[torch.Tensor]:
    """The candidate groups `[B, k, H, A]` a population carries unchanged (a mean, proposals, elites),
    the absent (None) ones left out."""
    return [p for p in parts if p is not None]


def n_candidates(parts: list[torch.Tensor]) -> int:
    return sum(p.shape[1] for p in parts)


def assemble(carried: list[torch.Tensor], sampled: torch.Tensor) -> torch.Tensor:
    """Population [B, N, H, A]: carried candidates first, then the planner's own samples."""
    return torch.cat([*carried, sampled], dim=1) if carried else sampled


def gather_candidates(actions: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """actions [B, N, H, A], index [B, K] -> [B, K, H, A] (one gather, no per-problem indexing)."""
    b, _, h, a = actions.shape
    return actions.gather(1, index[:, :, None, None].expand(b, index.shape[1], h, a))


@dataclass
class Evaluation:
    """One evaluated population, with its elites already selected."""

    actions: torch.Tensor  # [B, N, H, A] the population as evaluated (projected onto the box)
    costs: torch.Tensor  # [B, N]; carries gradients when the call asked for them
    elite_costs: torch.Tensor  # [B, K] ascending; when K == N: all costs, unsorted (no sort paid)
    elite_index: torch.Tensor | None  # [B, K] indices into N; None when K == N

    def elite_actions(self, k: int | None = None) -> torch.Tensor:
        """[B, K, H, A] the elites, best first (only the first k if given)."""
        index = self.elite_index
        if index is None:  # every candidate is an elite: sort now, only when someone asks
            index = torch.argsort(self.elite_costs, dim=1)
        return gather_candidates(self.actions, index if k is None else index[:, :k])


def select_elites(
    costs: torch.Tensor, n_elites: int
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor, torch.Tensor]:
    """costs [B, N] (detached) -> (elite costs [B, K], elite index [B, K] or None when K == N,
    best cost [B], best index [B]). With every candidate an elite (MPPI's default) a min is enough:
    no sort is paid."""
    if n_elites < costs.shape[1]:
        elite_costs, elite_index = torch.topk(costs, n_elites, dim=1, largest=False, sorted=True)
        return elite_costs, elite_index, elite_costs[:, 0], elite_index[:, 0]
    best_cost, best_index = costs.min(dim=1)
    return costs, None, best_cost, best_index
