"""Qwen-Image (ComfyUI's model_base.QwenImage, image_model "qwen_image"): the family's facts, what
it refuses (Qwen-Image-Edit's reference latents, a ControlNet, other input widths) and its owner
rule. Its MQD (one routed joint attention call per block, per-prompt text RoPE) is
`qwen_image_mqd`, imported when a run is made: this module imports no ComfyUI at import time.

The latents are Wan 2.1's 16-channel space, 5-D [B, 16, 1, h, w] with a per-channel mean and
std. The memory stores the sampler's (internal) latents as [C, h, w] like every family: the run
adds the time axis at the model's boundary (layermem_core/time_axis.py), and `latent_out` gives
the user LATENT back 5-D through the format's own process_out. Image tokens are 2x2 latent cells
(16 px), row-major, after the text tokens.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..errors import LayerMemoryError
from .base import AttentionRun, Family, ModelDescription, owns_patch_token

LATENT_CHANNELS = 16
IN_CHANNELS = LATENT_CHANNELS * 4  # 2x2 patches packed by the model's process_img
LOADER = "load a Qwen-Image model with UNETLoader (CLIPLoader type 'qwen_image')"


def _inner(model: Any) -> Any:
    return getattr(model, "model", None)


def _qwen_class(inner: Any) -> bool:
    import comfy.model_base as mb

    return isinstance(inner, mb.QwenImage)


def _in_channels(inner: Any) -> int:
    """Input features per token as the loaded img_in has them, else as the config says."""
    weight = getattr(getattr(getattr(inner, "diffusion_model", None), "img_in", None), "weight",
                     None)
    if weight is not None and weight.dim() == 2:
        return int(weight.shape[1])
    return int(inner.model_config.unet_config.get("in_channels", IN_CHANNELS))


def _is_qwen_image(model: Any) -> bool:
    inner = _inner(model)
    if not _qwen_class(inner):
        return False
    config = getattr(getattr(inner, "model_config", None), "unet_config", {})
    return config.get("image_model") == "qwen_image" and _in_channels(inner) == IN_CHANNELS


def _refusal(model: Any) -> tuple[str, str] | None:
    """(problem, fix) for a Qwen-Image-class model layer memory cannot drive, else None."""
    inner = _inner(model)
    if not _qwen_class(inner) or _in_channels(inner) == IN_CHANNELS:
        return None
    return (f"this Qwen-Image model takes {_in_channels(inner)} input features per token, and a "
            f"memory holds plain 16-channel latents only ({IN_CHANNELS} per 2x2 token)", LOADER)


def _describe(inner: Any) -> ModelDescription:
    return ModelDescription(image_model="qwen_image",
                            depth=len(inner.diffusion_model.transformer_blocks),
                            micro_condition=False)


def _check_extras(extras: dict, input_name: str, model: Any) -> None:
    """Refuse conditioning the memory would drop or MQD would not route: Qwen-Image-Edit's
    reference latents (their tokens join the joint attention outside the bias) and a ControlNet
    (the memory replays its layers without the control image)."""
    if extras.get("reference_latents") is not None:
        raise LayerMemoryError(
            input_name, "the conditioning carries reference latents (Qwen-Image-Edit's "
            "TextEncodeQwenImageEdit or ReferenceLatent); a memory replays its layers without a "
            "reference image", "encode the prompt with CLIPTextEncode (no image input)")
    if extras.get("control") is not None:
        raise LayerMemoryError(
            input_name, "the conditioning carries a ControlNet; a memory replays its layers "
            "without the control image",
            "connect the text encode's output directly, without the ControlNet apply node")



def _attention_run(layers: Sequence[Any]) -> AttentionRun:
    from .qwen_image_mqd import QwenImageMQDRun

    return QwenImageMQDRun.for_layers(layers)


def _latent_out(internal: Any) -> Any:
    """[1, 16, h, w] internal -> the user's [1, 16, 1, h, w] (Wan 2.1's own process_out)."""
    import comfy.latent_formats

    return comfy.latent_formats.Wan21().process_out(internal.unsqueeze(2))


QWEN_IMAGE = Family(
    name="qwen_image",
    label="Qwen-Image",
    embed_width=3584,
    pooled_width=None,
    latent_channels=LATENT_CHANNELS,
    size_multiple=16,
    min_size=64,
    token_grid="2x2 tokens, covered at >= 50%",
    loader_hint="UNETLoader with a Qwen-Image model (CLIPLoader type 'qwen_image': "
                "Qwen2.5-VL 7B; VAELoader: the Qwen-Image VAE)",
    encoder="Qwen2.5-VL 7B",
    encoder_fix="encode the prompt with Qwen-Image's text encoder (CLIPLoader type "
                "'qwen_image' -> CLIPTextEncode)",
    encoder_widths=((3584, "Qwen2.5-VL (Qwen-Image)"),),
    signature_keys=("diffusion_model.proj_out.bias", "diffusion_model.img_in.bias",
                    "diffusion_model.txt_in.bias"),
    min_file_version=3,  # version 3 added the family
    detect=_is_qwen_image,
    describe=_describe,
    attention_run=_attention_run,
    owns_tokens=owns_patch_token,
    size_why="its latent patches are 2x2 at /8",
    min_size_why="below a 4x4 token grid a mask owns nothing recognisable",
    crop_why_not="Qwen-Image's image RoPE and text positions are not placed for a crop yet",
    refusal=_refusal,
    check_extras=_check_extras,
    joint_attention=True,
    latent_out=_latent_out,
)
