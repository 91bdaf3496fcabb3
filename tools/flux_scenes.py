"""A small random FLUX.1 model and FLUX-shaped conditioning for tests (built once per process).

ComfyUI's detection fixes FLUX's widths (hidden 3072, 24 heads), so a CPU-sized model cannot
come through its loader: it is built with the classes the loader picks for FLUX
(`supported_models.Flux` -> `model_base.Flux` -> `ModelPatcher`) and a shrunken unet_config
(hidden 64, 2 heads, one double and one single block) with the real input widths: T5-XXL
context 4096, pooled CLIP-L 768, 16 latent channels, guidance embedding (dev). ComfyUI's ops
leave weights uninitialised, so they are filled here from a seed.
"""
from __future__ import annotations

import functools

import torch

from tools import random_weights

SIZE = 256  # px: a 32x32 latent, a 16x16 token grid
CONFIG = {
    "image_model": "flux", "in_channels": 16, "out_channels": 16, "vec_in_dim": 768,
    "context_in_dim": 4096, "hidden_size": 64, "mlp_ratio": 4.0, "num_heads": 2, "depth": 1,
    "depth_single_blocks": 1, "axes_dim": [4, 14, 14], "theta": 10000, "patch_size": 2,
    "qkv_bias": True, "guidance_embed": True,
}


def build(seed: int = 0, **overrides):
    """A ModelPatcher of a random small FLUX (dev unless guidance_embed=False is given)."""
    import comfy.supported_models as sm

    config = dict(CONFIG, **overrides)
    cls = sm.FluxSchnell if not config["guidance_embed"] else sm.Flux
    if config["in_channels"] != 16:
        cls = sm.FluxInpaint
    model_config = cls(config)
    model_config.set_inference_dtype(torch.float32, None)
    inner = model_config.get_model({})
    return random_weights.patcher(inner, seed)


@functools.cache
def model():
    """The shared small FLUX dev (never patched in place)."""
    return build(0)


def cond(seed: int, tokens: int = 16, guidance: float | None = 3.5, pooled: bool = True,
         width: int = 4096) -> list:
    """A CONDITIONING as CLIPTextEncodeFlux gives it (random T5 context, pooled CLIP-L,
    guidance); real use pads T5 to 256 tokens, the stand-in uses fewer."""
    g = torch.Generator().manual_seed(seed)
    extras: dict = {}
    if pooled:
        extras["pooled_output"] = torch.randn(1, 768, generator=g)
    if guidance is not None:
        extras["guidance"] = guidance
    return [[torch.randn(1, tokens, width, generator=g) * 0.5, extras]]
