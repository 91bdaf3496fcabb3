"""Chroma (ComfyUI's model_base.Chroma, image_model "chroma"): a FLUX.1 schnell descendant with
no CLIP pooled vector (its modulations come from an approximator over the timestep, a guidance
value and the block index) and T5-XXL text alone (CLIPLoader type "chroma" -> CLIPTextEncode).
The family's facts, what it refuses (Chroma Radiance, which samples pixels, not latents) and its
owner rule. Its MQD is FLUX's (`chroma_mqd`), imported when a run is made: this module imports
no ComfyUI at import time.

The latents are FLUX's 16-channel VAE space (supported_models.Chroma uses latent_formats.Flux),
image tokens are 2x2 latent cells (16 px), row-major, after the text tokens. ComfyUI's T5 for
Chroma pads nothing and returns no attention mask, so there is no padding mask to fold into MQD's
bias; a conditioning that carries an `attention_mask` is refused (a memory keeps only the
embedding and scalar extras, so it would drop the mask silently). The guidance value is what
ComfyUI gives the model (0 unless a FluxGuidance node set one), kept per layer like FLUX's.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..errors import LayerMemoryError
from .base import AttentionRun, Family, ModelDescription, owns_patch_token
from .flux import LATENT_CHANNELS, _in_channels

LOADER = "load a Chroma model (latent space, not Radiance) with UNETLoader"


def _inner(model: Any) -> Any:
    return getattr(model, "model", None)


def _chroma_class(inner: Any) -> bool:
    import comfy.model_base as mb

    return isinstance(inner, mb.Chroma)


def _radiance(inner: Any) -> bool:
    import comfy.model_base as mb

    radiance = getattr(mb, "ChromaRadiance", None)
    config = getattr(getattr(inner, "model_config", None), "unet_config", {})
    return ((radiance is not None and isinstance(inner, radiance))
            or config.get("image_model") == "chroma_radiance")


def _is_chroma(model: Any) -> bool:
    inner = _inner(model)
    if not _chroma_class(inner) or _radiance(inner):
        return False
    config = getattr(inner, "model_config", None)
    return (getattr(config, "unet_config", {}).get("image_model") == "chroma"
            and _in_channels(inner) == LATENT_CHANNELS)


def _refusal(model: Any) -> tuple[str, str] | None:
    """(problem, fix) for Chroma-class models layer memory cannot drive, else None."""
    inner = _inner(model)
    if not _chroma_class(inner):
        return None
    if _radiance(inner):
        return ("this is a Chroma Radiance model: it samples pixels (16x16 patches of RGB), not "
                "latents, and a memory holds 16-channel latent trajectories", LOADER)
    channels = _in_channels(inner)
    if channels != LATENT_CHANNELS:
        return (f"this Chroma model takes {channels} input channels per latent cell, and a "
                "memory holds plain 16-channel latents only", LOADER)
    return None


def _describe(inner: Any) -> ModelDescription:
    dm = inner.diffusion_model
    return ModelDescription(image_model="chroma",
                            depth=len(dm.double_blocks) + len(dm.single_blocks),
                            micro_condition=False)


def _check_extras(extras: dict, input_name: str, model: Any) -> None:
    """Refuse conditioning a memory would drop silently: an attention mask (a memory replays a
    layer's embedding and scalar extras only)."""
    if extras.get("attention_mask") is not None:
        raise LayerMemoryError(
            input_name, "the conditioning carries an attention mask; a memory replays its "
            "layers' prompts without it (and MQD builds the model's attention mask itself)",
            "connect the text encode's output directly, without the node that adds the mask")


def _attention_run(layers: Sequence[Any]) -> AttentionRun:
    from .chroma_mqd import ChromaMQDRun

    return ChromaMQDRun.for_layers(layers)


CHROMA = Family(
    name="chroma",
    label="Chroma",
    embed_width=4096,
    pooled_width=None,
    latent_channels=LATENT_CHANNELS,
    size_multiple=16,
    min_size=64,
    token_grid="2x2 tokens, covered at >= 50%",
    loader_hint="UNETLoader with a Chroma model (CLIPLoader type 'chroma' with T5-XXL)",
    encoder="T5-XXL",
    encoder_fix="encode the prompt with Chroma's text encoder (CLIPLoader type 'chroma' with "
                "T5-XXL -> CLIPTextEncode)",
    encoder_widths=((4096, "T5-XXL, PixArt, FLUX or SD3"),),  # as pixart.py names it
    signature_keys=("diffusion_model.final_layer.linear.bias", "diffusion_model.img_in.bias",
                    "diffusion_model.distilled_guidance_layer.in_proj.bias"),
    min_file_version=3,  # version 3 added the family and pooled embeddings
    detect=_is_chroma,
    describe=_describe,
    attention_run=_attention_run,
    owns_tokens=owns_patch_token,
    size_why="its latent patches are 2x2 at /8",
    min_size_why="below a 4x4 token grid a mask owns nothing recognisable",
    refusal=_refusal,
    check_extras=_check_extras,
    joint_attention=True,
)
