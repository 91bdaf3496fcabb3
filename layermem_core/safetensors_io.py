"""The safetensors byte layout, written deterministically, read so that no file can hurt the reader.

Reading is in two steps: `read_header` reads the 8-byte length and the JSON header alone (bounded
length, bounded nesting, no NaN/Infinity literals, no duplicate keys) and checks every tensor's
dtype, shape and byte range against the file's size; only then does `read_tensors` read the tensor
bytes, each tensor into its own storage. Every problem is a `FileProblem` whose text never quotes
the file's bytes. Pure module: torch and the standard library.
"""
from __future__ import annotations

import json
import math
import re
import struct
import sys
from dataclasses import dataclass
from typing import Any, BinaryIO

import torch

MAX_HEADER_BYTES = 16 * 1024 * 1024  # a 100-layer memory's header is about 200 kB
MAX_JSON_DEPTH = 32  # a layer memory's JSON nests 6 deep
FIX_RESAVE = "save the memory again with SaveLayerMemory and load that file"

DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
    "U8": torch.uint8, "BOOL": torch.bool,
}
_DTYPE_NAMES = {v: k for k, v in DTYPES.items()}
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_SAFE_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,80}")
_INVALID = "it is not a valid safetensors file"


class FileProblem(Exception):
    """Why a file cannot be read; the caller adds the file's name."""

    def __init__(self, reason: str, fix: str = FIX_RESAVE):
        super().__init__(reason)
        self.reason = reason
        self.fix = fix


def shown(name: object) -> str:
    """A name taken from a file, quoted only when it is a plain short tensor-like name."""
    if isinstance(name, str) and _SAFE_NAME.fullmatch(name):
        return repr(name)
    return "(a name that is not shown)"


# ------------------------------------------------------------------------------------- JSON

def _depth(text: bytes) -> int:
    """The deepest bracket nesting outside strings, without recursion (vectorised)."""
    brackets = _STRING.sub(b"", text).translate(None, delete=bytes(
        c for c in range(256) if c not in b"[]{}"))
    if not brackets:
        return 0
    b = torch.frombuffer(bytearray(brackets), dtype=torch.uint8)
    step = ((b == ord("[")) | (b == ord("{"))).to(torch.int32) * 2 - 1
    return int(step.cumsum(0).max())


def _no_constants(name: str):
    raise FileProblem(f"its JSON holds the non-number {name}")


def _no_duplicates(pairs: list) -> dict:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise FileProblem("its JSON has an object with the same key twice")
    return out


