"""One prompt's conditioning, parsed from ComfyUI's CONDITIONING and checked against a family.

Each family's text encoder has its own width (PixArt T5-XXL 4096, SD 1.5 CLIP-L 768, SDXL
CLIP-L + CLIP-G 2048); SDXL also needs CLIP-G's pooled output (1280) for its ADM input.
Conditioning of another width would crash deep inside the model (or, worse, run with the
wrong prompt), so it is refused here, naming the input and the encoder that fits.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from . import families
from .errors import LayerMemoryError
from .families import Family


@dataclass(frozen=True, eq=False)
class Conditioning:
    """One prompt: its embedding, the scalar extras ComfyUI attached, and SDXL's pooled output."""

    embedding: torch.Tensor  # [1, L, width], CPU (T5-XXL 4096; CLIP 768 / 2048 for SD 1.5 / SDXL)
    extras: tuple[tuple[str, object], ...] = ()  # width/height (PixArt-alpha, SDXL), crop_w, ...
    pooled: torch.Tensor | None = None  # [1, 1280] CLIP-G pooled output (SDXL); None otherwise

    @staticmethod
    def from_comfy(conditioning, input_name: str, family: Family,
                   model=None) -> Conditioning:
        """Parse and check one CONDITIONING for the model family `family` (and `model`, the
        MODEL it will be sampled with, for the family's checks of its extras)."""
        tensor, extras = _single_entry(conditioning, input_name)
        _check_width(tensor, input_name, family)
        if family.check_extras is not None:
            family.check_extras(extras, input_name, model)
        kept = tuple(
            sorted((k, v) for k, v in extras.items() if isinstance(v, (int, float, str, bool)))
        )
        pooled = _pooled(extras, input_name, family)
        return Conditioning(tensor.detach().to("cpu").clone(), kept, pooled)

    def to_comfy(self) -> list:
        """The CONDITIONING as a text encode gives it: `pooled_output` is always there (None
        without a pooled embedding), since model_base.Flux reads the key even for Chroma, which
        has no pooled input."""
        extras = dict(self.extras)
        extras["pooled_output"] = self.pooled
        return [[self.embedding, extras]]


def _single_entry(conditioning, input_name: str) -> tuple[torch.Tensor, dict]:
    if not isinstance(conditioning, (list, tuple)) or len(conditioning) == 0:
        raise LayerMemoryError(
            input_name,
            "expected CONDITIONING (a list of [tensor, dict])",
            "connect a text-encode node's output",
        )
    if len(conditioning) != 1:
        raise LayerMemoryError(
            input_name,
            f"got {len(conditioning)} conditioning entries; a layer has exactly one prompt",
            "encode the layer's prompt with one text-encode node (no Conditioning Combine)",
        )
    entry = conditioning[0]
    tensor, extras = entry[0], (entry[1] if len(entry) > 1 else {})
    if not isinstance(tensor, torch.Tensor) or tensor.dim() != 3:
        raise LayerMemoryError(
            input_name,
            "conditioning tensor must be [batch, tokens, width]",
            "connect a text-encode node's output",
        )
    if tensor.shape[0] != 1:
        raise LayerMemoryError(
            input_name,
            f"conditioning batch is {tensor.shape[0]}",
            "encode one prompt (batch size 1)",
        )
    return tensor, dict(extras or {})


def _check_width(tensor: torch.Tensor, input_name: str, family: Family) -> None:
    got = int(tensor.shape[-1])
    if got != family.embed_width:
        raise LayerMemoryError(
            input_name,
            f"conditioning is {got} wide ({families.width_name(got)}); this {family.label} model "
            f"needs {family.encoder} embeddings ({family.embed_width} wide)",
            family.encoder_fix,
        )


def _pooled(extras: dict, input_name: str, family: Family) -> torch.Tensor | None:
    pooled_width, fix = family.pooled_width, family.encoder_fix
    if pooled_width is None:
        return None
    pooled = extras.get("pooled_output")
    if not isinstance(pooled, torch.Tensor):
        raise LayerMemoryError(
            input_name,
            f"{family.label} conditioning without its pooled output (pooled_output); the "
            f"model's pooled input needs {family.pooled_encoder}'s pooled embedding",
            fix,
        )
    if pooled.dim() != 2 or tuple(pooled.shape) != (1, pooled_width):
        raise LayerMemoryError(
            input_name,
            f"pooled_output is {tuple(pooled.shape)}, {family.label} needs [1, {pooled_width}] "
            f"({family.pooled_encoder})",
            fix,
        )
    return pooled.detach().to("cpu").clone()
