"""One interface over the model kinds the shared invariants run on (issues 11, 20, 21).

A `FamilyKit` is a small random model of one kind (PixArt-alpha, PixArt-Sigma, SD 1.5, SDXL,
FLUX.1 dev, SD3.5 Medium, Chroma, Qwen-Image) with conditioning shaped as that kind's text encoder
gives it, the scene size it runs at on a CPU, and start/add shorthands. Tests written against a kit
check one invariant for every family without knowing which one it is.

Each kit holds its family's `Family` (layermem_core/families, as the booted ComfyUI loaded it)
and reads the family's facts from it: its name (what memories record), whether its attention is
joint, the encoder widths its conditioning must have, the size rule its scene size must keep.
What a kit adds is the test side only, one `KitRecipe` entry of `KITS` per kit: where its random
model comes from, how its conditioning is made (tools/scenes.py, unet_scenes.py,
flux_scenes.py, sd3_scenes.py, chroma_scenes.py, qwen_scenes.py), its scene size and a longer
prompt's length. A new family is its module in layermem_core/families/ and one entry here; the
invariants parametrised over `KIT_NAMES` pick it up.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from tools import (
    chroma_scenes,
    comfy_host,
    flux_scenes,
    qwen_scenes,
    scenes,
    sd3_scenes,
    unet_scenes,
)

Loader = Callable[[Callable[[str], Any]], Any]  # (load_pixart) -> the kit's shared ModelPatcher


@dataclass(frozen=True)
class KitRecipe:
    """The test side of one kit, self-contained; the family's facts come from its `Family`."""

    family: str  # the layermem_core.families name of its Family
    size: int  # pixels, square: the scene size it runs at on a CPU
    load: Loader
    cond: Callable[[FamilyKit, int, int | None], list]  # (kit, seed, tokens or its default)
    negative: Callable[[FamilyKit], list]
    long_tokens: int  # a prompt length other than `cond`'s default (a longer prompt)
    micro: bool = False  # size micro-conditions in its conditioning (PixArt-alpha)


def _pixart(variant: str, micro: bool) -> KitRecipe:
    return KitRecipe(
        "pixart", 512, lambda load_pixart: load_pixart(variant),
        lambda kit, seed, tokens: scenes.cond(seed, tokens=tokens or 6, width=kit.size,
                                              height=kit.size, micro=kit.micro),
        lambda kit: scenes.negative(kit.size, kit.size, kit.micro),
        long_tokens=9, micro=micro)


def _unet(name: str) -> KitRecipe:
    return KitRecipe(
        name, unet_scenes.SIZE[name], lambda _: unet_scenes.model(name),
        lambda kit, seed, tokens: unet_scenes.cond(name, seed, tokens=tokens or 77,
                                                   size=kit.size),
        lambda kit: unet_scenes.cond(name, 2, size=kit.size),
        long_tokens=154)  # two CLIP chunks of 77


KITS: dict[str, KitRecipe] = {
    "pixart_alpha": _pixart("pixart_alpha_512", micro=True),
    "pixart_sigma": _pixart("pixart_sigma_512", micro=False),
    "sd15": _unet("sd15"),
    "sdxl": _unet("sdxl"),
    "flux": KitRecipe(
        "flux", flux_scenes.SIZE, lambda _: flux_scenes.model(),
        lambda kit, seed, tokens: flux_scenes.cond(seed, tokens=tokens or 16),
        lambda kit: flux_scenes.cond(2), long_tokens=40),
    "sd3": KitRecipe(  # SD3.5 Medium's MMDiT-X: joint attention and an image-only attn2
        "sd3", sd3_scenes.SIZE, lambda _: sd3_scenes.model("medium35"),
        lambda kit, seed, tokens: sd3_scenes.cond(seed, tokens=tokens or 16),
        lambda kit: sd3_scenes.cond(2), long_tokens=40),
    "chroma": KitRecipe(  # FLUX's blocks, no pooled vector, T5 alone
        "chroma", chroma_scenes.SIZE, lambda _: chroma_scenes.model(),
        lambda kit, seed, tokens: chroma_scenes.cond(seed, tokens=tokens or 16),
        lambda kit: chroma_scenes.cond(2), long_tokens=40),
    "qwen_image": KitRecipe(  # 5-D Wan 2.1 latents, text-first joint attention, text RoPE
        "qwen_image", qwen_scenes.SIZE, lambda _: qwen_scenes.model(),
        lambda kit, seed, tokens: qwen_scenes.cond(seed, tokens=tokens or 12),
        lambda kit: qwen_scenes.cond(2), long_tokens=30),
}
KIT_NAMES = tuple(KITS)


