"""PixArt-alpha and PixArt-Sigma (ComfyUI's PixArtMS): the family's facts, its owner rule and
its run estimate. Its MQD (one routed cross-attention call per DiT block) is `pixart_mqd`,
imported when a run is made, so this module imports no ComfyUI.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from .base import AttentionRun, Family, ModelDescription, owns_patch_token

# The run estimate (see `run_bytes`): for N = (h/2)(w/2) tokens of PixArt's 2x2 patches and
# the CFG batch of 2.
HIDDEN, HEADS, CFG_BATCH = 1152, 16, 2
ACTIVATION_COPIES = 16
SCORE_BLOCK = 1024
LATENT_CHANNELS = 4


def _is_pixart(model: Any) -> bool:
    from comfy.ldm.pixart.pixartms import PixArtMS

    inner = getattr(model, "model", None)
    return isinstance(getattr(inner, "diffusion_model", None), PixArtMS)


def _describe(inner: Any) -> ModelDescription:
    config = inner.model_config.unet_config
    return ModelDescription(
        image_model=str(config.get("image_model", "pixart")),
        depth=int(config.get("depth", len(inner.diffusion_model.blocks))),
        micro_condition=bool(getattr(inner.diffusion_model, "micro_conditioning", False)))


def token_owners(token_masks: list[torch.Tensor]) -> torch.Tensor:
    """Owner index per token (row-major over the 2x2 token grid), in mask order.

    `token_masks` are the layers above the background, oldest first; owner i >= 1 means
    token_masks[i - 1]. Later masks overwrite earlier ones: the newest layer owns its tokens,
    each older layer keeps what no newer mask covers, the background (owner 0) takes the rest.
    """
    if not token_masks:
        raise ValueError("token_owners needs at least one mask to know the grid size")
    owners = torch.zeros(token_masks[0].numel(), dtype=torch.long)
    for i, m in enumerate(token_masks, start=1):
        owners[m.reshape(-1)] = i
    return owners


def layer_owners(layers: Sequence[Any]) -> torch.Tensor:
    """Owner per token for these layers (background first): 0 is layers[0], i is layers[i]."""
    if len(layers) > 1:
        return token_owners([layer.token_mask for layer in layers[1:]])
    return torch.zeros(layers[0].token_mask.numel(), dtype=torch.long)



def _attention_run(layers: Sequence[Any]) -> AttentionRun:
    from .pixart_mqd import MQDRun

    return MQDRun.for_layers(layers)


def _crop_patches(full_hw: tuple[int, int], box: tuple[int, int, int, int]) -> list:
    """The crop's positional correction (pixart_crop): its tokens embedded at their place."""
    from .pixart_crop import CropPosition

    return [CropPosition(full_hw, box)]


def run_bytes(width: int, height: int, calls: int, itemsize: int,
              attention: str = "blocked") -> int:
    """Bytes one PixArt sampling run at width x height needs on its device.

    - activations: ACTIVATION_COPIES live [N, 1152] tensors per batch row in a DiT block (x,
      norms, q/k/v, attention and projection outputs, the 4x wide MLP hidden state);
    - self-attention scores, 16 heads: N x N per head where ComfyUI's attention materialises them
      (`attention_basic`: "full"; `attention_split` at its finest 1/64 slicing: "split"),
      otherwise one block of SCORE_BLOCK query rows against all N keys (sub-quadratic, SDPA,
      xformers, flash, sage: "blocked");
    - the trajectory: every call's latent recorded, plus the stored one replayed.
    """
    h, w = height // 8, width // 8
    tokens = (h // 2) * (w // 2)
    activations = CFG_BATCH * tokens * HIDDEN * itemsize * ACTIVATION_COPIES
    rows = {"full": tokens, "split": -(-tokens // 64)}.get(attention, min(tokens, SCORE_BLOCK))
    scores = CFG_BATCH * HEADS * rows * tokens * max(itemsize, 4)  # scores are kept in float32
    trajectory = 2 * calls * LATENT_CHANNELS * h * w * 4
    return activations + scores + trajectory


PIXART = Family(
    name="pixart",
    label="PixArt",
    embed_width=4096,
    pooled_width=None,
    latent_channels=LATENT_CHANNELS,
    size_multiple=16,
    min_size=512,
    token_grid="2x2 tokens, covered at >= 50%",
    loader_hint="LoadPixArt (or UNETLoader) with a PixArt checkpoint",
    encoder="T5-XXL",
    encoder_fix="encode the prompt with the T5-XXL text encoder (CLIPLoader type 'pixart', or "
                "LoadPixArt's CLIP)",
    encoder_widths=((4096, "T5-XXL, PixArt, FLUX or SD3"),),
    signature_keys=("diffusion_model.final_layer.linear.bias", "diffusion_model.t_block.1.bias"),
    min_file_version=2,  # version 2 files were PixArt's; packs reading them load these unchanged
    detect=_is_pixart,
    describe=_describe,
    attention_run=_attention_run,
    owns_tokens=owns_patch_token,
    run_bytes=run_bytes,
    size_why="its latent patches are 2x2 at /8",
    min_size_why="ComfyUI's PixArt divides by zero there",
    crop_cells=2,  # the 2x2 token grid: a crop's tokens are the full picture's tokens
    crop_patches=_crop_patches,
)
