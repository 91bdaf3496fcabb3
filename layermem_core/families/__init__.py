"""The model families layer memory supports, and the one place that tells them apart.

`family_of(model)` recognises a loaded MODEL; `get(name)` is the family a memory records. Every
family fact (encoder widths, size rule, weight signature, file version, MQD, run estimate) is a
field of its `Family` (base.py), defined in the family's own module: a new family is one module
here and one line in `FAMILIES`.
"""
from __future__ import annotations

from typing import Any

from ..errors import LayerMemoryError
from .base import AttentionRun, Family, ModelDescription
from .chroma import CHROMA
from .flux import FLUX
from .pixart import PIXART
from .qwen_image import QWEN_IMAGE
from .sd3 import SD3
from .unet import SD15, SDXL

__all__ = ["AttentionRun", "FAMILIES", "Family", "LEGACY", "ModelDescription", "family_of",
           "get", "loaders", "refusal", "require_size", "supported", "width_name"]

FAMILIES: dict[str, Family] = {f.name: f for f in (PIXART, SD15, SDXL, FLUX, SD3, CHROMA,
                                                   QWEN_IMAGE)}
LEGACY = PIXART  # the family of memory files written before files recorded one (version 2)


def family_of(model: Any) -> Family | None:
    """The family of a ComfyUI MODEL (a ModelPatcher), or None when it is none of them."""
    return next((f for f in FAMILIES.values() if f.detect(model)), None)


def refusal(model: Any) -> tuple[str, str] | None:
    """(problem, fix) when a family knows this MODEL's kind and cannot drive it (FLUX Fill)."""
    return next((r for f in FAMILIES.values() if f.refusal and (r := f.refusal(model))), None)


def get(name: str) -> Family:
    """The family a memory records by name (memory_decode refuses unknown names on load)."""
    return FAMILIES[name]


def supported() -> str:
    """The supported families' labels, for messages: "PixArt, SD 1.5 or SDXL"."""
    labels = [f.label for f in FAMILIES.values()]
    return ", ".join(labels[:-1]) + " or " + labels[-1]


def loaders() -> str:
    """How to load a MODEL of each family, for a refusal's fix."""
    return "; ".join(f"{f.label}: {f.loader_hint}" for f in FAMILIES.values())


def width_name(width: int) -> str:
    """Which encoder gives embeddings `width` wide, for a refusal's message."""
    for f in FAMILIES.values():
        for w, name in f.encoder_widths:
            if w == width:
                return name
    return "an unknown encoder"


def require_size(family: Family, width: int, height: int) -> None:
    """Refuse image sizes the family's model cannot take, before sampling."""
    for name, value in (("width", width), ("height", height)):
        if value % family.size_multiple:
            raise LayerMemoryError(
                name,
                f"{value} is not a multiple of {family.size_multiple} ({family.label}"
                + (f": {family.size_why})" if family.size_why else ")"),
                f"use a size divisible by {family.size_multiple}, e.g. 512 or 1024",
            )
    if width < family.min_size or height < family.min_size:
        raise LayerMemoryError(
            "width/height",
            f"{width}x{height} is below {family.min_size} px for {family.label}"
            + (f"; {family.min_size_why}" if family.min_size_why else ""),
            f"use {family.min_size} px or more on each side",
        )