@dataclass(frozen=True)
class FamilyKit:
    """A model of one kind and how to talk to it; `spec` is its family (`Family`)."""

    name: str  # one of KIT_NAMES
    spec: Any  # the layermem_core.families Family of its model
    size: int  # pixels, square
    model: Any  # a ComfyUI ModelPatcher, shared: never patched in place
    recipe: KitRecipe
    micro: bool = False  # PixArt-alpha's size micro-conditions

    @property
    def family(self) -> str:
        """What memories record (`fingerprint.family`)."""
        return self.spec.name

    @property
    def is_pixart(self) -> bool:
        return self.spec.name == "pixart"

    @property
    def joint(self) -> bool:
        """Joint attention (text and image tokens in one sequence): FLUX, SD3, Chroma, Qwen."""
        return self.spec.joint_attention

    @property
    def joint_blocks(self) -> int:
        """Routed joint attention calls per model call (SD3: its joint blocks; FLUX and Chroma:
        double + single blocks)."""
        dm = self.model.model.diffusion_model
        if hasattr(dm, "joint_blocks"):
            return len(dm.joint_blocks)
        if hasattr(dm, "transformer_blocks"):  # Qwen-Image
            return len(dm.transformer_blocks)
        return len(dm.double_blocks) + len(dm.single_blocks)

    @property
    def long_tokens(self) -> int:
        """A prompt length other than `cond`'s default (a longer prompt)."""
        return self.recipe.long_tokens

    def cond(self, seed: int, tokens: int | None = None) -> list:
        """A CONDITIONING like the kind's text encoder output (random embedding)."""
        return self.recipe.cond(self, seed, tokens)

    def negative(self) -> list:
        return self.recipe.negative(self)

    def mask(self, x0: float, y0: float, x1: float, y1: float) -> torch.Tensor:
        return scenes.box_mask(self.size, x0, y0, x1, y1)

    def start(self, layer_ops, sampler: str = "dpmpp_2m", scheduler: str = "karras",
              steps: int = 2, seed: int = 11):
        """The background memory (cfg 4.5)."""
        return layer_ops.start_memory(self.model, self.cond(1), self.negative(), self.size,
                                      self.size, seed=seed, steps=steps, cfg=4.5,
                                      sampler_name=sampler, scheduler=scheduler)

    def add(self, layer_ops, memory, box: tuple[float, float, float, float], seed: int,
            **kwargs):
        """AddLayer with a box mask and a prompt drawn from `seed`."""
        return layer_ops.add_layer(memory, self.model, self.cond(seed), self.mask(*box),
                                   seed=seed, **kwargs)


def check_kit(kit: FamilyKit) -> None:
    """The kit's test side agrees with its family's facts: the model is of that family, the
    scene size keeps its size rule, the conditioning has its encoder's widths."""
    spec = kit.spec
    if kit.recipe.family != spec.name or not spec.detect(kit.model):
        raise ValueError(f"kit {kit.name!r}: its model is not a {spec.label} model")
    if kit.size % spec.size_multiple or kit.size < spec.min_size:
        raise ValueError(f"kit {kit.name!r}: {kit.size} px breaks {spec.label}'s size rule "
                         f"(a multiple of {spec.size_multiple}, at least {spec.min_size})")
    for name, conditioning in (("cond", kit.cond(1)), ("negative", kit.negative())):
        embedding, extras = conditioning[0]
        if embedding.shape[-1] != spec.embed_width:
            raise ValueError(f"kit {kit.name!r}: its {name} is {embedding.shape[-1]} wide, "
                             f"{spec.label} takes {spec.embed_width}")
        pooled = extras.get("pooled_output")
        if spec.pooled_width is not None and (pooled is None
                                              or pooled.shape[-1] != spec.pooled_width):
            raise ValueError(f"kit {kit.name!r}: its {name} lacks the {spec.pooled_width}-wide "
                             f"pooled embedding {spec.label} needs")


def make_kit(name: str, load_pixart: Callable[[str], Any], families: Any = None) -> FamilyKit:
    """The kit called `name`; `load_pixart(variant)` loads a random PixArt file by variant name
    (the tests' session fixture, so each model is loaded once). `families`: the pack's
    `layermem_core.families` (default: the booted host's, as ComfyUI loaded it)."""
    if name not in KITS:
        raise ValueError(f"unknown kit {name!r}; one of {KIT_NAMES}")
    recipe = KITS[name]
    families = families if families is not None else comfy_host.booted().families
    kit = FamilyKit(name, families.get(recipe.family), recipe.size, recipe.load(load_pixart),
                    recipe, micro=recipe.micro)
    check_kit(kit)
    return kit
