"""A memory file's JSON document and tensors back into a LayerMemory, checking every value.

`decode` runs twice on a file: first on shape-only (`meta`) tensors, so that everything structural
(keys, types, ranges, shapes, dtypes, which place uses which tensor) is checked before a tensor
byte is read; then on the real tensors, adding the checks that need values (sigmas as listed in
the metadata, every number finite, masks in 0..1).
"""
from __future__ import annotations

import math

import torch

from . import families
from .checks import memory_problem
from .conditioning import Conditioning
from .file_doc import Doc, TensorTable
from .memory import Layer, LayerMemory, ModelFingerprint, Schedule
from .memory_schema import TRAJECTORY_DTYPES
from .safetensors_io import FileProblem
from .trajectory import Trajectory

_FLOATS = (torch.float32, torch.float16, torch.bfloat16)


def _positive(v: int) -> bool:
    return v >= 1


def _fingerprint(f: Doc) -> ModelFingerprint:
    family = f["family"].get(str) if f.has("family") else families.LEGACY.name
    if family not in families.FAMILIES:
        raise FileProblem("its model family is not one this pack knows "
                          f"({', '.join(families.FAMILIES)})",
                          "update the layer-memory node pack")
    signature = tuple(float(item.get(int, float)) for item in f["weight_signature"].items())
    return ModelFingerprint(
        image_model=f["image_model"].get(str), depth=f["depth"].get(int, check=_positive),
        micro_condition=f["micro_condition"].get(bool),
        latent_channels=f["latent_channels"].get(int, check=_positive),
        weight_signature=signature, family=family)


def _latent_shape(doc: Doc, fingerprint: ModelFingerprint) -> tuple[int, int, int]:
    shape = doc["latent_shape"]
    shape.get(list, check=lambda v: len(v) == 3)
    c, h, w = (shape[i].get(int, check=lambda v: 1 <= v <= 1 << 20) for i in range(3))
    if c != fingerprint.latent_channels:
        raise FileProblem(f"its latent shape has {c} channels but its model fingerprint says "
                          f"{fingerprint.latent_channels}")
    family = families.get(fingerprint.family)
    cells = family.patch_cells
    if h % cells or w % cells:
        raise FileProblem(f"its latent size {w}x{h} is not a multiple of {cells} (the "
                          f"{family.label} model's patches)")
    return c, h, w


def _schedule(s: Doc, table: TensorTable) -> Schedule:
    steps = s["steps"].get(int, check=lambda v: 1 <= v <= 100_000)
    sigmas = table.take(s["sigmas"], (steps + 1,), (torch.float32,), "schedule sigmas",
                        "schedule sigmas")
    numbers = [v.get(int, float) for v in s["sigma_values"].items()]
    if len(numbers) != steps + 1 or (sigmas.device.type != "meta" and not torch.equal(
            torch.tensor([float(v) for v in numbers], dtype=torch.float32), sigmas)):
        raise FileProblem("the schedule's sigmas in the metadata and the 'schedule.sigmas' tensor "
                          "differ")
    return Schedule(sigmas=sigmas, sampler_name=s["sampler_name"].get(str),
                    scheduler=s["scheduler"].get(str), steps=steps,
                    cfg=float(s["cfg"].get(int, float)))


def _extras(doc: Doc) -> tuple[tuple[str, object], ...]:
    out = []
    for pair in doc.items():
        pair.get(list, check=lambda v: len(v) == 2)
        out.append((pair[0].get(str), pair[1].get(bool, int, float, str)))
    return tuple(out)


def _conditioning(cd: Doc, table: TensorTable, width: int, what: str, kind: str) -> Conditioning:
    emb = table.take(cd["embedding"], (1, None, width), _FLOATS, f"{what} prompt embedding", kind)
    pooled = None
    if cd.has("pooled"):
        pooled = table.take(cd["pooled"], (1, None), _FLOATS, f"{what} pooled embedding",
                            kind + " pooled")
    return Conditioning(emb, _extras(cd["extras"]), pooled)


