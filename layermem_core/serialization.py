"""A LayerMemory as one .safetensors file, and back, bit for bit. No pickle anywhere.

Layout
------
Tensors are stored by name (the names `LayerMemory.tensors()` gives them). A tensor object
that several places of the memory share (the negative prompt every layer reuses, a
trajectory's sigmas) is stored once, under the name of its first use; the JSON says which
stored tensor each place uses, and loading gives those places one shared tensor again.

The safetensors header's `__metadata__` (string values only) holds:
  "format"          "comfyui-layer-memory"
  "format_version"  "2" (version 1 also stored the model's denoised prediction per call; it is
                    read, and that tensor is checked and dropped)
  "layer_memory"    JSON: fingerprint, schedule (sigmas, sampler, scheduler, steps, cfg),
                    latent shape and scale, trajectory storage dtype, and per layer its name,
                    prompt text, seed, conditioning extras and the names of its tensors.

Trajectories may be stored as float16 (`trajectory_dtype="float16"`: the per-call model
inputs, which are nearly all of a file): about half the size; they are read back as float32,
so the loaded memory differs from the saved one by float16 rounding of that tensor (the final
latents, masks, prompts and schedule stay exact), and saving the loaded memory again at
float16 is exact.

Reading checks everything before building anything: a file that is truncated, not
safetensors, not a layer memory, of a newer format version, missing a tensor or a metadata
key, or with shapes that do not fit together raises LayerMemoryError naming the file and
the reason. Which model made the memory is not checked here (no model is at hand): the
fingerprint travels with the memory and `require_same_model` refuses another model at use.

Pure module: torch, safetensors and the standard library; no ComfyUI import.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import struct
import sys
import uuid
from typing import Any

import torch

from .errors import LayerMemoryError
from .memory import EMBED_WIDTH, Conditioning, Layer, LayerMemory, ModelFingerprint, Schedule
from .trajectory import Trajectory

FORMAT_NAME = "comfyui-layer-memory"
FORMAT_VERSION = 2
EXTENSION = ".safetensors"
TRAJECTORY_DTYPES = {"float32": torch.float32, "float16": torch.float16}
MAX_HEADER_BYTES = 100 * 1024 * 1024  # safetensors' own limit

_ST_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool,
}

# The fields this format stores. If the value types gain a field, saving refuses (rather than
# silently dropping it) until the format learns it.
_KNOWN_FIELDS = {
    LayerMemory: {"fingerprint", "schedule", "latent_shape", "latent_scale", "layers"},
    Layer: {"name", "positive", "negative", "seed", "latent_mask", "token_mask", "trajectory", "prompt"},
    Conditioning: {"embedding", "extras", "pooled"},
    Schedule: {"sigmas", "sampler_name", "scheduler", "steps", "cfg"},
    Trajectory: {"sigmas", "steps", "x", "final"},
    ModelFingerprint: {"image_model", "depth", "micro_condition", "latent_channels", "weight_signature", "family"},
}
_TRAJECTORY_FIELDS = ("sigmas", "steps", "x", "final")
_HALVABLE = ("x",)  # stored as float16 when asked; `final` always float32


def check_known_fields() -> None:
    for cls, known in _KNOWN_FIELDS.items():
        fields = {f.name for f in dataclasses.fields(cls)}
        if fields != known:
            raise RuntimeError(f"{cls.__name__} now has fields {sorted(fields)}, the layer-memory file format "
                               f"v{FORMAT_VERSION} stores {sorted(known)}: update layermem_core/serialization.py")


# ----------------------------------------------------------------------------------------- writing

def encode(memory: LayerMemory, trajectory_dtype: str = "float32") -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors (by stored name) and the `__metadata__` strings of a file holding `memory`."""
    check_known_fields()
    if trajectory_dtype not in TRAJECTORY_DTYPES:
        raise LayerMemoryError("trajectory_dtype", f"{trajectory_dtype!r} is not a storage type",
                               f"use one of {', '.join(TRAJECTORY_DTYPES)}")
    store_dtype = TRAJECTORY_DTYPES[trajectory_dtype]
    tensors: dict[str, torch.Tensor] = {}
    names_by_id: dict[int, str] = {}

    def put(name: str, t: torch.Tensor, halve: bool = False) -> str:
        key = id(t)
        if key in names_by_id:
            return names_by_id[key]
        stored = t.detach().to("cpu")
        if halve and store_dtype != torch.float32:
            stored = stored.to(store_dtype)
        tensors[name] = stored.contiguous()  # a copy only for a non-contiguous view; nothing is written to t
        names_by_id[key] = name
        return name

    def conditioning(prefix: str, c: Conditioning) -> dict:
        entry = {"embedding": put(prefix, c.embedding), "extras": [[k, _json_scalar(v, prefix)] for k, v in c.extras]}
        if c.pooled is not None:
            entry["pooled"] = put(prefix + ".pooled", c.pooled)
        return entry

    s = memory.schedule
    doc: dict[str, Any] = {
        "fingerprint": dataclasses.asdict(memory.fingerprint),
        "schedule": {
            "sigmas": put("schedule.sigmas", s.sigmas),
            "sigma_values": [float(v) for v in s.sigmas.detach().to("cpu").reshape(-1).tolist()],
            "sampler_name": s.sampler_name,
            "scheduler": s.scheduler,
            "steps": int(s.steps),
            "cfg": float(s.cfg),
        },
        "latent_shape": [int(v) for v in memory.latent_shape],
        "latent_scale": float(memory.latent_scale),
        "trajectory_dtype": trajectory_dtype,
        "layers": [],
    }
    for i, layer in enumerate(memory.layers):
        p = f"layers.{i}."
        t = layer.trajectory
        doc["layers"].append({
            "name": layer.name,
            "prompt": layer.prompt,
            "seed": int(layer.seed),
            "positive": conditioning(p + "positive", layer.positive),
            "negative": conditioning(p + "negative", layer.negative),
            "latent_mask": put(p + "latent_mask", layer.latent_mask),
            "token_mask": put(p + "token_mask", layer.token_mask),
            "trajectory": {f: put(p + "trajectory." + f, getattr(t, f), halve=f in _HALVABLE) for f in _TRAJECTORY_FIELDS},
        })
    metadata = {
        "format": FORMAT_NAME,
        "format_version": str(FORMAT_VERSION),
        "layer_memory": json.dumps(doc, sort_keys=True, separators=(",", ":")),
    }
    return tensors, metadata


