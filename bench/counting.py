"""Dispatched torch ops and FLOPs of a piece of work: the CPU's proxy for GPU launch cost.

On a GPU the sampling loop is launch-bound (issue 13): every aten op that reaches a kernel
costs CPU time whatever its size. Counting the ops a run dispatches (TorchDispatchMode, below
autograd and every Python wrapper) and its FLOPs (torch.utils.flop_counter) gives ratios that
a CPU can measure exactly and that carry over to the GPU.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
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
    "reshape",
    "split_with_sizes",
    "lift_fresh",
    "_to_copy_view",
}


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
        self.counts[name] += 1
        if "scaled_dot_product" in name and not name.endswith("backward"):
            q, k, v = (t.shape for t in args[:3])
            self.attention_flops += sdpa_flop_count(q, k, v)
        return func(*args, **(kwargs or {}))


def _non_attention_flops(mode: FlopCounterMode) -> int:
    counts = mode.get_flop_counts().get("Global", {})
    return sum(n for op, n in counts.items() if "scaled_dot_product" not in str(op))


@dataclass
class Count:
    """What one call of a function dispatched."""

    ops: int
    kernel_ops: int  # ops that are not views (each launches work on a GPU)
    flops: int
    by_op: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict:
        top = dict(sorted(self.by_op.items(), key=lambda kv: -kv[1])[:15])
        return {"ops": self.ops, "kernel_ops": self.kernel_ops, "flops": self.flops, "top_ops": top}


def count(fn: Callable[[], object], flops: bool = True) -> tuple[Count, object]:
    """Run `fn` once under the counters; (its counts, its result)."""
    counter = OpCounter()
    flop_mode = FlopCounterMode(display=False) if flops else None
    with torch.inference_mode():
        if flop_mode is not None:
            with flop_mode, counter:
                out = fn()
        else:
            with counter:
                out = fn()
    total = sum(counter.counts.values())
    kernels = sum(n for name, n in counter.counts.items() if name not in VIEW_OPS)
    n_flops = counter.attention_flops + (_non_attention_flops(flop_mode) if flop_mode else 0)
    return Count(total, kernels, int(n_flops), dict(counter.counts)), out


def ratio(a: Count, b: Count) -> dict:
    """a over b, per measure."""
    return {
        "ops": a.ops / b.ops,
        "kernel_ops": a.kernel_ops / b.kernel_ops,
        "flops": a.flops / b.flops if b.flops else None,
    }
