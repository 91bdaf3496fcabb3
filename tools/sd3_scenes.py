"""Small random SD3 / SD3.5 models and SD3-shaped conditioning for tests (built once per process).

SD3's detection reads its shapes from the state dict (`model_detection.detect_unet_config`: depth
from x_embedder's width / 64, qk_norm from ln_q, MMDiT-X from x_block.attn2 keys), so a CPU-sized
model goes through ComfyUI's own loading path: a shrunken MMDiT is built with the classes the
loader picks (`supported_models.SD3` -> `model_base.SD3` -> OpenAISignatureMMDITWrapper) only to
get its keys and shapes, filled from a seed, and its state dict is loaded back with
`comfy.sd.load_diffusion_model_state_dict` (what UNETLoader calls), which detects it again.

Depth 2 (hidden 128, 2 heads of 64, the last block pre-only) with the real input widths: context
4096 (T5-XXL, CLIP-L + CLIP-G padded to 4096 before it), pooled 2048 (CLIP-L 768 + CLIP-G 1280),
16 latent channels. Variants: "medium35" (SD3.5 Medium's MMDiT-X: qk_norm rms and a second,
image-only self-attention in block 0), "large35" (qk_norm rms, no attn2), "sd3" (SD3 Medium: no
qk_norm).
"""
from __future__ import annotations

import functools

import torch

SIZE = 256  # px: a 32x32 latent, a 16x16 token grid
HIDDEN = 128  # 64 * depth: ComfyUI's MMDiT fixes head width 64 and heads = depth
VARIANTS = {
    "medium35": {"qk_norm": "rms", "x_block_self_attn_layers": [0]},
    "large35": {"qk_norm": "rms", "x_block_self_attn_layers": []},
    "sd3": {"qk_norm": None, "x_block_self_attn_layers": []},
}


def _config(variant: str, in_channels: int = 16, **overrides) -> dict:
    config = {
        "in_channels": in_channels, "out_channels": 16, "patch_size": 2, "depth": 2,
        "input_size": None, "adm_in_channels": 2048, "pos_embed_max_size": 32,
        "num_patches": 32 * 32, "pos_embed_scaling_factor": None,
        "context_embedder_config": {"target": "torch.nn.Linear",
                                    "params": {"in_features": 4096, "out_features": HIDDEN}},
    }
    config.update(VARIANTS[variant])
    config.update(overrides)
    return config


def state_dict(variant: str = "medium35", seed: int = 0, **overrides) -> dict:
    """A random checkpoint of the variant, keys as an SD3 UNETLoader file has them."""
    import comfy.supported_models as sm

    model_config = sm.SD3(_config(variant, **overrides))
    model_config.set_inference_dtype(torch.float32, None)
    dm = model_config.get_model({}).diffusion_model
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for name, p in list(dm.named_parameters()) + list(dm.named_buffers()):
        if name == "pos_embed":
            t = 0.1 * torch.randn(p.shape, generator=gen)
        elif p.dim() > 1:
            fan_in = p[0].numel()
            t = torch.randn(p.shape, generator=gen) / fan_in ** 0.5
        elif name.endswith("ln_q.weight") or name.endswith("ln_k.weight"):
            t = 1.0 + 0.05 * torch.randn(p.shape, generator=gen)
        else:
            t = 0.02 * torch.randn(p.shape, generator=gen)
        out[name] = t.contiguous()
    return out


def build(variant: str = "medium35", seed: int = 0, **overrides):
    """A ModelPatcher of a random small SD3-family model, through ComfyUI's loader path."""
    import comfy.sd

    sd = state_dict(variant, seed, **overrides)
    model = comfy.sd.load_diffusion_model_state_dict(sd, model_options={"dtype": torch.float32})
    if model is None:
        raise RuntimeError("ComfyUI did not detect the random SD3 state dict")
    return model


@functools.cache
def model(variant: str = "medium35"):
    """The shared small model of `variant` (never patched in place)."""
    return build(variant, 0)


def cond(seed: int, tokens: int = 16, pooled: bool = True, width: int = 4096,
         control: object = None) -> list:
    """A CONDITIONING shaped as ComfyUI's SD3 text encoder gives it: CLIP-L + CLIP-G tokens
    (768 + 1280, zero-padded to 4096) followed by T5-XXL tokens (4096), pooled CLIP-L + CLIP-G
    (2048). Real prompts are 77 + 77 tokens; the stand-in uses `tokens` of each half."""
    g = torch.Generator().manual_seed(seed)
    clip = torch.randn(1, tokens - tokens // 2, 2048, generator=g) * 0.5
    clip = torch.nn.functional.pad(clip, (0, width - 2048)) if width >= 2048 else clip[..., :width]
    t5 = torch.randn(1, tokens // 2, width, generator=g) * 0.5
    extras: dict = {}
    if pooled:
        extras["pooled_output"] = torch.randn(1, 2048, generator=g)
    if control is not None:
        extras["control"] = control
    return [[torch.cat([clip, t5], 1), extras]]
