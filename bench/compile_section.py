"""The compile section: ComfyUI's TorchCompileModel on the same edits.

Compile time is the first call's time minus the eager median; re-traces are dynamo graphs
added by a second AddLayer with the same number of layers (other object, prompt and mask).
On the CPU ComfyUI's default sub-quadratic attention re-traces stock blocks whenever the
free memory changes (it reads it with psutil): CPU re-trace counts include that.
"""

from __future__ import annotations

from dataclasses import replace

from . import ops, timing


def _graphs() -> int:
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


def _breaks() -> int:
    from torch._dynamo.utils import counters

    return int(sum(counters["graph_break"].values()))


def _second_edit(work: ops.Workload, memory):
    """AddLayer onto `memory` of another object than ops.add_layer adds (same layer count)."""
    objects = work.scene.chain_objects
    obj = objects[len(memory.layers) % len(objects)]
    return lambda: work.h.layer_ops.add_layer(
        memory, work.model, work.cond(obj["class"]), work.mask(obj), seed=work.seed + 7
    )


def compile_section(
    work: ops.Workload, clock: timing.Clock, background, top: int, backend: str, rounds: int
) -> dict:
    """Compiled txt2img and AddLayer(top): first-call time, medians, graphs and re-traces."""
    import torch._dynamo
    from comfy_api.torch_helpers import set_torch_compile_wrapper

    torch._dynamo.reset()
    compiled = work.model.clone()
    set_torch_compile_wrapper(model=compiled, backend=backend)
    cwork = replace(work, model=compiled)
    memory = ops.stacked(cwork, background, top)
    table = {"txt2img": ops.txt2img(cwork), f"add_layer_{top}": ops.add_layer(cwork, memory)}
    first = {name: clock.run(fn)[0]["wall"] for name, fn in table.items()}
    graphs = _graphs()
    out = timing.interleaved(clock, table, rounds, 0)
    steady = _graphs()
    clock.run(_second_edit(cwork, memory))
    return {
        "backend": backend,
        "first_call_s": first,
        "graphs_after_first_calls": graphs,
        "retraces_in_timed_rounds": steady - graphs,
        "retraces_second_edit": _graphs() - steady,
        "graph_breaks": _breaks(),
        **out,
    }
