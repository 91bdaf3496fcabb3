"""The memory's file schema: which tensors a LayerMemory stores under which names, and the JSON
document in the safetensors `__metadata__` that ties them together (see serialization.py).

`encode` turns a memory into named tensors and metadata strings; memory_decode.py reads them back.
"""
from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

import torch

from . import families
from .conditioning import Conditioning
from .errors import LayerMemoryError
from .memory import Layer, LayerMemory, ModelFingerprint, Schedule
from .trajectory import Trajectory

FORMAT_NAME = "comfyui-layer-memory"
# Version 3 adds the model family and pooled prompt embeddings. A memory of a family whose
# `min_file_version` is 2 (PixArt's) without pooled embeddings is written as version 2, which
# packs reading version 2 load unchanged.
FORMAT_VERSION = 3
TRAJECTORY_DTYPES = {"float32": torch.float32, "float16": torch.float16}

# The fields this format stores. If the value types gain a field, saving refuses (rather than
# silently dropping it) until the format learns it.
KNOWN_FIELDS = {
    LayerMemory: {"fingerprint", "schedule", "latent_shape", "latent_scale", "layers",
                  "latent_shift"},
    Layer: {"name", "positive", "negative", "seed", "latent_mask", "token_mask", "trajectory",
            "prompt"},
    Conditioning: {"embedding", "extras", "pooled"},
    Schedule: {"sigmas", "sampler_name", "scheduler", "steps", "cfg"},
    # stored as the assembled x and final (TRAJECTORY_FIELDS): base and patches are RAM only
    Trajectory: {"sigmas", "steps", "_x", "_final", "patches"},
    ModelFingerprint: {"image_model", "depth", "micro_condition", "latent_channels",
                       "weight_signature", "family"},
}
TRAJECTORY_FIELDS = ("sigmas", "steps", "x", "final")


def check_known_fields() -> None:
    for cls, known in KNOWN_FIELDS.items():
        fields = {f.name for f in dataclasses.fields(cls)}
        if fields != known:
            raise RuntimeError(f"{cls.__name__} now has fields {sorted(fields)}, the layer-memory "
                               f"file format v{FORMAT_VERSION} stores {sorted(known)}: update "
                               "layermem_core/memory_schema.py")


# ------------------------------------------------------------------------------------- writing

def _json_scalar(value: object, where: str) -> object:
    if isinstance(value, (bool, int, str)) or (isinstance(value, float) and math.isfinite(value)):
        return value
    kind = f"the non-finite extra {value!r}" if isinstance(value, float) else \
        f"an extra of type {type(value).__name__}"
    raise LayerMemoryError("memory", f"{where} has {kind}", "re-encode the prompt")


class _Writer:
    """Names tensors by first use; a tensor object used in several places is stored once."""

    def __init__(self, store_dtype: torch.dtype):
        self.store_dtype = store_dtype
        self.tensors: dict[str, torch.Tensor] = {}
        self.names_by_id: dict[int, str] = {}
        # every tensor put, kept alive while writing: an assembled trajectory's x is a new
        # object, and a freed one's id could be reused by the next (and be taken for it)
        self._held: list[torch.Tensor] = []

    def put(self, name: str, t: torch.Tensor, halve: bool = False) -> str:
        if id(t) in self.names_by_id:
            return self.names_by_id[id(t)]
        stored = t.detach().to("cpu")
        if halve and self.store_dtype != torch.float32:
            stored = stored.to(self.store_dtype)
            if not bool(stored.isfinite().all()):  # beyond float16's 65504: could not load back
                kind = str(self.store_dtype).replace("torch.", "")
                raise LayerMemoryError("trajectory_storage", f"{name} has values beyond the range "
                                       f"of {kind}", "save with float32 (exact)")
        self.tensors[name] = stored.contiguous()  # a copy only for a non-contiguous view
        self.names_by_id[id(t)] = name
        self._held.append(t)
        return name

    def conditioning(self, prefix: str, c: Conditioning) -> dict:
        entry = {"embedding": self.put(prefix, c.embedding),
                 "extras": [[k, _json_scalar(v, prefix)] for k, v in c.extras]}
        if c.pooled is not None:
            entry["pooled"] = self.put(prefix + ".pooled", c.pooled)
        return entry

    def layer(self, i: int, layer: Layer) -> dict:
        p, t = f"layers.{i}.", layer.trajectory
        return {
            "name": layer.name, "prompt": layer.prompt, "seed": int(layer.seed),
            "positive": self.conditioning(p + "positive", layer.positive),
            "negative": self.conditioning(p + "negative", layer.negative),
            "latent_mask": self.put(p + "latent_mask", layer.latent_mask),
            "token_mask": self.put(p + "token_mask", layer.token_mask),
            "trajectory": {f: self.put(p + "trajectory." + f, getattr(t, f), halve=f == "x")
                           for f in TRAJECTORY_FIELDS},
        }


def needed_version(memory: LayerMemory) -> int:
    """The lowest format version that holds `memory` (older packs read version 2)."""
    pooled = any(c.pooled is not None for layer in memory.layers
                 for c in (layer.positive, layer.negative))
    return max(3 if pooled else 2, families.get(memory.fingerprint.family).min_file_version)


def encode(memory: LayerMemory, trajectory_dtype: str = "float32"
           ) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors (by stored name) and the `__metadata__` strings of a file holding `memory`."""
    check_known_fields()
    if trajectory_dtype not in TRAJECTORY_DTYPES:
        raise LayerMemoryError("trajectory_dtype", f"{trajectory_dtype!r} is not a storage type",
                               f"use one of {', '.join(TRAJECTORY_DTYPES)}")
    writer = _Writer(TRAJECTORY_DTYPES[trajectory_dtype])
    s = memory.schedule
    doc: dict[str, Any] = {
        "fingerprint": dataclasses.asdict(memory.fingerprint),
        "schedule": {
            "sigmas": writer.put("schedule.sigmas", s.sigmas),
            "sigma_values": [float(v) for v in s.sigmas.detach().to("cpu").reshape(-1).tolist()],
            "sampler_name": s.sampler_name, "scheduler": s.scheduler,
            "steps": int(s.steps), "cfg": float(s.cfg),
        },
        "latent_shape": [int(v) for v in memory.latent_shape],
        "latent_scale": float(memory.latent_scale),
        # written only when the model shifts its latents (FLUX), so older files stay as they were
        **({"latent_shift": float(memory.latent_shift)} if memory.latent_shift else {}),
        "trajectory_dtype": trajectory_dtype,
        "layers": [writer.layer(i, layer) for i, layer in enumerate(memory.layers)],
    }
    metadata = {
        "format": FORMAT_NAME,
        "format_version": str(needed_version(memory)),
        "layer_memory": json.dumps(doc, sort_keys=True, separators=(",", ":")),
    }
    return writer.tensors, metadata
