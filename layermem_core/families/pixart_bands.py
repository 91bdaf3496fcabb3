"""Bands of consecutive image tokens, each attending only to the prompts of the owners it holds.

With one bias over every owning layer's keys, the conditional rows' cross-attention FLOPs grow
with the stack (issue 22). A band of consecutive tokens (row-major) holds only a few owners, so
it needs only their prompts' keys. The band size depends on the token count alone (the same
compiled shapes for every edit of one size); which keys each band sees is fixed for a run, so
the gather into per-band keys and the bias are built once per run, never per model call: per
call the queries are only viewed as [rows * bands, heads, band, d].

A plan is made only when it is cheaper and its keys fit a budget: every band holds its own copy
of its owners' keys for the run, so bands are taken as large as they can be without needing
more keys, and never hold more than HELD_KEYS_BUDGET times the routed keys per block. When no
band size needs fewer keys than all owners together (one layer everywhere, owners mixed in
every band) or fits the budget, there is no plan and the run keeps one band (the bias over all
routed keys).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .base import round_up


@dataclass(frozen=True)
class BandPlan:
    """Which routed keys each band of tokens attends to (host tensors, built once per run)."""

    band: int  # tokens per band
    count: int  # bands (count * band = tokens)
    keys: int  # keys per band, padded to the bucket
    key_index: torch.Tensor  # [count * keys] position in the routed keys (0 on padding)
    key_owner: torch.Tensor  # [count, keys] owner of each band key, -1 on padding

    def gather(self, t: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """A run's [1, L, F] routed tensor (keys and values side by side) as
        [1, count * keys, F]: each band's own keys in turn (padding repeats key 0, masked by
        the bias). `index` is `key_index` on t's device, moved there once per run, not once
        per block."""
        return t.index_select(1, index)

    def bias(self, token_owner: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """[count, 1, band, keys]: 0 on the keys of a token's owner's prompt, -inf elsewhere."""
        tokens = token_owner.view(self.count, self.band)
        routed = tokens[:, :, None] == self.key_owner[:, None, :]
        return torch.zeros(routed.shape, dtype=dtype).masked_fill_(~routed, float("-inf"))[:, None]


def band_size(tokens: int) -> int:
    """The largest divisor of `tokens` not above its square root: one patch row of a square
    grid (32 at 512 px, 64 at 1024 px), a fixed fraction of a row otherwise."""
    for size in range(math.isqrt(tokens), 0, -1):
        if tokens % size == 0:
            return size
    return 1


HELD_KEYS_BUDGET = 2  # a plan may hold at most this many times the routed keys per block


def plan(owners: list[int], prompt_owner: list[int], lengths: list[int],
         routed_keys: int, bucket: int, budget: float = HELD_KEYS_BUDGET) -> BandPlan | None:
    """The band plan of a run (`owners`: the owner of each token, row-major), or None when no
    band size is worth it: then one band (all owning prompts, padded) is as cheap.

    Bands are whole multiples of `band_size` (patch rows). The plan takes the size whose bands
    need the fewest keys (FLOPs), and of those the largest (fewest keys held): every band holds
    its own copy of its keys, so `count x keys` keys per block stay on the device for the run;
    sizes that would hold more than `budget` times the routed keys are not taken (device
    memory), nor sizes needing as many keys as the routed ones."""
    row = band_size(len(owners))
    rows = len(owners) // row
    starts, at = {}, 0
    for owner, length in zip(prompt_owner, lengths, strict=True):
        starts[owner] = (at, length)
        at += length
    row_owners = [set(owners[r * row:(r + 1) * row]) for r in range(rows)]
    best = None  # (keys, held, rows per band, the bands' owners)
    for per in (d for d in range(1, rows) if rows % d == 0):
        held_by = [sorted(set().union(*row_owners[b:b + per])) for b in range(0, rows, per)]
        keys = round_up(max(sum(starts[o][1] for o in held) for held in held_by), bucket)
        held = keys * len(held_by)
        if keys >= routed_keys or held > budget * routed_keys:
            continue
        if best is None or (keys, held) < best[:2]:
            best = (keys, held, per, held_by)
    if best is None:
        return None
    keys, _, per, per_band = best
    index, key_owner = [], []  # built as host lists: two tensors, not one op per band
    for held in per_band:
        band_index = [i for o in held for i in range(starts[o][0], sum(starts[o]))]
        band_owner = [o for o in held for _ in range(starts[o][1])]
        pad = keys - len(band_index)
        index += band_index + [0] * pad
        key_owner += band_owner + [-1] * pad
    both = torch.tensor([index, key_owner])  # one tensor made, not two
    count = len(per_band)
    return BandPlan(row * per, count, keys, both[0], both[1].view(count, keys))
