"""SD3 Medium, SD3.5 Large and SD3.5 Medium (ComfyUI's model_base.SD3, an MMDiT:
OpenAISignatureMMDITWrapper): the family's facts, what it refuses and its owner rule. Its MQD
(one routed joint attention call per block; SD3.5 Medium's image-only attn2 stays stock) is
`sd3_mqd`, imported when a run is made: this module imports no ComfyUI at import time.

The latents are SD3's 16-channel VAE space; ComfyUI's process_latent_in/out (scale 1.5305, shift
0.0609) convert them, and the memory stores the sampler's (internal) latents and the shift as
for FLUX. Image tokens are 2x2 latent cells (16 px), row-major, after the text tokens.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..errors import LayerMemoryError
from .base import AttentionRun, Family, ModelDescription, owns_patch_token

LATENT_CHANNELS = 16
LOADER = ("load an SD3 Medium, SD3.5 Large or SD3.5 Medium model with UNETLoader or "
          "CheckpointLoaderSimple")


def _inner(model: Any) -> Any:
    return getattr(model, "model", None)


def _sd3_class(inner: Any) -> bool:
    import comfy.model_base as mb

    return isinstance(inner, mb.SD3)


def _in_channels(inner: Any) -> int:
    """Input channels per latent cell as the loaded patch embedding has them."""
    dm = getattr(inner, "diffusion_model", None)
    weight = getattr(getattr(getattr(dm, "x_embedder", None), "proj", None), "weight", None)
    if weight is not None and weight.dim() == 4:
        return int(weight.shape[1])
    return int(inner.model_config.unet_config.get("in_channels", LATENT_CHANNELS))


def _unreachable(inner: Any) -> str | None:
    """What of this MMDiT the pack's hooks cannot reach, else None."""
    dm = getattr(inner, "diffusion_model", None)
    if _in_channels(inner) != LATENT_CHANNELS:
        return (f"this SD3 model takes {_in_channels(inner)} input channels per latent cell (an "
                "image is concatenated to the latent), and a memory holds plain 16-channel "
                "latents only")
    if getattr(dm, "context_processor", None) is not None:
        return ("this MMDiT runs a context processor (self-attention over the prompt tokens, "
                "outside the joint attention MQD routes), which would mix the layers' prompts")
    if int(getattr(dm, "register_length", 0) or 0) > 0:
        return "this MMDiT prepends register tokens to the prompt, which MQD does not route"
    return None


def _is_sd3(model: Any) -> bool:
    inner = _inner(model)
    return _sd3_class(inner) and _unreachable(inner) is None


def _refusal(model: Any) -> tuple[str, str] | None:
    """(problem, fix) for SD3-class models layer memory cannot drive, else None."""
    inner = _inner(model)
    if not _sd3_class(inner):
        return None
    problem = _unreachable(inner)
    return None if problem is None else (problem, LOADER)


def variant(inner: Any) -> str:
    """"sd3.5-mmdit-x" (SD3.5 Medium: a second, image-only self-attention in some blocks),
    "sd3.5" (qk_norm: SD3.5 Large) or "sd3" (SD3 Medium)."""
    config = inner.model_config.unet_config
    if config.get("x_block_self_attn_layers"):
        return "sd3.5-mmdit-x"
    return "sd3.5" if config.get("qk_norm") else "sd3"


def _describe(inner: Any) -> ModelDescription:
    return ModelDescription(image_model=variant(inner),
                            depth=len(inner.diffusion_model.joint_blocks), micro_condition=False)


def _check_extras(extras: dict, input_name: str, model: Any) -> None:
    """Refuse conditioning the memory would drop: a ControlNet applied to the prompt (a memory
    replays its layers without the control image, and MMDiT adds the control to the image
    tokens, outside MQD)."""
    if extras.get("control") is not None:
        raise LayerMemoryError(
            input_name, "the conditioning carries a ControlNet (ControlNetApply / "
            "ControlNetApplySD3); a memory replays its layers without the control image",
            "connect the text encode's output directly, without the ControlNet apply node")



def _attention_run(layers: Sequence[Any]) -> AttentionRun:
    from .sd3_mqd import SD3MQDRun

    return SD3MQDRun.for_layers(layers)


SD3 = Family(
    name="sd3",
    label="SD3.5",
    embed_width=4096,
    pooled_width=2048,
    latent_channels=LATENT_CHANNELS,
    size_multiple=16,
    min_size=64,
    token_grid="2x2 tokens, covered at >= 50%",
    loader_hint="UNETLoader or CheckpointLoaderSimple with an SD3 Medium, SD3.5 Large or "
                "SD3.5 Medium model (TripleCLIPLoader: CLIP-L, CLIP-G, T5-XXL)",
    encoder="CLIP-L + CLIP-G + T5-XXL",
    encoder_fix="encode the prompt with SD3's text encoders (TripleCLIPLoader or the "
                "checkpoint's CLIP -> CLIPTextEncode or CLIPTextEncodeSD3)",
    encoder_widths=((4096, "T5-XXL, PixArt, FLUX or SD3"),),
    signature_keys=("diffusion_model.final_layer.linear.bias",
                    "diffusion_model.x_embedder.proj.bias",
                    "diffusion_model.t_embedder.mlp.0.bias"),
    min_file_version=3,  # version 3 added the family and pooled embeddings
    detect=_is_sd3,
    describe=_describe,
    attention_run=_attention_run,
    owns_tokens=owns_patch_token,
    pooled_encoder="CLIP-L + CLIP-G",
    size_why="its latent patches are 2x2 at /8",
    min_size_why="below a 4x4 token grid a mask owns nothing recognisable",
    refusal=_refusal,
    check_extras=_check_extras,
    joint_attention=True,
)
