"""FLUX.1 dev and schnell (ComfyUI's model_base.Flux with image_model "flux"): the family's facts,
what it refuses (Fill/Depth/Canny concat inputs, Kontext reference latents, a
guidance-distilled model without guidance; Chroma, a model_base.Flux subclass, is its own family:
chroma.py) and its owner rule. Its MQD (one routed joint
attention call per block) is `flux_mqd`, imported when a run is made: this module imports no
ComfyUI at import time.

The latents are FLUX's 16-channel VAE space; ComfyUI's process_latent_in/out (scale 0.3611,
shift 0.1159) convert them, and the memory stores the sampler's (internal) latents as for every
family. Image tokens are 2x2 latent cells (16 px), row-major, after the text tokens.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..errors import LayerMemoryError
from .base import AttentionRun, Family, ModelDescription, owns_patch_token

LATENT_CHANNELS = 16
GUIDANCE_FIX = ("put a FluxGuidance node after the text encode (or encode with "
                "CLIPTextEncodeFlux), e.g. guidance 3.5")


def _inner(model: Any) -> Any:
    return getattr(model, "model", None)


def _flux_class(inner: Any) -> bool:
    import comfy.model_base as mb

    return isinstance(inner, mb.Flux)


def _in_channels(inner: Any) -> int:
    """Input channels per latent cell as the loaded weights have them (a control LoRA may widen
    img_in after loading), else as the config says."""
    dm = getattr(inner, "diffusion_model", None)
    weight = getattr(getattr(dm, "img_in", None), "weight", None)
    patch = int(getattr(dm, "patch_size", 2) or 2)
    if weight is not None and weight.dim() == 2:
        return int(weight.shape[1]) // (patch * patch)
    return int(inner.model_config.unet_config.get("in_channels", LATENT_CHANNELS))


def _is_flux(model: Any) -> bool:
    import comfy.model_base as mb

    inner = _inner(model)
    if not _flux_class(inner) or isinstance(inner, mb.Chroma):
        return False
    config = getattr(inner, "model_config", None)
    return (getattr(config, "unet_config", {}).get("image_model") == "flux"
            and _in_channels(inner) == LATENT_CHANNELS)


def _refusal(model: Any) -> tuple[str, str] | None:
    """(problem, fix) for FLUX-like models layer memory cannot drive, else None."""
    import comfy.model_base as mb

    inner = _inner(model)
    if not _flux_class(inner):
        return None
    if isinstance(inner, mb.Chroma):
        return None  # its own family (chroma.py), which refuses Chroma Radiance
    channels = _in_channels(inner)
    if channels != LATENT_CHANNELS:
        return (f"this FLUX model takes {channels} input channels per latent cell (FLUX Fill, "
                "Depth or Canny: the picture or control image is concatenated to the latent), "
                "and a memory holds plain 16-channel latents only",
                "load the base FLUX.1 dev or schnell model with UNETLoader")
    return None


def _describe(inner: Any) -> ModelDescription:
    config = inner.model_config.unet_config
    dm = inner.diffusion_model
    depth = len(dm.double_blocks) + len(dm.single_blocks)
    # guidance_embed as the micro condition: dev takes the guidance value as a model input
    # beside the timestep, schnell does not; the fingerprint tells a dev memory from a schnell one
    return ModelDescription(image_model=str(config.get("image_model", "flux")), depth=depth,
                            micro_condition=bool(config.get("guidance_embed", False)))


def _check_extras(extras: dict, input_name: str, model: Any) -> None:
    """Refuse conditioning FLUX would take silently wrong: Kontext reference latents (the memory
    replays no reference image) and no guidance for a guidance-distilled model (ComfyUI would
    use 3.5 without saying so)."""
    if extras.get("reference_latents") is not None:
        raise LayerMemoryError(
            input_name, "the conditioning carries reference latents (FLUX Kontext's "
            "ReferenceLatent); a memory replays its layers without a reference image",
            "connect the text encode's output directly, without ReferenceLatent")
    inner = _inner(model)
    distilled = bool(getattr(getattr(inner, "model_config", None), "unet_config", {})
                     .get("guidance_embed", False))
    guidance = extras.get("guidance")
    if distilled and not isinstance(guidance, (int, float)):
        raise LayerMemoryError(
            input_name, "FLUX dev (a guidance-distilled model) needs a guidance value in the "
            "conditioning and this one has none", GUIDANCE_FIX)



def _attention_run(layers: Sequence[Any]) -> AttentionRun:
    from .flux_mqd import FluxMQDRun

    return FluxMQDRun.for_layers(layers)


FLUX = Family(
    name="flux",
    label="FLUX.1",
    embed_width=4096,
    pooled_width=768,
    latent_channels=LATENT_CHANNELS,
    size_multiple=16,
    min_size=64,
    token_grid="2x2 tokens, covered at >= 50%",
    loader_hint="UNETLoader with a FLUX.1 dev or schnell model (DualCLIPLoader type 'flux')",
    encoder="T5-XXL + CLIP-L",
    encoder_fix="encode the prompt with FLUX's text encoders (DualCLIPLoader type 'flux' -> "
                "CLIPTextEncodeFlux, or CLIPTextEncode then FluxGuidance)",
    encoder_widths=((4096, "T5-XXL, PixArt, FLUX or SD3"),),
    signature_keys=("diffusion_model.final_layer.linear.bias", "diffusion_model.img_in.bias",
                    "diffusion_model.time_in.in_layer.bias"),
    min_file_version=3,  # version 3 added the family and pooled embeddings
    detect=_is_flux,
    describe=_describe,
    attention_run=_attention_run,
    owns_tokens=owns_patch_token,
    pooled_encoder="CLIP-L",
    size_why="its latent patches are 2x2 at /8",
    min_size_why="below a 4x4 token grid a mask owns nothing recognisable",
    refusal=_refusal,
    check_extras=_check_extras,
    joint_attention=True,
)
