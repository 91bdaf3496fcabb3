"""Refuse what cannot work before any sampling starts: wrong model, wrong memory."""

from __future__ import annotations

import torch

from . import families
from .errors import LayerMemoryError
from .memory import LayerMemory, ModelFingerprint

SIGNATURE_KEYS = {
    "pixart": ("diffusion_model.final_layer.linear.bias", "diffusion_model.t_block.1.bias"),
    "sd15": ("diffusion_model.out.2.bias", "diffusion_model.time_embed.0.bias"),
    "sdxl": (
        "diffusion_model.out.2.bias",
        "diffusion_model.time_embed.0.bias",
        "diffusion_model.label_emb.0.0.bias",
    ),
}


def _describe(model) -> str:
    inner = getattr(model, "model", None)
    found = type(inner).__name__ if inner is not None else type(model).__name__
    config = getattr(inner, "model_config", None)
    if config is None:
        return found
    image_model = getattr(config, "unet_config", {}).get("image_model") or type(config).__name__
    return f"{found} ({image_model})"


def require_supported(model, input_name: str = "model") -> str:
    """The family ("pixart", "sd15", "sdxl") of a MODEL layer memory can work with."""
    family = families.family_of(model)
    if family is None:
        raise LayerMemoryError(
            input_name,
            f"this is a {_describe(model)} model, not PixArt, SD 1.5 or SDXL; layer memory works "
            "with "
            "PixArt-alpha/Sigma and SD 1.5 / SDXL base models (not inpainting or instruct-pix2pix "
            "variants)",
            "load a PixArt checkpoint with LoadPixArt, or an SD 1.5 / SDXL checkpoint with "
            "CheckpointLoaderSimple, and connect its MODEL",
        )
    return family


def require_pixart(model, input_name: str = "model") -> None:
    """A MODEL whose diffusion model is ComfyUI's PixArtMS (alpha or sigma)."""
    if families.family_of(model) != "pixart":
        raise LayerMemoryError(
            input_name,
            f"this is a {_describe(model)} model, not PixArt; this node loads and checks PixArt",
            "load a PixArt-alpha or PixArt-Sigma checkpoint with LoadPixArt (or UNETLoader) and "
            "connect its MODEL",
        )


def _base_weight(model, key: str) -> torch.Tensor:
    """The checkpoint's weight, not a LoRA-patched copy that happens to be loaded."""
    backup = getattr(model, "backup", {}) or {}
    if key in backup:
        return backup[key].weight
    return model.get_model_object(key)


def _signature(model, keys) -> tuple[float, ...]:
    signature: list[float] = []
    for key in keys:
        w = _base_weight(model, key).detach().to("cpu", torch.float64).reshape(-1)
        half = w.numel() // 2
        signature += [float(w.abs().sum()), float(w[:half].sum()), float(w[half:].sum())]
    return tuple(signature)


def fingerprint(model) -> ModelFingerprint:
    """Family, architecture and a weight signature: enough to refuse another model's memory."""
    family = require_supported(model)
    inner = model.model
    config = inner.model_config.unet_config
    if family == "pixart":
        image_model = str(config.get("image_model", "pixart"))
        depth = int(config.get("depth", len(inner.diffusion_model.blocks)))
        micro = bool(getattr(inner.diffusion_model, "micro_conditioning", False))
    else:
        from .mqd_unet import attn2_blocks

        image_model = type(inner.model_config).__name__  # SD15, SDXL, SSD1B, Segmind_Vega, ...
        depth = len(attn2_blocks(inner.diffusion_model))
        micro = config.get("adm_in_channels") is not None
    return ModelFingerprint(
        image_model=image_model,
        depth=depth,
        micro_condition=micro,
        latent_channels=int(inner.latent_format.latent_channels),
        weight_signature=_signature(model, SIGNATURE_KEYS[family]),
        family=family,
    )


def require_same_model(memory: LayerMemory, model, input_name: str = "model") -> str:
    """The model's family, after checking it is the model the memory was made with."""
    family = require_supported(model, input_name)
    made_with = memory.fingerprint.family
    if family != made_with:
        mine, theirs = families.get(made_with), families.get(family)
        raise LayerMemoryError(
            input_name,
            f"the memory was made with a {mine.label} model; this is a {theirs.label} model",
            f"connect the {mine.label} MODEL the memory was made with ({mine.loader_hint})",
        )
    reason = memory.fingerprint.mismatch(fingerprint(model))
    if reason:
        raise LayerMemoryError(
            input_name,
            f"the memory was made with another model ({reason})",
            "connect the same MODEL the memory was made with (a memory replays that model's "
            "trajectory)",
        )
    return family


def require_memory(memory, input_name: str = "memory") -> LayerMemory:
    if not isinstance(memory, LayerMemory):
        raise LayerMemoryError(
            input_name,
            f"expected a LAYER_MEMORY, got {type(memory).__name__}",
            "connect the memory output of LayerMemory, AddLayer, DeleteLayer or LoadLayerMemory",
        )
    return memory
