"""A small random Chroma model and Chroma-shaped conditioning for tests (built once per process).

ComfyUI's detection fixes Chroma's widths (hidden 3072, 24 heads, an approximator 5120 wide and
5 deep), so a CPU-sized model cannot come through its loader: it is built with the classes the
loader picks for Chroma (`supported_models.Chroma` -> `model_base.Chroma` -> `ModelPatcher`)
and a shrunken unet_config (hidden 64, 2 heads, one double and one single block, approximator
128 wide and 2 deep) with the real input widths: T5-XXL context 4096, 16 latent channels (64
per 2x2 patch), approximator input 64 (timestep 16 + guidance 16 + block index 32). ComfyUI's
ops leave weights uninitialised, so they are filled here from a seed. `state_dict` gives its
weights under the keys a Chroma UNETLoader file has, for detection checks.
"""
from __future__ import annotations

import functools

import torch

from tools import random_weights

SIZE = 256  # px: a 32x32 latent, a 16x16 token grid
CONFIG = {
    "image_model": "chroma", "in_channels": 64, "out_channels": 64, "context_in_dim": 4096,
    "hidden_size": 64, "mlp_ratio": 4.0, "num_heads": 2, "depth": 1, "depth_single_blocks": 1,
    "axes_dim": [4, 14, 14], "theta": 10000, "patch_size": 2, "qkv_bias": True,
    "in_dim": 64, "out_dim": 64, "hidden_dim": 128, "n_layers": 2,
}


def build(seed: int = 0, **overrides):
    """A ModelPatcher of a random small Chroma."""
    import comfy.supported_models as sm

    config = dict(CONFIG, **overrides)
    model_config = sm.Chroma(config)
    model_config.set_inference_dtype(torch.float32, None)
    inner = model_config.get_model({})
    return random_weights.patcher(inner, seed)


RADIANCE = {  # Chroma Radiance: 16x16 pixel patches, NeRF-style head (as model_detection sets)
    "image_model": "chroma_radiance", "in_channels": 3, "out_channels": 3, "patch_size": 16,
    "nerf_hidden_size": 64, "nerf_mlp_ratio": 4, "nerf_depth": 2, "nerf_max_freqs": 8,
    "nerf_tile_size": 32, "nerf_final_head_type": "conv", "nerf_embedder_dtype": torch.float32,
}


def build_radiance():
    """A ModelPatcher of a small Chroma Radiance (weights left as ComfyUI's ops make them: it
    is only ever refused)."""
    import comfy.model_management as mm
    import comfy.model_patcher
    import comfy.supported_models as sm

    model_config = sm.ChromaRadiance(dict(CONFIG, **RADIANCE))
    model_config.set_inference_dtype(torch.float32, None)
    inner = model_config.get_model({})
    return comfy.model_patcher.ModelPatcher(inner, load_device=mm.get_torch_device(),
                                           offload_device=mm.unet_offload_device())


@functools.cache
def model():
    """The shared small Chroma (never patched in place)."""
    return build(0)


def state_dict(model_patcher=None) -> dict:
    """The model's weights under a UNETLoader file's keys (no "diffusion_model." prefix)."""
    dm = (model_patcher or model()).model.diffusion_model
    return {k: v.detach() for k, v in dm.state_dict().items()}


def cond(seed: int, tokens: int = 16, width: int = 4096, guidance: float | None = None) -> list:
    """A CONDITIONING as CLIPTextEncode gives it for CLIPLoader type "chroma": T5-XXL tokens
    (unpadded, no attention mask) and no pooled output; `guidance` as FluxGuidance sets it."""
    g = torch.Generator().manual_seed(seed)
    extras: dict = {"pooled_output": None}
    if guidance is not None:
        extras["guidance"] = guidance
    return [[torch.randn(1, tokens, width, generator=g) * 0.5, extras]]
