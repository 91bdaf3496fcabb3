"""A LayerMemory as one .safetensors file, and back, bit for bit. No pickle anywhere.

Layout
------
Tensors are stored by name (the names `LayerMemory.tensors()` gives them). A tensor object that
several places of the memory share (the negative prompt every layer reuses, a trajectory's
sigmas) is stored once, under the name of its first use; the JSON says which stored tensor each
place uses, and loading gives those places one shared tensor again. Any other sharing (600
layers pointing at three layers' latents) is refused.

The safetensors header's `__metadata__` (string values only) holds:
  "format"          "comfyui-layer-memory"
  "format_version"  "2", or "3" when the memory needs it (a model family other than PixArt, or
                    pooled prompt embeddings); version 1 also stored the model's denoised
                    prediction per call: it is read, checked and dropped
  "layer_memory"    JSON: fingerprint, schedule (sigmas, sampler, scheduler, steps, cfg), latent
                    shape and scale, trajectory storage dtype, and per layer its name, prompt
                    text, seed, conditioning extras and the names of its tensors.

Trajectories may be stored as float16 (`trajectory_dtype="float16"`: the per-call model inputs,
nearly all of a file): about half the size, read back as float32.

Reading checks everything before building anything, and the header before reading a tensor
byte (safetensors_io.py, memory_decode.py): any problem raises LayerMemoryError naming the file
and the reason, never quoting the file's bytes. No value that is not finite is saved or loaded.
The model is checked at use (`require_same_model`), not here.

Pure module: torch and the standard library; no ComfyUI import.
"""
from __future__ import annotations

import io
import os
import uuid
from typing import BinaryIO

import torch

from .checks import memory_problem
from .errors import LayerMemoryError
from .file_doc import Doc
from .memory import LayerMemory
from .memory_decode import decode
from .memory_schema import (  # noqa: F401 - part of this module's interface
    FORMAT_NAME,
    FORMAT_VERSION,
    KNOWN_FIELDS,
    TRAJECTORY_DTYPES,
)
from .memory_schema import encode as _encode
from .regular_file import NotARegularFile, open_regular
from .safetensors_io import (  # noqa: F401 - MAX_HEADER_BYTES is part of this module's interface
    FIX_RESAVE,
    MAX_HEADER_BYTES,
    FileProblem,
    Header,
    chunks,
    parse_json,
    read_header,
    read_tensors,
)

EXTENSION = ".safetensors"
_INTERNAL = (ValueError, TypeError, KeyError, IndexError, OverflowError, RuntimeError,
             RecursionError, MemoryError, AttributeError)


def encode(memory: LayerMemory, trajectory_dtype: str = "float32"
           ) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors and `__metadata__` of a file holding `memory`; refuses values that could not
    be loaded back (NaN, inf, masks outside 0..1)."""
    problem = memory_problem(memory)
    if problem:
        raise LayerMemoryError("memory", f"cannot save this memory: {problem}",
                               "recreate the layer (a NaN comes from a broken model or cfg)")
    return _encode(memory, trajectory_dtype)


def to_bytes(memory: LayerMemory, trajectory_dtype: str = "float32") -> bytes:
    return b"".join(bytes(c) for c in chunks(*encode(memory, trajectory_dtype)))


def save(memory: LayerMemory, path: str, trajectory_dtype: str = "float32") -> int:
    """Write `memory` to `path` atomically (a reader never sees half a file); returns the size."""
    parts = chunks(*encode(memory, trajectory_dtype))
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    # a hidden name next to the target (same file system: the rename is atomic), made with open()
    # rather than mkstemp so the file gets the usual permissions (umask), not 0600
    tmp = os.path.join(folder, f".layer_memory_{os.getpid()}_{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "xb") as fh:
            for c in parts:
                fh.write(c)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return os.path.getsize(path)


# ------------------------------------------------------------------------------------- reading

def _metadata(header: Header) -> tuple[dict[str, str], int]:
    """The layer-memory metadata and its format version; FileProblem for any other file."""
    meta = header.metadata
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        raise FileProblem(f"it is not a layer-memory file (a safetensors file without format "
                          f"{FORMAT_NAME!r} in its metadata: a model or another tool's file?)",
                          "load a file written by SaveLayerMemory; models go into models/ and are "
                          "loaded with the model loader nodes")
    text = meta.get("format_version", "")
    if not (isinstance(text, str) and text.isascii() and text.isdigit() and len(text) <= 6):
        raise FileProblem("its format version is not a number")
    version = int(text)
    if version > FORMAT_VERSION:
        raise FileProblem(f"it has format version {version}, newer than this pack reads "
                          f"({FORMAT_VERSION})",
                          "update the layer-memory node pack, or save the memory again with "
                          "this version")
    if version < 1:
        raise FileProblem(f"its format version {version} is not one this pack wrote")
    if "layer_memory" not in meta:
        raise FileProblem("the metadata key 'layer_memory' is missing")
    return meta, version


def _read(fh: BinaryIO, size: int) -> LayerMemory:
    header = read_header(fh, size)
    meta, version = _metadata(header)
    doc = Doc(parse_json(meta["layer_memory"], "'layer_memory' metadata"))
    shapes = {name: torch.empty(s.shape, dtype=s.dtype, device="meta")
              for name, s in header.specs.items()}
    decode(doc, version, shapes)  # everything structural, before any tensor byte is read
    return decode(doc, version, read_tensors(fh, header))


def _guarded(fh: BinaryIO, size: int, source: str, input_name: str) -> LayerMemory:
    try:
        return _read(fh, size)
    except FileProblem as bad:
        raise LayerMemoryError(input_name, f"cannot load {source!r}: {bad.reason}",
                               bad.fix) from None
    except _INTERNAL as e:  # a case the checks above missed: still the pack's error, no content
        raise LayerMemoryError(input_name, f"cannot load {source!r}: it could not be decoded "
                               f"({type(e).__name__})", FIX_RESAVE) from None


def from_bytes(data: bytes, source: str, input_name: str = "file") -> LayerMemory:
    """The memory a file's bytes hold; `source` names the file in every error."""
    return _guarded(io.BytesIO(data), len(data), source, input_name)


def load(path: str, source: str | None = None, input_name: str = "file") -> LayerMemory:
    """The memory in `path`: its header is read and checked first, then its tensors."""
    source = source or os.path.basename(path)
    try:
        with open_regular(path) as fh:
            return _guarded(fh, os.fstat(fh.fileno()).st_size, source, input_name)
    except NotARegularFile as e:
        raise LayerMemoryError(input_name, f"{source!r} is a {e.kind}, not a memory file",
                               "choose a .safetensors file saved by SaveLayerMemory") from None
    except OSError as e:
        reason = e.strerror or type(e).__name__
        raise LayerMemoryError(input_name, f"cannot read {source!r} ({reason})",
                               "check that the file exists and is readable") from None


def read_metadata(data: bytes) -> dict[str, str]:
    """The `__metadata__` of a layer-memory file's bytes; FileProblem for any other file."""
    return _metadata(read_header(io.BytesIO(data), len(data)))[0]


def peek(path: str) -> dict[str, str] | None:
    """The `__metadata__` of a layer-memory file, reading only its header; None for any other
    file or any problem at all (listing files must never fail)."""
    try:
        with open_regular(path) as fh:
            return _metadata(read_header(fh, os.fstat(fh.fileno()).st_size))[0]
    except Exception:  # noqa: BLE001 - a file in a folder must never break the node list
        return None
