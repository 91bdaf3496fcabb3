"""Layer-memory files edited on purpose, for the bad-file tests (unit and host)."""
from __future__ import annotations

import json
import struct
from collections.abc import Callable

import safetensors.torch


def rewrite(data: bytes, edit_doc: Callable | None = None, edit_meta: Callable | None = None,
            edit_tensors: Callable | None = None) -> bytes:
    """`data` (a saved memory) with its JSON document, its metadata strings and/or its tensors edited in place
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