def _trajectory(td: Doc, table: TensorTable, i: int, shape: tuple[int, int, int],
                stored: tuple[torch.dtype, ...], version: int, first: int | None) -> Trajectory:
    sigmas = table.take(td["sigmas"], (None,), (torch.float64,), f"layer {i}'s trajectory sigmas",
                        "trajectory sigmas")
    calls = sigmas.shape[0]
    if calls < 1:
        raise FileProblem(f"layer {i}'s trajectory has no model calls")
    if first is not None and calls != first:
        raise FileProblem(f"layer {i}'s trajectory has {calls} model calls, "
                          f"the background's {first}")
    if version == 1:  # v1 kept the model's denoised prediction per call; BCG no longer needs it
        table.take(td["denoised"], (calls,) + shape, stored, f"layer {i}'s trajectory denoised",
                   "denoised")
    return Trajectory(
        sigmas=sigmas,
        steps=table.take(td["steps"], (calls,), (torch.int64,), f"layer {i}'s trajectory steps",
                         "trajectory steps"),
        x=table.take(td["x"], (calls,) + shape, stored, f"layer {i}'s trajectory x", "x",
                     as_dtype=torch.float32),
        final=table.take(td["final"], shape, (torch.float32,), f"layer {i}'s final latent",
                         "final"),
    )


def _layer(ld: Doc, table: TensorTable, i: int, fp: ModelFingerprint, shape: tuple[int, int, int],
           stored: tuple[torch.dtype, ...], version: int, first: int | None) -> Layer:
    ld.get(dict)
    _, h, w = shape
    width = families.get(fp.family).embed_width
    return Layer(
        name=ld["name"].get(str),
        positive=_conditioning(ld["positive"], table, width, f"layer {i}'s positive", "positive"),
        negative=_conditioning(ld["negative"], table, width, f"layer {i}'s negative", "negative"),
        seed=ld["seed"].get(int, check=lambda v: 0 <= v < 2 ** 64),
        latent_mask=table.take(ld["latent_mask"], (h, w), (torch.float32,),
                               f"layer {i}'s latent mask", "latent_mask"),
        token_mask=table.take(ld["token_mask"], (h // 2, w // 2), (torch.bool,),
                              f"layer {i}'s token mask", "token_mask"),
        trajectory=_trajectory(ld["trajectory"], table, i, shape, stored, version, first),
        prompt=ld["prompt"].get(str),
    )


def decode(doc: Doc, version: int, tensors: dict[str, torch.Tensor]) -> LayerMemory:
    """The memory `doc` describes, built from `tensors` (real, or `meta` for the first pass)."""
    doc.get(dict)
    table = TensorTable(tensors)
    fingerprint = _fingerprint(doc["fingerprint"])
    shape = _latent_shape(doc, fingerprint)
    scale = float(doc["latent_scale"].get(int, float, check=lambda v: math.isfinite(v) and v > 0))
    shift = (float(doc["latent_shift"].get(int, float, check=math.isfinite))
             if doc.has("latent_shift") else 0.0)
    storage = doc["trajectory_dtype"].get(str, check=lambda v: v in TRAJECTORY_DTYPES)
    stored = (TRAJECTORY_DTYPES[storage],)
    schedule = _schedule(doc["schedule"], table)
    layer_docs = doc["layers"].items()
    if not layer_docs:
        raise FileProblem("it has no layers (not even the background)")
    layers: list[Layer] = []
    for i, ld in enumerate(layer_docs):
        first = layers[0].trajectory.calls if layers else None
        layers.append(_layer(ld, table, i, fingerprint, shape, stored, version, first))
    table.require_all_used()
    memory = LayerMemory(fingerprint=fingerprint, schedule=schedule, latent_shape=shape,
                         latent_scale=scale, layers=tuple(layers), latent_shift=shift)
    if schedule.sigmas.device.type != "meta":
        problem = memory_problem(memory)
        if problem:
            raise FileProblem(problem)
    return memory
