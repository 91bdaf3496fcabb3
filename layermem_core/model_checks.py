"""Refuse what cannot work before any sampling starts: wrong model, wrong memory."""
from __future__ import annotations

import torch

from .errors import LayerMemoryError
from .memory import LayerMemory, ModelFingerprint

SIGNATURE_KEYS = ("diffusion_model.final_layer.linear.bias", "diffusion_model.t_block.1.bias")


def require_pixart(model, input_name: str = "model") -> None:
    """A MODEL whose diffusion model is ComfyUI's PixArtMS (alpha or sigma)."""
    from comfy.ldm.pixart.pixartms import PixArtMS

    inner = getattr(model, "model", None)
    diffusion_model = getattr(inner, "diffusion_model", None)
    if not isinstance(diffusion_model, PixArtMS):
        found = type(inner).__name__ if inner is not None else type(model).__name__
        image_model = getattr(getattr(inner, "model_config", None), "unet_config", {}).get("image_model", "unknown")
        raise LayerMemoryError(
            input_name,
            f"this is a {found} model ({image_model}), not PixArt; layer memory patches PixArt's DiT cross-attention",
            "load a PixArt-alpha or PixArt-Sigma checkpoint with LoadPixArt (or UNETLoader) and connect its MODEL",
        )


def _base_weight(model, key: str) -> torch.Tensor:
    """The checkpoint's weight, not a LoRA-patched copy that happens to be loaded."""
    backup = getattr(model, "backup", {}) or {}
    if key in backup:
        return backup[key].weight
    return model.get_model_object(key)


def fingerprint(model) -> ModelFingerprint:
    inner = model.model
    config = inner.model_config.unet_config
    signature: list[float] = []
    for key in SIGNATURE_KEYS:
        w = _base_weight(model, key).detach().to("cpu", torch.float64).reshape(-1)
        half = w.numel() // 2
        signature += [float(w.abs().sum()), float(w[:half].sum()), float(w[half:].sum())]
    return ModelFingerprint(
        image_model=str(config.get("image_model", "pixart")),
        depth=int(config.get("depth", len(inner.diffusion_model.blocks))),
        micro_condition=bool(getattr(inner.diffusion_model, "micro_conditioning", False)),
        latent_channels=int(inner.latent_format.latent_channels),
        weight_signature=tuple(signature),
    )


def require_same_model(memory: LayerMemory, model, input_name: str = "model") -> None:
    require_pixart(model, input_name)
    reason = memory.fingerprint.mismatch(fingerprint(model))
    if reason:
        raise LayerMemoryError(
            input_name,
            f"the memory was made with another model ({reason})",
            "connect the same PixArt MODEL the memory was made with (a memory replays that model's trajectory)",
        )


def require_memory(memory, input_name: str = "memory") -> LayerMemory:
    if not isinstance(memory, LayerMemory):
        raise LayerMemoryError(input_name, f"expected a LAYER_MEMORY, got {type(memory).__name__}",
                               "connect the memory output of LayerMemory, AddLayer, DeleteLayer or LoadLayerMemory")
    return memory
