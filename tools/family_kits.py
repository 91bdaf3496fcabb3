"""One interface over the model kinds the shared invariants run on (issues 11, 21).

A `FamilyKit` is a small random model of one kind (PixArt-alpha, PixArt-Sigma, SD 1.5, SDXL,
FLUX.1 dev) with conditioning shaped as that kind's text encoder gives it, the scene size it
runs at on a CPU, and start/add shorthands. Tests written against a kit check one invariant for
every family without knowing which one it is; the per-family pieces live here and in
tools/unet_scenes.py and tools/flux_scenes.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from tools import flux_scenes, scenes, unet_scenes

KIT_NAMES = ("pixart_alpha", "pixart_sigma", "sd15", "sdxl", "flux")
PIXART_FILES = {"pixart_alpha": "pixart_alpha_512", "pixart_sigma": "pixart_sigma_512"}


@dataclass(frozen=True)
class FamilyKit:
    """A model of one kind and how to talk to it; `family` is what memories record."""

    name: str  # one of KIT_NAMES
    family: str  # "pixart", "sd15", "sdxl", "flux"
    size: int  # pixels, square
    model: Any  # a ComfyUI ModelPatcher, shared: never patched in place
    micro: bool = False  # PixArt-alpha's size micro-conditions

    @property
    def is_pixart(self) -> bool:
        return self.family == "pixart"

    @property
    def joint(self) -> bool:
        """Joint attention (text and image tokens in one sequence): FLUX."""
        return self.family == "flux"

    @property
    def long_tokens(self) -> int:
        """A prompt length other than `cond`'s default (a longer prompt)."""
        return {"pixart": 9, "flux": 40}.get(self.family, 154)

    def cond(self, seed: int, tokens: int | None = None) -> list:
        """A CONDITIONING like the kind's text encoder output (random embedding)."""
        if self.is_pixart:
            return scenes.cond(seed, tokens=tokens or 6, width=self.size, height=self.size,
                               micro=self.micro)
        if self.joint:
            return flux_scenes.cond(seed, tokens=tokens or 16)
        return unet_scenes.cond(self.family, seed, tokens=tokens or 77, size=self.size)

    def negative(self) -> list:
        if self.is_pixart:
            return scenes.negative(self.size, self.size, self.micro)
        if self.joint:
            return flux_scenes.cond(2)
        return unet_scenes.cond(self.family, 2, size=self.size)

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


def make_kit(name: str, load_pixart: Callable[[str], Any]) -> FamilyKit:
    """The kit called `name`; `load_pixart(variant)` loads a random PixArt file by variant name
    (the tests' session fixture, so each model is loaded once)."""
    if name in PIXART_FILES:
        return FamilyKit(name, "pixart", 512, load_pixart(PIXART_FILES[name]),
                         micro=name == "pixart_alpha")
    if name == "flux":
        return FamilyKit(name, "flux", flux_scenes.SIZE, flux_scenes.model())
    if name in unet_scenes.SIZE:
        return FamilyKit(name, name, unet_scenes.SIZE[name], unet_scenes.model(name))
    raise ValueError(f"unknown kit {name!r}; one of {KIT_NAMES}")
