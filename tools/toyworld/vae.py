"""The toy world's VAE: ComfyUI's TAESD architecture (comfy/taesd/taesd.py), trained here.

Why TAESD: ComfyUI builds it from an encoder and a decoder state dict through its own VAE class,
with SD 1.5's latent convention (vae_scale 0.18215: the decoder's input is the model-space
latent, which training keeps near unit variance so the SD 1.5 noise schedule fits it).
"""
from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from .comfy_env import ensure_comfy

WEIGHTS = Path(__file__).resolve().parent / "weights"
ENCODER_FILE = "toyworld_taesd_encoder.safetensors"
DECODER_FILE = "toyworld_taesd_decoder.safetensors"
SD15_SCALE = 0.18215  # ComfyUI's load_taesd("taesd") and latent_formats.SD15


def build() -> tuple[torch.nn.Module, torch.nn.Module]:
    """ComfyUI's TAESD Encoder and Decoder modules, freshly initialised (seed set by caller)."""
    ensure_comfy()
    from comfy.taesd.taesd import Decoder, Encoder

    enc, dec = Encoder(), Decoder()
    for module in (enc, dec):
        for m in module.modules():
            if isinstance(m, torch.nn.Conv2d):
                torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                if m.bias is not None:
                    torch.nn.init.zeros_(m.bias)
        for m in module.modules():  # residual blocks start near identity
            if type(m).__name__ == "Block":
                m.conv[-1].weight.data.mul_(0.1)
    return enc, dec


def save(enc: torch.nn.Module, dec: torch.nn.Module, folder: Path = WEIGHTS) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for module, name in ((enc, ENCODER_FILE), (dec, DECODER_FILE)):
        sd = {k: v.detach().to(torch.float16).contiguous() for k, v in module.state_dict().items()}
        save_file(sd, str(folder / name))


def load_modules(folder: Path = WEIGHTS) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The saved encoder and decoder as trainable modules (float32)."""
    enc, dec = build()
    for module, name in ((enc, ENCODER_FILE), (dec, DECODER_FILE)):
        sd = load_file(str(folder / name))
        module.load_state_dict({k: v.float() for k, v in sd.items()})
    return enc, dec


def comfy_vae(folder: Path = WEIGHTS):
    """A ComfyUI VAE object, built as nodes.VAELoader builds TAESD (same keys, same scale)."""
    ensure_comfy()
    import comfy.sd

    sd = {}
    for prefix, name in (("taesd_encoder.", ENCODER_FILE), ("taesd_decoder.", DECODER_FILE)):
        for key, value in load_file(str(folder / name)).items():
            sd[prefix + key] = value.float()
    sd["vae_scale"] = torch.tensor(SD15_SCALE)
    sd["vae_shift"] = torch.tensor(0.0)
    return comfy.sd.VAE(sd=sd)
