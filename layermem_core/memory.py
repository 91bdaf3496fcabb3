"""The layer-wise memory: an immutable value passed along graph edges.

ComfyUI caches node outputs and hands the same object to every branch, so nothing here is
ever changed in place: every operation returns a new LayerMemory that shares the tensors it
did not change (they are never written to either).
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

import torch

from . import families
from .conditioning import Conditioning
from .errors import LayerMemoryError
from .trajectory import Trajectory, storage_bytes


def reads_as_index(text: str) -> bool:
    """Whether a `layer` input reads `text` as an index: ASCII digits (maybe after '-')."""
    text = text.strip()
    digits = text[1:] if text.startswith("-") else text
    return digits.isascii() and digits.isdigit()  # ASCII only: int() would also read '\uff11' as 1


def check_layer_name(name: object, input_name: str = "name") -> None:
    """The one rule for a layer's name: no number, since every `layer` input reads one as an
    index (an empty name is left to the caller: a default, or refused)."""
    if isinstance(name, str) and reads_as_index(name):
        raise LayerMemoryError(input_name, f"{name.strip()!r} is a number, which every 'layer' "
                                           "input (DeleteLayer, EditLayer, RenameLayer) would "
                                           "read as a layer index",
                               "use a name with a letter in it, e.g. 'object 2'")


@dataclass(frozen=True, eq=False)
class Layer:
    """One step of the scene: its prompt, where it is, and the composite's trajectory after it."""

    name: str
    positive: Conditioning
    negative: Conditioning
    seed: int
    latent_mask: torch.Tensor  # [h, w] float32 in 0..1 (all ones for the background)
    token_mask: torch.Tensor  # [h/2, w/2] bool
    trajectory: Trajectory
    prompt: str = ""


@dataclass(frozen=True, eq=False)
class Schedule:
    """Fixed for a memory's whole life: BCG replays stored latents sigma for sigma."""

    sigmas: torch.Tensor  # [steps + 1] float32
    sampler_name: str
    scheduler: str
    steps: int
    cfg: float


@dataclass(frozen=True)
class ModelFingerprint:
    """Enough of a model to refuse a memory made with another one."""

    image_model: str
    depth: int
    micro_condition: bool
    latent_channels: int
    # sums over a few bias vectors; see model_checks.fingerprint
    weight_signature: tuple[float, ...]
    family: str  # the Family.name: a memory is only used with its own family (families.get)

    def mismatch(self, other: ModelFingerprint) -> str | None:
        for field in ("family", "image_model", "depth", "micro_condition", "latent_channels"):
            a, b = getattr(self, field), getattr(other, field)
            if a != b:
                return f"{field} {b!r} != memory's {a!r}"
        a, b = tuple(self.weight_signature), tuple(other.weight_signature)
        scale = max([1e-6] + [abs(v) for v in a])
        # Tolerant to storage dtype (fp16/bf16/fp8 rounding
        # averages out in the sums), not to other weights.
        if len(a) != len(b) or any(abs(x - y) > 1e-3 * scale for x, y in zip(a, b, strict=True)):
            return "its weights differ from the checkpoint the memory was made with"
        return None


