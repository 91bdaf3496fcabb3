"""Refuse what cannot work before any sampling starts: wrong model, wrong memory."""

from __future__ import annotations

import logging

import torch

from . import families, sampling
from .errors import LayerMemoryError
from .families import Family
from .memory import LayerMemory, ModelFingerprint


def _describe(model) -> str:
    inner = getattr(model, "model", None)
    found = type(inner).__name__ if inner is not None else type(model).__name__
    config = getattr(inner, "model_config", None)
    if config is None:
        return found
    image_model = getattr(config, "unet_config", {}).get("image_model") or type(config).__name__
    return f"{found} ({image_model})"


def require_supported(model, input_name: str = "model") -> Family:
    """The family of a MODEL layer memory can work with."""
    family = families.family_of(model)
    refused = families.refusal(model) if family is None else None
    if refused is not None:
        raise LayerMemoryError(input_name, *refused)
    if family is None:
        raise LayerMemoryError(
            input_name,
            f"this is a {_describe(model)} model, not {families.supported()}; layer memory "
            "works with their base models (not inpainting or instruct-pix2pix variants)",
            f"load one with its loader ({families.loaders()}) and connect its MODEL",
        )
    return family


def require_family(model, family: Family, input_name: str = "model") -> None:
    """A MODEL of `family` (a loader node of one family checks what it loaded)."""
    if families.family_of(model) is not family:
        raise LayerMemoryError(
            input_name,
            f"this is a {_describe(model)} model, not {family.label}; this node loads and "
            f"checks {family.label}",
            f"load a {family.label} checkpoint with {family.loader_hint} and connect its MODEL",
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


def fingerprint(model, family: Family | None = None) -> ModelFingerprint:
    """Family, architecture and a weight signature: enough to refuse another model's memory
    (`family`: the model's, when the caller has checked it already)."""
    family = family or require_supported(model)
    inner = model.model
    described = family.describe(inner)
    return ModelFingerprint(
        image_model=described.image_model,
        depth=described.depth,
        micro_condition=described.micro_condition,
        latent_channels=int(inner.latent_format.latent_channels),
        weight_signature=_signature(model, family.signature_keys),
        family=family.name,
    )


def require_same_model(memory: LayerMemory, model, input_name: str = "model") -> Family:
    """The model's family, after checking it is the model the memory was made with."""
    family = require_supported(model, input_name)
    mine = families.get(memory.fingerprint.family)
    if family is not mine:
        theirs = family
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
    warn_if_schedule_differs(memory, model)
    return family


def warn_if_schedule_differs(memory: LayerMemory, model) -> None:
    """Say so when the MODEL's sampling (a ModelSamplingSD3 / ModelSamplingFlux / ModelSampling*
    node, another shift) would give other sigmas than the memory's schedule: every layer is
    sampled on the memory's own schedule (BCG replays it), so the new setting is not used.
    The model's sigmas come from `sampling.known_sigmas` when this process made them (no tensor
    op for the usual case: the memory's own schedule on the model that made it)."""
    s = memory.schedule
    mine = sampling.known_sigmas(model, s)
    if mine is s.sigmas:
        return
    if mine is None:
        try:
            mine = sampling.make_schedule(model, s.sampler_name, s.scheduler, s.steps,
                                          s.cfg).sigmas
        except Exception:  # noqa: BLE001 - a scheduler ComfyUI no longer has: nothing to compare
            return
    if mine.shape == s.sigmas.shape and torch.equal(mine, s.sigmas):
        sampling.remember_sigmas(model, s)
        return
    logging.getLogger("LayerMemory").warning(
        "LayerMemory: this MODEL's sampling gives other sigmas for %s / %s / %d steps than the "
        "memory's schedule (a ModelSampling node or its shift changed since the background: "
        "first sigmas %s here, %s in the memory). The memory's schedule is used, so its layers "
        "stay consistent; to sample with the new setting, start a new background with this "
        "MODEL.", s.sampler_name, s.scheduler, s.steps,
        [round(float(v), 4) for v in mine[:3]], [round(float(v), 4) for v in s.sigmas[:3]])


def require_memory(memory, input_name: str = "memory") -> LayerMemory:
    if not isinstance(memory, LayerMemory):
        raise LayerMemoryError(
            input_name,
            f"expected a LAYER_MEMORY, got {type(memory).__name__}",
            "connect the memory output of LayerMemory, AddLayer, DeleteLayer or LoadLayerMemory",
        )
    return memory