def _json_scalar(value, where: str):
    if isinstance(value, (bool, int, str)) or (isinstance(value, float) and math.isfinite(value)):
        return value
    if isinstance(value, float):
        raise LayerMemoryError("memory", f"{where} has the non-finite extra {value!r}", "re-encode the prompt")
    raise LayerMemoryError("memory", f"{where} has an extra of type {type(value).__name__}", "re-encode the prompt")


_DTYPE_NAMES = {v: k for k, v in _ST_DTYPES.items()}


def _chunks(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> list:
    """The safetensors byte layout, written here so that the same memory always gives the same bytes
    (the library's writer orders the metadata keys at random). Tensors are laid out by element size,
    largest first, then in the memory's order: every tensor stays aligned, with no gaps."""
    if sys.byteorder != "little":
        raise RuntimeError("layer-memory files are little-endian; this machine is not")
    items = sorted(tensors.items(), key=lambda item: -item[1].element_size())  # stable: memory order kept
    header: dict[str, Any] = {"__metadata__": metadata}
    blobs = []
    offset = 0
    for name, t in items:
        nbytes = t.numel() * t.element_size()
        header[name] = {"dtype": _DTYPE_NAMES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + nbytes]}
        if nbytes:
            blobs.append(memoryview(t.reshape(-1).view(torch.uint8).numpy()))
        offset += nbytes
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-(8 + len(text)) % 8)
    return [struct.pack("<Q", len(text)), text] + blobs


