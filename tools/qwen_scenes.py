"""A small random Qwen-Image model and Qwen-shaped conditioning for tests (built once per process).

ComfyUI's detection of Qwen-Image reads only in_channels and the block count (every width is the
class default: hidden 3072, context 3584), so a CPU-sized model is built with the classes the
loader picks (`supported_models.QwenImage` -> `model_base.QwenImage` -> `ModelPatcher`) and a
shrunken unet_config (2 heads of 32, one block) with the real input widths: Qwen2.5-VL context
3584, 16 latent channels (5-D latents [B, 16, 1, h, w]). Weights are filled from a seed.
"""
from __future__ import annotations

import functools

import torch

SIZE = 256  # px: a 32x32 latent, a 16x16 token grid
CONFIG = {
    "image_model": "qwen_image", "in_channels": 64, "out_channels": 16, "num_layers": 1,
    "attention_head_dim": 32, "num_attention_heads": 2, "joint_attention_dim": 3584,
    "axes_dims_rope": (8, 12, 12),
}


def build(seed: int = 0, **overrides):
    """A ModelPatcher of a random small Qwen-Image."""
    import comfy.model_management as mm
    import comfy.model_patcher
    import comfy.supported_models as sm

    model_config = sm.QwenImage(dict(CONFIG, **overrides))
    model_config.set_inference_dtype(torch.float32, None)
    inner = model_config.get_model({})
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in inner.diffusion_model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) / p.shape[-1] ** 0.5 if p.dim() > 1
                    else 1.0 + 0.05 * torch.randn(p.shape, generator=gen))
    inner = inner.to(mm.unet_offload_device())
    return comfy.model_patcher.ModelPatcher(inner, load_device=mm.get_torch_device(),
                                           offload_device=mm.unet_offload_device())


@functools.cache
def model():
    """The shared small Qwen-Image (never patched in place)."""
    return build(0)


def cond(seed: int, tokens: int = 12):
    """Qwen2.5-VL-shaped conditioning: [1, tokens, 3584], no pooled vector."""
    gen = torch.Generator().manual_seed(seed)
    return [[torch.randn(1, tokens, 3584, generator=gen), {}]]
