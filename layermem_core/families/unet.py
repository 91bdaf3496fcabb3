"""SD 1.5 and SDXL base UNets: two instances of one family module (the same MQD on attn2,
ownership pooled per UNet level), differing in encoder width, the pooled input and detection.
Their MQD is `unet_mqd` / `unet_mqd_run`, imported when a run is made: this module imports no
ComfyUI.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .base import AttentionRun, Family, ModelDescription

_UNET_SIGNATURE = ("diffusion_model.out.2.bias", "diffusion_model.time_embed.0.bias")
_TOKEN_GRID = "each UNet level: area-pooled latent mask >= 50%"


def _plain_unet(model: Any) -> Any:
    """The inner BaseModel when it takes plain 4-channel latents, else None (inpainting and
    instruct-pix2pix variants need extra latent inputs the memory does not hold)."""
    inner = getattr(model, "model", None)
    config = getattr(inner, "model_config", None)
    in_channels = getattr(config, "unet_config", {}).get("in_channels", 4)
    return inner if in_channels == 4 else None


def _is_sd15(model: Any) -> bool:
    import comfy.model_base as mb
    import comfy.supported_models as sm

    inner = _plain_unet(model)
    return isinstance(getattr(inner, "model_config", None), sm.SD15) and type(inner) is mb.BaseModel


def _is_sdxl(model: Any) -> bool:
    import comfy.model_base as mb
    import comfy.supported_models as sm

    inner = _plain_unet(model)
    return isinstance(getattr(inner, "model_config", None), sm.SDXL) and isinstance(inner, mb.SDXL)


def _describe(inner: Any) -> ModelDescription:
    from .unet_mqd_run import attn2_blocks

    return ModelDescription(
        image_model=type(inner.model_config).__name__,  # SD15, SDXL, SSD1B, Segmind_Vega, ...
        depth=len(attn2_blocks(inner.diffusion_model)),
        micro_condition=inner.model_config.unet_config.get("adm_in_channels") is not None)


def _owns_tokens(latent_mask: Any) -> bool:
    """At the finest level (the latent grid itself) a latent pixel at >= 50% owns its token."""
    from ..masks import TOKEN_THRESHOLD

    return bool((latent_mask >= TOKEN_THRESHOLD).any())


def _attention_run(layers: Sequence[Any]) -> AttentionRun:
    from .unet_mqd_run import UNetMQDRun

    return UNetMQDRun.for_layers(layers)


# SD 1.5's UNet halves its grid three times (/8), SDXL's twice (/4): a crop aligned to 8 latent
# cells keeps every level of both on the full picture's grid, so MQD pools its masks there as
# the whole picture's run does.
CROP_CELLS = 8


def sdxl_crop_extras(extras: tuple, crop_px: tuple[int, int, int, int],
                     picture_px: tuple[int, int]) -> tuple:
    """SDXL's size conditioning for a run on a crop: what its training crops said.

    SDXL was trained on crops of larger pictures: (width, height) the original picture,
    (crop_w, crop_h) where the crop starts in it, (target_width, target_height) the size of the
    image the UNet made. A run around the mask is exactly that: width/height stay the prompt's
    (the full picture's when the prompt has none), crop_w/crop_h move by the crop's offset (in
    the prompt's original-size frame), target_width/target_height are the crop's size.
    """
    left, top, w, h = crop_px
    pic_w, pic_h = picture_px
    e = dict(extras)
    width, height = int(e.get("width", pic_w)), int(e.get("height", pic_h))
    e.update(width=width, height=height,
             crop_w=int(e.get("crop_w", 0)) + round(left * width / pic_w),
             crop_h=int(e.get("crop_h", 0)) + round(top * height / pic_h),
             target_width=w, target_height=h)
    return tuple(sorted(e.items()))


def _unet(name: str, label: str, checkpoint: str, embed_width: int, pooled_width: int | None,
          encoder: str, encoder_fix: str, encoder_widths: tuple[tuple[int, str], ...],
          signature_keys: tuple[str, ...], detect, pooled_encoder: str = "",
          crop_extras=None) -> Family:
    return Family(
        name=name, label=label, embed_width=embed_width, pooled_width=pooled_width,
        latent_channels=4, size_multiple=8, min_size=64, token_grid=_TOKEN_GRID,
        loader_hint=f"CheckpointLoaderSimple with an {checkpoint}",
        encoder=encoder, encoder_fix=encoder_fix, encoder_widths=encoder_widths,
        signature_keys=signature_keys,
        min_file_version=3,  # version 3 added the family and pooled embeddings
        detect=detect, describe=_describe, attention_run=_attention_run,
        owns_tokens=_owns_tokens,
        pooled_encoder=pooled_encoder,
        crop_cells=CROP_CELLS,  # no positional embedding: a crop needs no patch
        crop_extras=crop_extras)


SD15 = _unet(
    "sd15", "SD 1.5", "SD 1.5 checkpoint", 768, None, "CLIP-L",
    "encode the prompt with the SD 1.5 checkpoint's CLIP (CheckpointLoaderSimple -> "
    "CLIPTextEncode)",
    ((768, "CLIP-L, SD 1.5"),), _UNET_SIGNATURE, _is_sd15)

SDXL = _unet(
    "sdxl", "SDXL", "SDXL base checkpoint", 2048, 1280, "CLIP-L + CLIP-G",
    "encode the prompt with the SDXL checkpoint's CLIP (CheckpointLoaderSimple -> "
    "CLIPTextEncode or CLIPTextEncodeSDXL)",
    ((2048, "CLIP-L + CLIP-G, SDXL"), (1280, "CLIP-G only, the SDXL refiner")),
    _UNET_SIGNATURE + ("diffusion_model.label_emb.0.0.bias",), _is_sdxl, pooled_encoder="CLIP-G",
    crop_extras=sdxl_crop_extras)
