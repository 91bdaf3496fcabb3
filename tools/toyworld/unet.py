"""The toy world's UNet: a small SD 1.5 UNet built through ComfyUI's own classes (the same
construction as the pack's random SD 1.5 test UNet, tools/random_models.py), so the pack's real
nodes take it as SD 1.5. 128 px pictures give latents of 16x16: levels 16, 8, 4; attention
(and so MQD) at 8 and 4 only (why: attention at 16x16 nearly doubled a training step on
the 2 shared CPU cores here)."""
from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file

from .comfy_env import ensure_comfy

FILE = "toyworld_unet.safetensors"
WIDTHS = (32, (1, 2, 2))  # model channels, channel_mult: the first stage's UNet


def variant(model_channels: int = WIDTHS[0], channel_mult: tuple[int, ...] = WIDTHS[1]):
    ensure_comfy()
    from tools import random_models as rm

    return rm.UNetVariant("toyworld_sd15", "sd15", 768, None, False, model_channels, (1, 2),
                          tuple(channel_mult))


def widths_of(path: Path) -> tuple[int, tuple[int, ...]]:
    """(model channels, channel_mult) of a saved toy UNet, read off its tensors' shapes (one res
    block per level: input block 1 + 2 x level is the level's res block)."""
    from safetensors import safe_open

    from tools import random_models as rm

    with safe_open(str(path), "pt") as f:
        def channels(key: str) -> int:
            return f.get_slice(rm.UNET_PREFIX + key).get_shape()[0]

        base = channels("input_blocks.0.0.weight")
        mult = tuple(channels(f"input_blocks.{1 + 2 * level}.0.out_layers.3.weight") // base
                     for level in range(3))
    return base, mult


def base_model(seed: int = 0, model_channels: int = WIDTHS[0],
               channel_mult: tuple[int, ...] = WIDTHS[1]):
    """A fresh comfy.model_base.BaseModel (SD 1.5 config: eps prediction, its schedule),
    initialised here: ComfyUI's ops leave weights uninitialised (they expect a file)."""
    from tools import random_models as rm

    model = rm._model_config(variant(model_channels, channel_mult)).get_model({})
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.diffusion_model.named_parameters():
            if p.dim() > 1:
                fan_in = max(1, p[0].numel())
                p.copy_(torch.randn(p.shape, generator=gen) / fan_in ** 0.5)
            elif name.endswith("weight"):
                p.fill_(1.0)  # norm scales
            else:
                p.zero_()
        for p in model.diffusion_model.out[-1].parameters():  # the last conv: predict zero
            p.zero_()
    return model


def save(model, folder: Path) -> None:
    from tools import random_models as rm

    sd = {rm.UNET_PREFIX + k: v.detach().to(torch.float16).contiguous()
          for k, v in model.diffusion_model.state_dict().items()}
    save_file(sd, str(folder / FILE))


def load_patcher(folder: Path):
    """A ComfyUI ModelPatcher for the trained file, loaded as ComfyUI's loader does it."""
    from tools import random_models as rm

    return rm.load_unet(str(folder / FILE), variant(*widths_of(folder / FILE)))
