"""Dispatched torch ops and FLOPs of a piece of work: the CPU's proxy for GPU launch cost.

On a GPU the sampling loop is launch-bound (issue 13): every aten op that reaches a kernel
costs CPU time whatever its size. Counting the ops a run dispatches (TorchDispatchMode, below
autograd and every Python wrapper) and its FLOPs (torch.utils.flop_counter) gives ratios that
a CPU can measure exactly and that carry over to the GPU.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

# Ops that never launch a kernel: views and metadata changes.
VIEW_OPS = {
    "view",
    "_unsafe_view",
    "expand",
    "transpose",
    "t",
    "permute",
    "unsqueeze",
    "squeeze",
    "slice",
    "select",
    "unbind",
    "as_strided",
    "alias",
    "detach",
    "split",
    "chunk",
    "_reshape_alias",
    "split_with_sizes",
    "lift_fresh",
    "_to_copy_view",
}


# Ops that launch a kernel only when they copy: a reshape that cannot be a view, a `to` or
# `contiguous` that is not a no-op. Counted as kernels exactly then (the count sees the op, not
# what it runs inside); the rest are counted under "<name> (no copy)".
MAYBE_COPY_OPS = {"reshape", "flatten", "to", "contiguous", "type_as"}
NO_COPY = " (no copy)"


def _copies(name: str, out, args) -> bool:
    """Did `name` copy its input? (Called inside the dispatch handler: nothing here counts.)"""
    inp = args[0] if args else None
    if out is inp or not isinstance(inp, torch.Tensor) or not isinstance(out, torch.Tensor):
        return False
    if name in ("reshape", "flatten"):
        try:
            inp.view(out.shape)
            return False
        except RuntimeError:
            return True
    return True


def _fused_layout(out: torch.Tensor) -> torch.Tensor:
    """SDPA's result as the fused kernels lay it out ([B, N, H, D] memory seen as [B, H, N, D]):
    CUDA's flash and memory-efficient kernels and the CPU's flash kernel do, so the usual
    transpose + reshape after attention is a view there; the meta kernel returns it contiguous,
    which would count a copy no GPU makes."""
    b, h, n, d = out.shape
    return torch.empty((b, n, h, d), dtype=out.dtype, device=out.device).transpose(1, 2)


class OpCounter(TorchDispatchMode):
    """Counts every aten op dispatched while active, by name, and the FLOPs of attention calls.

    torch's FlopCounterMode counts no attention on the CPU (it sees the fused
    `scaled_dot_product_attention` there and has no formula for it), so it is counted here:
    the same formula FlopCounterMode uses for the CUDA kernels.
    """

    def __init__(self):
        super().__init__()
        self.counts: Counter[str] = Counter()
        self.attention_flops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        out = func(*args, **(kwargs or {}))
        if name == "scaled_dot_product_attention" and isinstance(out, torch.Tensor) \
                and out.is_meta and out.dim() == 4:
            out = _fused_layout(out)
        if name in MAYBE_COPY_OPS and not _copies(name, out, args):
            name += NO_COPY
        self.counts[name] += 1
        # On meta tensors torch runs SDPA's math decomposition, whose matmuls FlopCounterMode
        # counts itself: adding the formula there would count the attention twice.
        if "scaled_dot_product" in name and not name.endswith("backward") and not args[0].is_meta:
            q, k, v = (t.shape for t in args[:3])
            self.attention_flops += sdpa_flop_count(q, k, v)
        return out


def _non_attention_flops(mode: FlopCounterMode) -> int:
    counts = mode.get_flop_counts().get("Global", {})
    return sum(n for op, n in counts.items() if "scaled_dot_product" not in str(op))


@dataclass
class Count:
    """What one call of a function dispatched."""

    ops: int
    kernel_ops: int  # ops that are not views nor no-op copies (each launches work on a GPU)
    flops: int
    by_op: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict:
        top = dict(sorted(self.by_op.items(), key=lambda kv: -kv[1])[:15])
        return {"ops": self.ops, "kernel_ops": self.kernel_ops, "flops": self.flops, "top_ops": top}


class Tally:
    """The running totals of an active count; read them at any point (e.g. in a forward hook)."""

    def __init__(self, counter: OpCounter, flop_mode: FlopCounterMode | None):
        self.counter, self.flop_mode = counter, flop_mode

    def ops(self) -> int:
        return sum(self.counter.counts.values())

    def kernel_ops(self) -> int:
        return sum(n for name, n in self.counter.counts.items()
                   if name not in VIEW_OPS and not name.endswith(NO_COPY))

    def flops(self) -> int:
        extra = _non_attention_flops(self.flop_mode) if self.flop_mode is not None else 0
        return int(self.counter.attention_flops + extra)

    def result(self) -> Count:
        return Count(self.ops(), self.kernel_ops(), self.flops(), dict(self.counter.counts))


@contextmanager
def counting(flops: bool = True) -> Iterator[Tally]:
    """Count every op (and FLOPs) dispatched inside the block, under inference mode."""
    counter = OpCounter()
    flop_mode = FlopCounterMode(display=False) if flops else None
    with torch.inference_mode(), (flop_mode or nullcontext()), counter:
        yield Tally(counter, flop_mode)


def count(fn: Callable[[], object], flops: bool = True) -> tuple[Count, object]:
    """Run `fn` once under the counters; (its counts, its result)."""
    with counting(flops) as tally:
        out = fn()
    return tally.result(), out


def ratio(a: Count, b: Count) -> dict:
    """a over b, per measure."""
    return {
        "ops": a.ops / b.ops,
        "kernel_ops": a.kernel_ops / b.kernel_ops,
        "flops": a.flops / b.flops if b.flops else None,
    }
