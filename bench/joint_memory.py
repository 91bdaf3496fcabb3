"""Bytes a FLUX layer holds and a file holds at the full size (issue 21, item 2), measured as
the PixArt rows are (bench/sections.memory_section): a real chain of AddLayer, every memory
kept alive as ComfyUI's cache keeps it.

A memory's size depends on its shapes only (16 latent channels, the latent's size, model calls,
prompt tokens), not on the model's width, so the small random FLUX (tools/flux_scenes.py) at the
full image size and schedule holds what FLUX.1 dev's memory holds; prompts are T5-shaped,
padded to 256 tokens as ComfyUI pads FLUX's.
"""
from __future__ import annotations

import time

from bench import sections

MB = 1e6


def _row(memory, added: int) -> dict:
    return {"layers_added": added, "layers_in_memory": len(memory.layers),
            "memory_nbytes": memory.nbytes(),
            "memory_assembled_bytes": sections.assembled_bytes(memory)}


def flux_memory(h, size: int, steps: int, added: int = 2, tokens: int = 256) -> dict:
    """Start a memory and add `added` layers with the small FLUX at `size` px, `steps` steps."""
    from tools import flux_scenes, scenes

    model = flux_scenes.build(0)
    cond = lambda seed: flux_scenes.cond(seed, tokens=tokens)  # noqa: E731
    start = time.perf_counter()
    memory = h.layer_ops.start_memory(model, cond(1), cond(2), size, size, seed=42, steps=steps,
                                      cfg=1.0, sampler_name="euler", scheduler="simple")
    kept, rows = [memory], [_row(memory, 0)]
    for i in range(added):
        box = (0.1 + 0.3 * i, 0.1, 0.4 + 0.3 * i, 0.5)
        memory = h.layer_ops.add_layer(memory, model, cond(10 + i), scenes.box_mask(size, *box),
                                       seed=100 + i)
        kept.append(memory)
        rows.append(_row(memory, i + 1))
    held = (rows[-1]["memory_nbytes"] - rows[0]["memory_nbytes"]) / added
    assembled = (rows[-1]["memory_assembled_bytes"] - rows[0]["memory_assembled_bytes"]) / added
    calls, side = memory.top.trajectory.calls, size // 8
    ser = h.serialization
    files = {dtype: len(ser.to_bytes(memory, dtype)) for dtype in ser.TRAJECTORY_DTYPES}
    one = {dtype: len(ser.to_bytes(memory.with_layers(memory.layers[:1]), dtype))
           for dtype in ser.TRAJECTORY_DTYPES}
    return {
        "model": "small random FLUX (shapes of FLUX.1 dev's memory)", "size": size,
        "steps": steps, "model_calls": calls, "latent_channels": 16, "prompt_tokens": tokens,
        "rows": rows, "layers_added": added,
        "held_bytes_per_layer": held, "held_mb_per_layer": held / MB,
        "assembled_bytes_per_layer": assembled, "assembled_mb_per_layer": assembled / MB,
        "expected_bytes_per_layer": sections.expected_layer_bytes(calls, side, side, tokens, 16),
        "file_bytes": {"layers": len(memory.layers), **files},
        "file_bytes_per_layer": {d: (files[d] - one[d]) / added for d in files},
        "wall_s": round(time.perf_counter() - start, 2),
    }