@dataclass(frozen=True, eq=False)
class LayerMemory:
    fingerprint: ModelFingerprint
    schedule: Schedule
    latent_shape: tuple[int, int, int]  # (C, h, w)
    latent_scale: float  # the model's latent_format.scale_factor: internal = user * scale
    layers: tuple[Layer, ...]
    # the model's latent_format.shift_factor (FLUX 0.1159): internal = (user - shift) * scale
    latent_shift: float = 0.0

    @property
    def top(self) -> Layer:
        return self.layers[-1]

    @property
    def latent_hw(self) -> tuple[int, int]:
        return self.latent_shape[1], self.latent_shape[2]

    @property
    def image_size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return self.latent_shape[2] * 8, self.latent_shape[1] * 8

    def composite_latent(self, index: int = -1) -> dict:
        """The composite after layer `index` as a ComfyUI LATENT (the model's
        process_latent_out)."""
        final = self.layers[index].trajectory.final
        latent_out = families.get(self.fingerprint.family).latent_out
        if latent_out is not None:  # a format beyond scale and shift (Qwen-Image's 5-D Wan 2.1)
            return {"samples": latent_out(final[None])}
        return {"samples": final[None] / self.latent_scale + self.latent_shift}

    def with_layer(self, layer: Layer) -> LayerMemory:
        return replace(self, layers=self.layers + (layer,))

    def with_layers(self, layers: tuple[Layer, ...]) -> LayerMemory:
        return replace(self, layers=tuple(layers))

    def truncated(self, count: int) -> LayerMemory:
        return replace(self, layers=self.layers[:count])

    def resolve(self, spec: str | int, input_name: str = "layer",
                allow_background: bool = False) -> int:
        """A layer index from an index (negative counts from the top) or a layer name.
        Without `allow_background` (DeleteLayer) layer 0 is refused: the background stays."""
        n = len(self.layers)
        text = str(spec).strip()
        low = 0 if allow_background else 1
        if low >= n:
            raise LayerMemoryError(input_name, f"layer {text!r} cannot be chosen: this memory "
                                               "holds only the background (layer 0, which cannot "
                                               "be deleted), so there is no layer to choose",
                                   "add a layer with AddLayer first, or use EditLayer on layer 0 "
                                   "to replace the background")
        index = self._index_of(text, input_name)
        if index < 0:
            index += n
        if index == 0 and not allow_background:
            picks = "" if text == "0" else f" ({text!r} picks layer 0)"
            raise LayerMemoryError(input_name, "layer 0 is the background, which cannot be "
                                               f"deleted{picks}",
                                   "to replace the background use EditLayer on layer 0; to delete "
                                   f"an object use an index from 1 to {n - 1}, or -1 for the top")
        if not low <= index < n:
            raise LayerMemoryError(input_name, f"layer index {text} is out of range: "
                                               f"{self._valid_range(low)}",
                                   f"use an index from {low} to {n - 1}, or -1 for the top layer")
        return index

    def _index_of(self, text: str, input_name: str) -> int:
        """`text` as an index (unchecked) or the top-most layer of that name."""
        digits = text[1:] if text.startswith("-") else text
        if reads_as_index(text):  # ASCII only: int() would also read '\uff11' as 1
            return int(text) if len(digits) <= 9 else len(self.layers) * 2 + 10 ** 9  # beyond all
        matches = [i for i, layer in enumerate(self.layers) if layer.name == text]
        if not matches:
            names = ", ".join(f"{i}: {layer.name!r}" for i, layer in enumerate(self.layers))
            raise LayerMemoryError(input_name, f"no layer is named {text!r}",
                                   f"use an index or one of the names ({names})") from None
        return matches[-1]

    def _valid_range(self, low: int) -> str:
        """The indices a node taking layers `low`.. of this memory accepts, in words."""
        top = len(self.layers) - 1
        ups, downs = _span(low, top), _span(-1, low - top - 1)
        if low == 0:
            return f"the valid layers are {ups} (0 is the background), or {downs} from the top"
        return (f"the layers that can be deleted are {ups} (0 is the background, which cannot "
                f"be deleted), or {downs} from the top")

    def renamed(self, index: int, name: str) -> LayerMemory:
        layers = list(self.layers)
        layers[index] = replace(layers[index], name=name)
        return replace(self, layers=tuple(layers))

    def tensors(self) -> Iterator[tuple[str, torch.Tensor]]:
        """Every value the memory holds, named, each trajectory as its assembled x and final
        (new tensors where it carries patches); for hashing, comparing and saving. Size
        accounting reads `stored_tensors()`, the tensors actually held."""
        yield from self._plain_tensors()
        for i, layer in enumerate(self.layers):
            t = layer.trajectory
            for field in ("sigmas", "steps", "x", "final"):
                yield f"layers.{i}.trajectory.{field}", getattr(t, field)

    def stored_tensors(self) -> Iterator[tuple[str, torch.Tensor]]:
        """Every tensor the memory holds in RAM, named: `tensors()` with each trajectory as its
        parts (base and patches, `Trajectory.parts`) rather than its assembled x and final."""
        yield from self._plain_tensors()
        for i, layer in enumerate(self.layers):
            for part, t in layer.trajectory.parts():
                yield f"layers.{i}.trajectory.{part}", t

    def _plain_tensors(self) -> Iterator[tuple[str, torch.Tensor]]:
        """Every tensor but the trajectories."""
        yield "schedule.sigmas", self.schedule.sigmas
        for i, layer in enumerate(self.layers):
            p = f"layers.{i}."
            for key, cond in (("positive", layer.positive), ("negative", layer.negative)):
                yield p + key, cond.embedding
                if cond.pooled is not None:
                    yield p + key + ".pooled", cond.pooled
            yield p + "latent_mask", layer.latent_mask
            yield p + "token_mask", layer.token_mask

    def nbytes(self) -> int:
        """RAM the memory holds: every byte of a storage its tensors share counted once
        (`trajectory.storage_bytes`), so a rebuilt composite that shares its base with the one
        it replaced costs only its patches. Summed over several memories, count
        `storage_bytes` over all their `stored_tensors()` at once."""
        return storage_bytes(t for _, t in self.stored_tensors())

    def describe(self) -> list[dict]:
        rows = []
        h, w = self.latent_hw
        for i, layer in enumerate(self.layers):
            rows.append({
                "index": i,
                "name": layer.name,
                "prompt": layer.prompt,
                "seed": layer.seed,
                "mask_area": round(float(layer.latent_mask.sum()) / (h * w), 4),
                "tokens": int(layer.token_mask.sum()),
            })
        return rows


def _span(first: int, last: int) -> str:
    """'1..3', or '1' where the span holds one index."""
    return str(first) if first == last else f"{first}..{last}"
