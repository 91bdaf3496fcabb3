"""Checked access to a memory file's JSON document and to its tensors, for the decoder.

`Doc` gives every key's path for the error message and never quotes a value from the file.
`TensorTable` hands out each stored tensor by name after checking dtype and shape, and enforces
that each place of the memory has a tensor of its own, except the places the writer shares on
purpose (one negative prompt for many layers, one sigmas/steps tensor for many trajectories).
"""
from __future__ import annotations

import math
from collections.abc import Callable

import torch

from .safetensors_io import FileProblem, shown

# Places whose tensor may be shared, by kind (a tensor is only ever shared within one kind).
SHAREABLE_KINDS = frozenset({"negative", "negative pooled", "trajectory sigmas",
                             "trajectory steps"})


def type_name(v: object) -> str:
    if isinstance(v, bool):
        return "a boolean"
    return {int: "an integer", float: "a number", str: "a string", list: "a list",
            dict: "an object", type(None): "null"}.get(type(v), type(v).__name__)


class Doc:
    """A JSON value with its path (layer_memory.layers[2].seed) for messages."""

    def __init__(self, value: object, path: str = "layer_memory"):
        self.value = value
        self.path = path

    def has(self, key: str) -> bool:
        return isinstance(self.value, dict) and key in self.value

    def __getitem__(self, key: str | int) -> Doc:
        v = self.value
        if isinstance(key, int):
            where = f"{self.path}[{key}]"
            if not isinstance(v, list) or not 0 <= key < len(v):
                raise FileProblem(f"the metadata entry {where} is missing")
            return Doc(v[key], where)
        where = f"{self.path}.{key}"
        if not isinstance(v, dict) or key not in v:
            raise FileProblem(f"the metadata key {where} is missing")
        return Doc(v[key], where)

    def get(self, *types: type, check: Callable | None = None):
        v = self.value
        ok = isinstance(v, types) and not (isinstance(v, bool) and bool not in types)
        if ok and isinstance(v, float):
            ok = math.isfinite(v)
        if ok and check is not None:
            ok = bool(check(v))
        if not ok:
            expected = " or ".join(type_name(t()) for t in types)
            raise FileProblem(f"the metadata value {self.path} is not valid ({type_name(v)}, "
                              f"expected "
                              f"{expected}{'' if check is None else ' in range'})")
        return v

    def items(self) -> list[Doc]:
        self.get(list)
        return [self[i] for i in range(len(self.value))]


def _dtype_text(dtypes: tuple[torch.dtype, ...]) -> str:
    return " or ".join(str(d).replace("torch.", "") for d in dtypes)


class TensorTable:
    """The file's tensors by name (real ones, or shape-only `meta` ones for the first pass)."""

    def __init__(self, tensors: dict[str, torch.Tensor]):
        self.tensors = tensors
        self.used: dict[str, torch.Tensor] = {}
        self.kinds: dict[str, tuple[str, torch.dtype | None]] = {}

    def take(self, ref: Doc, shape: tuple, dtypes: tuple[torch.dtype, ...], what: str, kind: str,
             as_dtype: torch.dtype | None = None) -> torch.Tensor:
        name = ref.get(str)
        if name not in self.tensors:
            raise FileProblem(f"the tensor {shown(name)} ({what}) is missing")
        t = self.tensors[name]
        if t.dtype not in dtypes:
            raise FileProblem(f"the tensor {shown(name)} ({what}) is "
                              f"{_dtype_text((t.dtype,))}, expected {_dtype_text(dtypes)}")
        if len(shape) != t.dim() or any(
                w is not None and w != g for w, g in zip(shape, t.shape, strict=True)):
            want = "[" + ", ".join("*" if d is None else str(d) for d in shape) + "]"
            raise FileProblem(f"the tensor {shown(name)} ({what}) has shape {list(t.shape)}, "
                              f"expected {want}")
        self._claim(name, kind, as_dtype, what)
        if name not in self.used:
            self.used[name] = t if as_dtype is None or t.dtype == as_dtype else t.to(as_dtype)
        return self.used[name]

    def _claim(self, name: str, kind: str, as_dtype: torch.dtype | None, what: str) -> None:
        """Each place its own tensor, but for the kinds the writer shares on purpose."""
        before = self.kinds.get(name)
        if before is None:
            self.kinds[name] = (kind, as_dtype)
        elif before != (kind, as_dtype) or kind not in SHAREABLE_KINDS:
            raise FileProblem(f"the tensor {shown(name)} is used for {what} and for another place; "
                              "each layer has tensors of its own")

    def require_all_used(self) -> None:
        extra = sorted(set(self.tensors) - set(self.used))
        if extra:
            more = f" and {len(extra) - 3} more" if len(extra) > 3 else ""
            names = ", ".join(shown(n) for n in extra[:3])
            raise FileProblem(f"it holds tensors the metadata does not use ({names}{more})")
