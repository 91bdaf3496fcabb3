"""Layer-memory files edited on purpose, for the bad-file tests (unit and host)."""
from __future__ import annotations

import json
import math
import struct
from collections.abc import Callable

import safetensors.torch
import torch


def rewrite(data: bytes, edit_doc: Callable | None = None, edit_meta: Callable | None = None,
            edit_tensors: Callable | None = None) -> bytes:
    """`data` (a saved memory) with its JSON document, its metadata strings and/or its tensors
    edited in place
    by the given callables, written back as a well-formed safetensors file."""
    tensors = safetensors.torch.load(data)
    n = struct.unpack("<Q", data[:8])[0]
    meta = dict(json.loads(data[8:8 + n])["__metadata__"])
    doc = json.loads(meta["layer_memory"])
    if edit_doc:
        edit_doc(doc)
    meta["layer_memory"] = json.dumps(doc)
    if edit_meta:
        edit_meta(meta)
    if edit_tensors:
        edit_tensors(tensors)
    return safetensors.torch.save(tensors, metadata=meta)


def claiming_2_gib(data: bytes, tensor: str, path: str) -> None:
    """Write to `path` a sparse 2 GiB file: `data`'s header, with `tensor` grown to 2 GiB of float32
    (first dimension only, so it no longer fits its place in the document), the others moved
    after it; only the header is real bytes, the rest reads as zeros."""
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    entry = header[tensor]
    begin, end = entry["data_offsets"]
    entry["shape"] = [2 ** 31 // (4 * math.prod(entry["shape"][1:]))] + entry["shape"][1:]
    shift = 2 ** 31 - (end - begin)
    for name, v in header.items():
        if name != "__metadata__" and v["data_offsets"][0] >= end:
            v["data_offsets"] = [v["data_offsets"][0] + shift, v["data_offsets"][1] + shift]
    entry["data_offsets"] = [begin, begin + 2 ** 31]
    text = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text)
        f.truncate(8 + len(text) + len(data) - 8 - n + shift)


def small_memory(layers: int = 3, calls: int = 3, h: int = 8, w: int = 8):
    """A tiny memory built without sampling: random tensors of the right shapes, odd metadata
    (a seed of 2**64 - 1, a non-ASCII prompt, float/bool extras), the negative shared by all
    layers as AddLayer shares it, each layer's trajectory with its own sigmas."""
    from layermem_core.conditioning import Conditioning
    from layermem_core.memory import (
        Layer,
        LayerMemory,
        ModelFingerprint,
        Schedule,
    )
    from layermem_core.trajectory import Trajectory

    g = torch.Generator().manual_seed(0)
    neg = Conditioning(torch.randn(1, 1, 4096, generator=g), (("height", 64), ("width", 64)))
    sigmas = torch.linspace(10, 0.1, calls, dtype=torch.float64)
    out = []
    for i in range(layers):
        mask = torch.ones(h, w) if i == 0 else (torch.rand(h, w, generator=g) > 0.5).float()
        traj = Trajectory(sigmas, torch.arange(calls), torch.randn(calls, 4, h, w, generator=g),
                          torch.randn(4, h, w, generator=g))
        pos = Conditioning(torch.randn(1, 2 + i, 4096, generator=g),
                           (("flag", True), ("height", 64), ("ratio", 0.5)))
        out.append(Layer(f"l{i}", pos, neg, 2 ** 64 - 1 - i, mask,
                         torch.rand(h // 2, w // 2, generator=g) > 0.5, traj,
                         prompt=f"prompt {i} ✓"))
    fp = ModelFingerprint("pixart_alpha", 1, True, 4, (123.456789012345, -0.1, 1e-30), "pixart")
    sched = Schedule(torch.tensor([10.0, 1.2345678, 0.1, 0.0])[: calls + 1], "dpmpp_2m", "karras",
                     calls, 4.5)
    return LayerMemory(fp, sched, (4, h, w), 0.18215, tuple(out))
