"""Small random-weight PixArt and TAESD files with the real key names.

ComfyUI's own detection (`comfy/model_detection.py`) and loaders take these files, so
tests exercise the same code paths as real checkpoints. Hidden size is fixed at 1152
by ComfyUI's detection; only the depth is ours to shrink.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from safetensors.torch import save_file

HIDDEN = 1152
CAPTION_CHANNELS = 4096  # T5-XXL width


@dataclass(frozen=True)
class PixArtVariant:
    """One checkpoint flavour: alpha (size micro-conditions) or sigma, at 512 or 1024 px."""

    name: str
    image_size: int
    micro_condition: bool

    @property
    def latent_size(self) -> int:
        return self.image_size // 8

    @property
    def filename(self) -> str:
        return f"random_{self.name}.safetensors"


ALPHA_512 = PixArtVariant("pixart_alpha_512", 512, True)
ALPHA_1024 = PixArtVariant("pixart_alpha_1024", 1024, True)
SIGMA_512 = PixArtVariant("pixart_sigma_512", 512, False)
VARIANTS = (ALPHA_512, ALPHA_1024, SIGMA_512)


def _linear(sd: dict, key: str, out_f: int, in_f: int, gen: torch.Generator,
            std: float = 0.02) -> None:
    sd[f"{key}.weight"] = torch.randn(out_f, in_f, generator=gen) * std
    sd[f"{key}.bias"] = torch.randn(out_f, generator=gen) * std


def pixart_state_dict(variant: PixArtVariant, depth: int = 1, seed: int = 0,
                      dtype=torch.float16) -> dict:
    """State dict in the original PixArt key layout that ComfyUI detects as PixArt."""
    gen = torch.Generator().manual_seed(seed)
    h = HIDDEN
    sd: dict[str, torch.Tensor] = {}
    sd["x_embedder.proj.weight"] = torch.randn(h, 4, 2, 2, generator=gen) * 0.05
    sd["x_embedder.proj.bias"] = torch.zeros(h)
    _linear(sd, "t_embedder.mlp.0", h, 256, gen)
    _linear(sd, "t_embedder.mlp.2", h, h, gen)
    _linear(sd, "t_block.1", 6 * h, h, gen)
    _linear(sd, "y_embedder.y_proj.fc1", h, CAPTION_CHANNELS, gen)
    _linear(sd, "y_embedder.y_proj.fc2", h, h, gen)
    sd["y_embedder.y_embedding"] = torch.randn(120, CAPTION_CHANNELS, generator=gen) * 0.02
    tokens = (variant.latent_size // 2) ** 2
    sd["pos_embed"] = torch.zeros(1, tokens, h)
    if variant.micro_condition:
        for emb in ("csize_embedder", "ar_embedder"):
            _linear(sd, f"{emb}.mlp.0", h // 3, 256, gen)
            _linear(sd, f"{emb}.mlp.2", h // 3, h // 3, gen)
    for i in range(depth):
        p = f"blocks.{i}"
        sd[f"{p}.scale_shift_table"] = torch.randn(6, h, generator=gen) / h ** 0.5
        _linear(sd, f"{p}.attn.qkv", 3 * h, h, gen)
        _linear(sd, f"{p}.attn.proj", h, h, gen)
        _linear(sd, f"{p}.cross_attn.q_linear", h, h, gen)
        _linear(sd, f"{p}.cross_attn.kv_linear", 2 * h, h, gen)
        _linear(sd, f"{p}.cross_attn.proj", h, h, gen)
        _linear(sd, f"{p}.mlp.fc1", 4 * h, h, gen)
        _linear(sd, f"{p}.mlp.fc2", h, 4 * h, gen)
    sd["final_layer.scale_shift_table"] = torch.randn(2, h, generator=gen) / h ** 0.5
    _linear(sd, "final_layer.linear", 2 * 2 * 8, h, gen)
    return {k: v.to(dtype).contiguous() for k, v in sd.items()}


def taesd_state_dicts(seed: int = 0) -> tuple[dict, dict]:
    """Random TAESD encoder and decoder, shaped by ComfyUI's own `comfy.taesd.taesd` modules."""
    from comfy.taesd.taesd import Decoder, Encoder  # needs the host on sys.path

    gen = torch.Generator().manual_seed(seed)
    out = []
    for module in (Encoder(), Decoder()):
        sd = {}
        for key, value in module.state_dict().items():
            fan_in = max(1, value[0].numel()) if value.dim() > 1 else 1
            scale = 1.0 / fan_in ** 0.5 if value.dim() > 1 else 0.0
            sd[key] = (torch.randn(value.shape, generator=gen) * scale).contiguous()
        out.append(sd)
    return out[0], out[1]


def write_models(models_dir: str, depth: int = 1, variants=VARIANTS) -> dict[str, str]:
    """Write every variant plus TAESD into a ComfyUI-style models folder; returns name -> path."""
    out: dict[str, str] = {}
    dm = os.path.join(models_dir, "diffusion_models")
    approx = os.path.join(models_dir, "vae_approx")
    os.makedirs(dm, exist_ok=True)
    os.makedirs(approx, exist_ok=True)
    for i, variant in enumerate(variants):
        path = os.path.join(dm, variant.filename)
        if not os.path.exists(path):
            save_file(pixart_state_dict(variant, depth=depth, seed=i), path)
        out[variant.name] = path
    enc, dec = taesd_state_dicts()
    for name, sd in (("taesd", (enc, dec)), ("taesdxl", (enc, dec))):
        for part, tensors in zip(("encoder", "decoder"), sd, strict=True):
            path = os.path.join(approx, f"{name}_{part}.safetensors")
            if not os.path.exists(path):
                save_file({k: v.contiguous() for k, v in tensors.items()}, path)
    return out
