"""Which prompt each image token attends to under MQD, fixed for a whole sampling run.

Owners follow mask order: the newest layer owns its tokens, each older layer keeps only
what no newer mask covers, the background (owner 0) takes the rest. Tokens are sorted by
owner once per run so that every group is one contiguous segment: the cross-attention then
works on slices (views) instead of scattered index sets.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from .memory import Layer


def token_owners(token_masks: list[torch.Tensor]) -> torch.Tensor:
    """Owner index per token (row-major over the token grid).

    `token_masks` are the layers above the background, oldest first; owner i >= 1 means
    token_masks[i - 1]. Later masks overwrite earlier ones: newest first in mask order.
    """
    if not token_masks:
        raise ValueError("token_owners needs at least one mask to know the grid size")
    owners = torch.zeros(token_masks[0].numel(), dtype=torch.long)
    for i, m in enumerate(token_masks, start=1):
        owners[m.reshape(-1)] = i
    return owners


@dataclass(frozen=True)
class RoutingPlan:
    """A permutation that groups tokens by owner, and each group's segment in it."""

    permutation: torch.Tensor  # sorted position -> original token index
    inverse: torch.Tensor  # original token index -> sorted position
    segments: tuple[tuple[int, int, int], ...]  # (owner, start, end) over the sorted order

    @staticmethod
    def from_owners(owners: torch.Tensor) -> RoutingPlan:
        owners = owners.reshape(-1).long()
        perm = torch.sort(owners, stable=True).indices
        inverse = torch.empty_like(perm)
        inverse[perm] = torch.arange(perm.numel())
        counts = torch.bincount(owners)
        segments = []
        start = 0
        for owner, count in enumerate(counts.tolist()):
            if count:
                segments.append((owner, start, start + count))
                start += count
        return RoutingPlan(perm, inverse, tuple(segments))

    @property
    def is_single_group(self) -> bool:
        return len(self.segments) == 1

    def to(self, device: torch.device) -> RoutingPlan:
        return RoutingPlan(self.permutation.to(device), self.inverse.to(device), self.segments)

    def owners(self) -> torch.Tensor:
        """Owner index per token in the original (row-major) order: the inverse of from_owners."""
        owners = torch.empty(self.permutation.numel(), dtype=torch.long)
        for owner, start, end in self.segments:
            owners[self.permutation[start:end].cpu()] = owner
        return owners


def layer_routing(layers: Sequence[Layer]) -> tuple[RoutingPlan, list[torch.Tensor]]:
    """The plan and the prompts (indexed by owner) MQD uses for these layers, background first.

    Owner 0 is the background (layers[0]); owner i is layers[i]; the newest mask wins.
    """
    if len(layers) > 1:
        owners = token_owners([layer.token_mask for layer in layers[1:]])
    else:
        owners = torch.zeros(layers[0].token_mask.numel(), dtype=torch.long)
    return RoutingPlan.from_owners(owners), [layer.positive.embedding for layer in layers]
