"""The conditional and unconditional rows of one CFG batch, for attention calls made per set.

MQD routes the conditional rows over every live layer's prompt keys; the negative's rows only
ever see the negative's keys. Attending both sets in one call would make the negative's rows
pay for every layer's keys (hidden by a bias, computed all the same), so the cost would grow
with the stack for both CFG halves (issue 22). Each set gets its own call instead, and the
outputs go back in the batch's row order. ComfyUI batches each chunk's rows together, so the
sets are usually contiguous: then they are slices (views, no copy) and one concatenation joins
them; otherwise index tensors pick them and one index_select restores the order.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

COND = 0  # ComfyUI's marker for a conditional chunk in cond_or_uncond


def conditional_rows(cond_or_uncond, batch: int) -> list[bool] | None:
    """Per batch row: conditional? None when the batch does not split into ComfyUI's chunks."""
    marks = list(cond_or_uncond or [])
    if not marks or batch % len(marks):
        return None
    per = batch // len(marks)
    return [m == COND for m in marks for _ in range(per)]


@dataclass(frozen=True)
class RowSplit:
    """How to take the two row sets out of a batch and put their outputs back."""

    cond: slice | torch.Tensor
    uncond: slice | torch.Tensor
    order: torch.Tensor | None  # non-contiguous sets: batch position of each concatenated row
    cond_first: bool

    @classmethod
    def of(cls, rows: tuple[bool, ...] | list[bool], device) -> RowSplit | None:
        """The split of a batch with both kinds of rows; None when every row is conditional
        (or none is: there is nothing to split)."""
        cond = [b for b, r in enumerate(rows) if r]
        uncond = [b for b, r in enumerate(rows) if not r]
        if not cond or not uncond:
            return None
        if cond == list(range(cond[0], cond[-1] + 1)) and \
                uncond == list(range(uncond[0], uncond[-1] + 1)):
            return cls(slice(cond[0], cond[-1] + 1), slice(uncond[0], uncond[-1] + 1), None,
                       cond[0] < uncond[0])
        order = torch.argsort(torch.tensor(cond + uncond)).to(device)
        return cls(torch.tensor(cond, device=device), torch.tensor(uncond, device=device), order,
                   True)

    def merge(self, cond_out: torch.Tensor, uncond_out: torch.Tensor) -> torch.Tensor:
        """The two sets' outputs [n, ...] back as one batch in row order."""
        if self.order is None:
            return torch.cat([cond_out, uncond_out] if self.cond_first
                             else [uncond_out, cond_out])
        return torch.cat([cond_out, uncond_out]).index_select(0, self.order)


def batched(t: torch.Tensor, rows: int) -> torch.Tensor:
    """A run's [1, ...] keys or values for `rows` rows: the tensor itself for one row (no op
    dispatched: a CFG batch of 2 has one row of each kind), else a broadcast view."""
    return t if t.shape[0] == rows else t.expand(rows, *t.shape[1:])
