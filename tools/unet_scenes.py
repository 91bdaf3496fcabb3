"""Small SD 1.5 / SDXL models and conditioning for tests and benchmarks (built once per process).

The UNets come from tools/random_models.py (ComfyUI's own SD15 / SDXL model classes with a
shrunken unet_config, random weights written to a checkpoint-layout file and loaded back).
Sizes keep the CPU cost small: SD 1.5 at 128 px (levels 16, 8, 4), SDXL at 256 px (32, 16, 8).
"""

from __future__ import annotations

import functools
import tempfile

import torch

SIZE = {"sd15": 128, "sdxl": 256}
WIDTH = {"sd15": 768, "sdxl": 2048}
_DIR = tempfile.mkdtemp(prefix="lm_unet_")


@functools.cache
def _paths() -> dict:
    from tools import random_models

    return random_models.write_unet_models(_DIR)


@functools.cache
def model(family: str):
    """The small random UNet of `family` as a ComfyUI ModelPatcher (shared; never mutated)."""
    from tools import random_models

    variant = {"sd15": random_models.SD15_SMALL, "sdxl": random_models.SDXL_SMALL}[family]
    return random_models.load_unet(_paths()[variant.name], variant)


def fresh_model(family: str, seed: int):
    """Same architecture, other random weights (for 'another model' checks)."""
    from tools import random_models

    variant = {"sd15": random_models.SD15_SMALL, "sdxl": random_models.SDXL_SMALL}[family]
    path = f"{_DIR}/other_{family}_{seed}.safetensors"
    from safetensors.torch import save_file

    save_file(random_models.unet_state_dict(variant, seed=seed), path)
    return random_models.load_unet(path, variant)


def cond(family: str, seed: int, tokens: int = 77, pooled: bool = True,
         size: int | None = None) -> list:
    """A CONDITIONING as the family's CLIP text encode gives it (random embedding)."""
    g = torch.Generator().manual_seed(seed)
    extras: dict = {}
    if family == "sdxl":
        size = size or SIZE[family]
        extras = {
            "width": size,
            "height": size,
            "crop_w": 0,
            "crop_h": 0,
            "target_width": size,
            "target_height": size,
        }
        if pooled:
            extras["pooled_output"] = torch.randn(1, 1280, generator=g)
    return [[torch.randn(1, tokens, WIDTH[family], generator=g), extras]]