def to_bytes(memory: LayerMemory, trajectory_dtype: str = "float32") -> bytes:
    return b"".join(bytes(c) for c in _chunks(*encode(memory, trajectory_dtype)))


def save(memory: LayerMemory, path: str, trajectory_dtype: str = "float32") -> int:
    """Write `memory` to `path` (atomically: a reader never sees half a file). Returns the file size."""
    chunks = _chunks(*encode(memory, trajectory_dtype))
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    # a hidden name next to the target (same file system, so the rename is atomic); created with
    # open() rather than mkstemp so the file gets the usual permissions (umask), not 0600
    tmp = os.path.join(folder, f".layer_memory_{os.getpid()}_{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "xb") as fh:
            for c in chunks:
                fh.write(c)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return os.path.getsize(path)


# ----------------------------------------------------------------------------------------- reading

class _Bad(Exception):
    """A reason a file cannot be read; turned into LayerMemoryError with the file's name."""

    def __init__(self, reason: str, fix: str = ""):
        super().__init__(reason)
        self.reason = reason
        self.fix = fix


_FIX_RESAVE = "save the memory again with SaveLayerMemory and load that file"


def _header(data: bytes) -> dict:
    """The safetensors header JSON; raises _Bad for anything that is not a complete safetensors file."""
    if len(data) < 8:
        raise _Bad(f"it is {len(data)} bytes long, too short for a safetensors file (truncated or empty)", _FIX_RESAVE)
    (n,) = struct.unpack("<Q", data[:8])
    if n > MAX_HEADER_BYTES:
        raise _Bad("it is not a safetensors file (its first 8 bytes give a header length of "
                   f"{n} bytes; corrupt, or another file type)", _FIX_RESAVE)
    if 8 + n > len(data):
        raise _Bad(f"it is truncated: the header alone needs {8 + n} bytes, the file has {len(data)}", _FIX_RESAVE)
    try:
        header = json.loads(data[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _Bad(f"it is not a safetensors file (its header is not JSON: {e}); corrupt, or another file type",
                   _FIX_RESAVE) from None
    if not isinstance(header, dict):
        raise _Bad("it is not a safetensors file (its header is not a JSON object)", _FIX_RESAVE)
    end = 0
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets)):
            raise _Bad(f"it is not a valid safetensors file (tensor {name!r} has no data offsets)", _FIX_RESAVE)
        end = max(end, offsets[1])
    if 8 + n + end > len(data):
        raise _Bad(f"it is truncated: its tensors need {8 + n + end} bytes, the file has {len(data)}", _FIX_RESAVE)
    return header


def read_metadata(data: bytes) -> dict[str, str]:
    """The `__metadata__` of a layer-memory file; raises _Bad for any other file."""
    meta = _header(data).get("__metadata__")
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        raise _Bad(f"it is not a layer-memory file (a safetensors file without format {FORMAT_NAME!r} in its "
                   "metadata: a model or another tool's file?)",
                   "load a file written by SaveLayerMemory; models go into models/ and are loaded with LoadPixArt")
    version = meta.get("format_version")
    try:
        version_number = int(str(version))
    except ValueError:
        raise _Bad(f"its format version {version!r} is not a number", _FIX_RESAVE) from None
    if version_number > FORMAT_VERSION:
        raise _Bad(f"it has format version {version_number}, newer than this pack reads ({FORMAT_VERSION})",
                   "update the layer-memory node pack, or save the memory again with this version")
    if version_number < 1:
        raise _Bad(f"its format version {version_number} is not one this pack wrote", _FIX_RESAVE)
    if "layer_memory" not in meta:
        raise _Bad("the metadata key 'layer_memory' is missing", _FIX_RESAVE)
    return meta


def _tensors(data: bytes) -> dict[str, torch.Tensor]:
    import safetensors

    try:
        views = safetensors.deserialize(data)
    except Exception as e:  # SafetensorError: overlapping / out-of-range offsets, bad dtype, ...
        raise _Bad(f"it is not a valid safetensors file ({e})", _FIX_RESAVE) from None
    out = {}
    for name, view in views:
        dtype = _ST_DTYPES.get(view["dtype"])
        if dtype is None:
            raise _Bad(f"tensor {name!r} has dtype {view['dtype']}, which a layer memory never holds", _FIX_RESAVE)
        shape = [int(v) for v in view["shape"]]
        if math.prod(shape) == 0:
            out[name] = torch.empty(shape, dtype=dtype)
        else:
            out[name] = torch.frombuffer(view["data"], dtype=dtype).reshape(shape)  # a writable copy of its own
    return out


class _Doc:
    """Typed access to the JSON metadata, with the path of every key for the error message."""

    def __init__(self, value, path: str = "layer_memory"):
        self.value = value
        self.path = path

    def __getitem__(self, key) -> _Doc:
        v = self.value
        where = f"{self.path}[{key}]" if isinstance(key, int) else f"{self.path}.{key}"
        if isinstance(key, int):
            if not isinstance(v, list) or not -len(v) <= key < len(v):
                raise _Bad(f"the metadata entry {where} is missing", _FIX_RESAVE)
            return _Doc(v[key], where)
        if not isinstance(v, dict) or key not in v:
            raise _Bad(f"the metadata key {where} is missing", _FIX_RESAVE)
        return _Doc(v[key], where)

    def get(self, *types, check=None):
        v = self.value
        ok = isinstance(v, types) and not (isinstance(v, bool) and bool not in types)
        if ok and check is not None:
            ok = check(v)
        if not ok:
            raise _Bad(f"the metadata value {self.path} = {_short(v)} is not valid "
                       f"(expected {' or '.join(t.__name__ for t in types)}"
                       f"{'' if check is None else ', in range'})", _FIX_RESAVE)
        return v

    def items(self) -> list[_Doc]:
        self.get(list)
        return [self[i] for i in range(len(self.value))]


def _short(v) -> str:
    text = json.dumps(v) if not isinstance(v, str) else repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


class _TensorTable:
    """The file's tensors; hands out each by name, checked, and once converted stays shared."""

    def __init__(self, tensors: dict[str, torch.Tensor]):
        self.tensors = tensors
        self.used: dict[str, torch.Tensor] = {}
        self.checked: dict[str, tuple] = {}

    def take(self, ref: _Doc, shape: tuple, dtypes: tuple[torch.dtype, ...], what: str,
             as_dtype: torch.dtype | None = None) -> torch.Tensor:
        name = ref.get(str)
        if name not in self.tensors:
            raise _Bad(f"the tensor {name!r} ({what}) is missing", _FIX_RESAVE)
        t = self.tensors[name]
        if t.dtype not in dtypes:
            raise _Bad(f"the tensor {name!r} ({what}) is {str(t.dtype).replace('torch.', '')}, expected "
                       f"{' or '.join(str(d).replace('torch.', '') for d in dtypes)}", _FIX_RESAVE)
        if len(shape) != t.dim() or any(want is not None and want != got for want, got in zip(shape, t.shape, strict=True)):
            want = "[" + ", ".join("*" if d is None else str(d) for d in shape) + "]"
            raise _Bad(f"the tensor {name!r} ({what}) has shape {list(t.shape)}, expected {want}", _FIX_RESAVE)
        key = (as_dtype,)
        if name in self.checked and self.checked[name] != key:
            raise _Bad(f"the tensor {name!r} is used as two different kinds of data", _FIX_RESAVE)
        self.checked[name] = key
        if name not in self.used:
            self.used[name] = t if as_dtype is None or t.dtype == as_dtype else t.to(as_dtype)
        return self.used[name]

    def require_all_used(self) -> None:
        extra = sorted(set(self.tensors) - set(self.used))
        if extra:
            more = f" and {len(extra) - 3} more" if len(extra) > 3 else ""
            raise _Bad(f"it holds tensors the metadata does not use ({', '.join(map(repr, extra[:3]))}{more})",
                       _FIX_RESAVE)


def _extras(doc: _Doc) -> tuple[tuple[str, object], ...]:
    out = []
    for pair in doc.items():
        pair.get(list, check=lambda v: len(v) == 2)
        out.append((pair[0].get(str), pair[1].get(bool, int, float, str)))
    return tuple(out)


def _signature(doc: _Doc) -> tuple[float, ...]:
    """ModelFingerprint.weight_signature: a tuple of floats (see model_checks.fingerprint)."""
    return tuple(float(item.get(int, float)) for item in doc.items())


def _decode(data: bytes) -> LayerMemory:
    meta = read_metadata(data)
    version = int(meta["format_version"])
    try:
        raw = json.loads(meta["layer_memory"])
    except json.JSONDecodeError as e:
        raise _Bad(f"its 'layer_memory' metadata is not JSON ({e})", _FIX_RESAVE) from None
    doc = _Doc(raw)
    doc.get(dict)
    table = _TensorTable(_tensors(data))

    f = doc["fingerprint"]
    fingerprint = ModelFingerprint(
        image_model=f["image_model"].get(str), depth=f["depth"].get(int, check=lambda v: v >= 1),
        micro_condition=f["micro_condition"].get(bool), latent_channels=f["latent_channels"].get(int, check=lambda v: v >= 1),
        weight_signature=_signature(f["weight_signature"]),
        family=f["family"].get(str) if isinstance(f.value, dict) and "family" in f.value else "pixart")
    shape = doc["latent_shape"]
    shape.get(list, check=lambda v: len(v) == 3)
    c, h, w = (shape[i].get(int, check=lambda v: v >= 1) for i in range(3))
    if c != fingerprint.latent_channels:
        raise _Bad(f"its latent shape has {c} channels but its model fingerprint says {fingerprint.latent_channels}",
                   _FIX_RESAVE)
    if h % 2 or w % 2:
        raise _Bad(f"its latent size {w}x{h} is not even (PixArt's 2x2 patches)", _FIX_RESAVE)
    scale = float(doc["latent_scale"].get(int, float, check=lambda v: math.isfinite(v) and v > 0))
    storage = doc["trajectory_dtype"].get(str, check=lambda v: v in TRAJECTORY_DTYPES)
    traj_dtypes = (torch.float32,) if storage == "float32" else (torch.float16,)

    s = doc["schedule"]
    steps = s["steps"].get(int, check=lambda v: v >= 1)
    sigmas = table.take(s["sigmas"], (steps + 1,), (torch.float32,), "schedule sigmas")
    values = s["sigma_values"].get(list)
    if len(values) != sigmas.numel() or any(not isinstance(v, (int, float)) or isinstance(v, bool) for v in values) or \
            not torch.equal(torch.tensor([float(v) for v in values], dtype=torch.float32), sigmas):
        raise _Bad("the schedule's sigmas in the metadata and the 'schedule.sigmas' tensor differ", _FIX_RESAVE)
    schedule = Schedule(sigmas=sigmas, sampler_name=s["sampler_name"].get(str), scheduler=s["scheduler"].get(str),
                        steps=steps, cfg=float(s["cfg"].get(int, float, check=math.isfinite)))

    layers = []
    layer_docs = doc["layers"].items()
    if not layer_docs:
        raise _Bad("it has no layers (not even the background)", _FIX_RESAVE)
    calls_of_background = None
    for i, ld in enumerate(layer_docs):
        ld.get(dict)

        def cond(key: str, ld=ld, i=i) -> Conditioning:
            cd = ld[key]
            width = EMBED_WIDTH if fingerprint.family == "pixart" else None
            emb = table.take(cd["embedding"], (1, None, width), (torch.float32, torch.float16, torch.bfloat16),
                             f"layer {i}'s {key} prompt embedding")
            pooled = None
            if isinstance(cd.value, dict) and "pooled" in cd.value:
                pooled = table.take(cd["pooled"], (1, None), (torch.float32, torch.float16, torch.bfloat16),
                                    f"layer {i}'s {key} pooled embedding")
            return Conditioning(emb, _extras(cd["extras"]), pooled)

        td = ld["trajectory"]
        t_sigmas = table.take(td["sigmas"], (None,), (torch.float64,), f"layer {i}'s trajectory sigmas")
        calls = t_sigmas.numel()
        if calls < 1:
            raise _Bad(f"layer {i}'s trajectory has no model calls", _FIX_RESAVE)
        if calls_of_background is None:
            calls_of_background = calls
        elif calls != calls_of_background:
            raise _Bad(f"layer {i}'s trajectory has {calls} model calls, the background's {calls_of_background}",
                       _FIX_RESAVE)
        if version == 1:  # v1 kept the model's denoised prediction per call; BCG no longer needs it
            table.take(td["denoised"], (calls, c, h, w), traj_dtypes, f"layer {i}'s trajectory denoised")
        trajectory = Trajectory(
            sigmas=t_sigmas,
            steps=table.take(td["steps"], (calls,), (torch.int64,), f"layer {i}'s trajectory steps"),
            x=table.take(td["x"], (calls, c, h, w), traj_dtypes, f"layer {i}'s trajectory x", as_dtype=torch.float32),
            final=table.take(td["final"], (c, h, w), (torch.float32,), f"layer {i}'s final latent"),
        )
        layers.append(Layer(
            name=ld["name"].get(str),
            positive=cond("positive"),
            negative=cond("negative"),
            seed=ld["seed"].get(int, check=lambda v: 0 <= v < 2 ** 64),
            latent_mask=table.take(ld["latent_mask"], (h, w), (torch.float32,), f"layer {i}'s latent mask"),
            token_mask=table.take(ld["token_mask"], (h // 2, w // 2), (torch.bool,), f"layer {i}'s token mask"),
            trajectory=trajectory,
            prompt=ld["prompt"].get(str),
        ))
    table.require_all_used()
    return LayerMemory(fingerprint=fingerprint, schedule=schedule, latent_shape=(c, h, w), latent_scale=scale,
                       layers=tuple(layers))


def from_bytes(data: bytes, source: str, input_name: str = "file") -> LayerMemory:
    """The memory a file's bytes hold; `source` names the file in every error."""
    try:
        return _decode(data)
    except _Bad as bad:
        raise LayerMemoryError(input_name, f"cannot load {source!r}: {bad.reason}", bad.fix or _FIX_RESAVE) from None


def load(path: str, source: str | None = None, input_name: str = "file") -> LayerMemory:
    source = source or os.path.basename(path)
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as e:
        raise LayerMemoryError(input_name, f"cannot read {source!r} ({e.strerror or e})",
                               "check that the file exists and is readable") from None
    return from_bytes(data, source, input_name)


def peek(path: str) -> dict[str, str] | None:
    """The `__metadata__` of a layer-memory file, reading only its header; None for any other file."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                return None
            (n,) = struct.unpack("<Q", head)
            if n > MAX_HEADER_BYTES:
                return None
            header = json.loads(fh.read(n).decode("utf-8"))
        meta = header.get("__metadata__") if isinstance(header, dict) else None
        return meta if isinstance(meta, dict) and meta.get("format") == FORMAT_NAME else None
    except (OSError, ValueError, UnicodeDecodeError):
        return None