def _no_lone_surrogates(value: Any, what: str) -> None:
    """An escaped lone surrogate ("\\ud800") is valid JSON to Python but not to the safetensors
    library (nor to UTF-8): a file holding one is not a safetensors file, wherever it is."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise FileProblem(f"its {what} holds an escaped lone surrogate (\\ud800-\\udfff), which "
                          "no UTF-8 text can; corrupt or crafted") from None


def parse_json(text: bytes | str, what: str) -> Any:
    """JSON with bounded nesting; NaN/Infinity literals and duplicate keys refused."""
    raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    if _depth(raw) > MAX_JSON_DEPTH:
        raise FileProblem(f"its {what} nests deeper than {MAX_JSON_DEPTH} levels "
                          "(corrupt or crafted)")
    try:
        source = text if isinstance(text, str) else raw.decode("utf-8")  # str: lone surrogates kept
        value = json.loads(source, parse_constant=_no_constants, object_pairs_hook=_no_duplicates)
        if not isinstance(text, str):  # a file's own JSON: what the safetensors library reads
            _no_lone_surrogates(value, what)
        return value
    except UnicodeDecodeError:
        raise FileProblem(f"its {what} is not UTF-8 text (corrupt, or another file type)") from None
    except RecursionError:  # never reached after the depth scan; kept as a backstop
        raise FileProblem(f"its {what} nests too deep") from None
    except ValueError as e:  # JSONDecodeError (position only, no content), huge integers
        where = f" ({e.msg}, at character {e.pos})" if isinstance(e, json.JSONDecodeError) else ""
        raise FileProblem(f"its {what} is not JSON{where}; corrupt, or another file type") from None


# ------------------------------------------------------------------------------------- reading

@dataclass(frozen=True)
class TensorSpec:
    dtype: torch.dtype
    shape: tuple[int, ...]
    begin: int  # byte offset in the data section
    end: int


@dataclass(frozen=True)
class Header:
    metadata: dict | None
    specs: dict[str, TensorSpec]
    data_start: int  # file offset of the data section


def _spec(name: str, entry: object) -> TensorSpec:
    if not isinstance(entry, dict):
        raise FileProblem(f"{_INVALID} (entry {shown(name)} is not an object)")
    dtype = DTYPES.get(entry.get("dtype")) if isinstance(entry.get("dtype"), str) else None
    if dtype is None:
        raise FileProblem(f"tensor {shown(name)} has a dtype a layer memory never holds")
    shape, offsets = entry.get("shape"), entry.get("data_offsets")
    if not (isinstance(shape, list) and len(shape) <= 8 and all(_is_count(v) for v in shape)):
        raise FileProblem(f"{_INVALID} (tensor {shown(name)} has no valid shape)")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_count(v) for v in offsets)):
        raise FileProblem(f"{_INVALID} (tensor {shown(name)} has no data offsets)")
    begin, end = offsets
    if end - begin != math.prod(shape) * dtype.itemsize:
        raise FileProblem(f"{_INVALID} (tensor {shown(name)}: its byte range "
                          "does not match its shape and dtype)")
    return TensorSpec(dtype, tuple(shape), begin, end)


def _is_count(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2 ** 53


def _check_layout(specs: dict[str, TensorSpec], data_size: int) -> None:
    """Byte ranges back to back from 0 to the end of the file: no gap, no overlap, nothing after."""
    position = 0
    for spec in sorted(specs.values(), key=lambda s: (s.begin, s.end)):
        if spec.begin != position:
            raise FileProblem("it is not a valid safetensors file (tensor byte ranges overlap or "
                              "leave gaps)")
        position = spec.end
    if position != data_size:
        if position > data_size:
            raise FileProblem(f"it is truncated: its tensors need {position} bytes of data, "
                              f"the file has {data_size}")
        raise FileProblem("it is not a valid safetensors file (bytes after its last tensor)")


def read_header(fh: BinaryIO, file_size: int) -> Header:
    """The header alone, checked against the file's size; no tensor byte is read."""
    if file_size < 8:
        raise FileProblem(f"it is {file_size} bytes long, too short for a safetensors file "
                          "(truncated or empty)")
    (n,) = struct.unpack("<Q", fh.read(8))
    if n > MAX_HEADER_BYTES:
        raise FileProblem("it is not a safetensors file (its header length field is out of range: "
                          "corrupt, or another file type)")
    if 8 + n > file_size:
        raise FileProblem(f"it is truncated: the header alone needs {8 + n} bytes, "
                          f"the file has {file_size}")
    try:
        header = parse_json(fh.read(n), "header")
    except FileProblem as bad:
        raise FileProblem(f"it is not a safetensors file ({bad.reason})") from None
    if not isinstance(header, dict):
        raise FileProblem("it is not a safetensors file (its header is not a JSON object)")
    metadata = header.pop("__metadata__", None)
    specs = {name: _spec(name, entry) for name, entry in header.items()}
    _check_layout(specs, file_size - 8 - n)
    if metadata is not None and not (isinstance(metadata, dict)
                                     and all(isinstance(v, str) for v in metadata.values())):
        raise FileProblem("it is not a valid safetensors file (its metadata is not text)")
    return Header(metadata, specs, 8 + n)


def read_tensors(fh: BinaryIO, header: Header) -> dict[str, torch.Tensor]:
    """Every tensor, each read into storage of its own (nothing holds a file-sized buffer)."""
    out = {}
    for name, spec in sorted(header.specs.items(), key=lambda item: item[1].begin):
        t = torch.empty(spec.shape, dtype=spec.dtype)
        if t.numel():
            fh.seek(header.data_start + spec.begin)
            view = memoryview(t.reshape(-1).view(torch.uint8).numpy())
            if fh.readinto(view) != spec.end - spec.begin:
                raise FileProblem("it is truncated (it changed while it was read?)")
            if spec.dtype == torch.bool and int(t.view(torch.uint8).max()) > 1:
                raise FileProblem(f"the boolean tensor {shown(name)} holds values other than "
                                  "0 and 1")
        out[name] = t
    return out


# ------------------------------------------------------------------------------------- writing

def chunks(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> list:
    """The file as byte chunks; the same tensors and metadata always give the same bytes (the
    library's writer orders metadata keys at random). Tensors go by element size, largest first,
    then in the given order: every tensor stays aligned, with no gaps."""
    if sys.byteorder != "little":
        raise RuntimeError("layer-memory files are little-endian; this machine is not")
    items = sorted(tensors.items(), key=lambda item: -item[1].element_size())  # stable
    header: dict[str, Any] = {"__metadata__": metadata}
    blobs = []
    offset = 0
    for name, t in items:
        nbytes = t.numel() * t.element_size()
        header[name] = {"dtype": _DTYPE_NAMES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + nbytes]}
        if nbytes:
            blobs.append(memoryview(t.reshape(-1).view(torch.uint8).numpy()))
        offset += nbytes
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-(8 + len(text)) % 8)
    return [struct.pack("<Q", len(text)), text] + blobs
