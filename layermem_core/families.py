"""What differs between the model families layer memory supports: PixArt, SD 1.5 and SDXL.

Everything else (BCG, trajectories, deletion, the memory value) acts on the sampler's latents
and is the same for all three. Per family: how to recognise a loaded MODEL, the text
encoder's width and pooled output, the image-size rule, and how MQD is installed.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import LayerMemoryError


@dataclass(frozen=True)
class Family:
    name: str  # "pixart", "sd15", "sdxl"
    label: str  # for messages
    embed_width: int  # text-encoder width the model's cross-attention takes
    pooled_width: int | None  # a pooled text embedding the model needs (SDXL's CLIP-G), else None
    latent_channels: int
    size_multiple: int  # pixels; PixArt's 2x2 patches at /8 need 16, a UNet pads any multiple of 8
    min_size: int  # pixels; ComfyUI's PixArt divides by zero below 512
    token_grid: str  # how ownership is pooled for MQD (documented rule)
    loader_hint: str  # how to load a MODEL of this family
    encoder: str  # what makes the embeddings this family's cross-attention takes
    encoder_fix: str  # how to get them, for a refusal's fix
    size_why: str = ""  # why sizes must be multiples of size_multiple, for the message
    min_size_why: str = ""  # why sizes below min_size are refused, for the message


FAMILIES = {
    "pixart": Family(
        "pixart",
        "PixArt",
        4096,
        None,
        4,
        16,
        512,
        "2x2 tokens, covered at >= 50%",
        "LoadPixArt (or UNETLoader) with a PixArt checkpoint",
        "T5-XXL",
        "encode the prompt with the T5-XXL text encoder (CLIPLoader type 'pixart', or "
        "LoadPixArt's CLIP)",
        size_why="its latent patches are 2x2 at /8",
        min_size_why="ComfyUI's PixArt divides by zero there",
    ),
    "sd15": Family(
        "sd15",
        "SD 1.5",
        768,
        None,
        4,
        8,
        64,
        "each UNet level: area-pooled latent mask >= 50%",
        "CheckpointLoaderSimple with an SD 1.5 checkpoint",
        "CLIP-L",
        "encode the prompt with the SD 1.5 checkpoint's CLIP (CheckpointLoaderSimple -> "
        "CLIPTextEncode)",
    ),
    "sdxl": Family(
        "sdxl",
        "SDXL",
        2048,
        1280,
        4,
        8,
        64,
        "each UNet level: area-pooled latent mask >= 50%",
        "CheckpointLoaderSimple with an SDXL base checkpoint",
        "CLIP-L + CLIP-G",
        "encode the prompt with the SDXL checkpoint's CLIP (CheckpointLoaderSimple -> "
        "CLIPTextEncode or CLIPTextEncodeSDXL)",
    ),
}


def family_of(model) -> str | None:
    """The family of a ComfyUI MODEL (a ModelPatcher), or None when it is none of the three."""
    import comfy.model_base as mb
    import comfy.supported_models as sm
    from comfy.ldm.pixart.pixartms import PixArtMS

    inner = getattr(model, "model", None)
    if isinstance(getattr(inner, "diffusion_model", None), PixArtMS):
        return "pixart"
    config = getattr(inner, "model_config", None)
    in_channels = getattr(config, "unet_config", {}).get("in_channels", 4)
    if in_channels != 4:  # inpainting / instruct-pix2pix variants need extra latent inputs
        return None
    if isinstance(config, sm.SDXL) and isinstance(inner, mb.SDXL):
        return "sdxl"
    if isinstance(config, sm.SD15) and type(inner) is mb.BaseModel:
        return "sd15"
    return None


def get(name: str) -> Family:
    return FAMILIES[name]


def require_size(family: str, width: int, height: int) -> None:
    """Refuse image sizes the family's model cannot take, before sampling."""
    f = FAMILIES[family]
    for name, value in (("width", width), ("height", height)):
        if value % f.size_multiple:
            raise LayerMemoryError(
                name,
                f"{value} is not a multiple of {f.size_multiple} ({f.label}"
                + (f": {f.size_why})" if f.size_why else ")"),
                f"use a size divisible by {f.size_multiple}, e.g. 512 or 1024",
            )
    if width < f.min_size or height < f.min_size:
        raise LayerMemoryError(
            "width/height",
            f"{width}x{height} is below {f.min_size} px for {f.label}"
            + (f"; {f.min_size_why}" if f.min_size_why else ""),
            f"use {f.min_size} px or more on each side",
        )


def make_mqd_run(family: str, layers) -> object:
    """The MQD state of one run over `layers` (background first, the newest last; the run
    samples with the newest layer's negative, as AddLayer and the heal of DeleteLayer do)."""
    if family == "pixart":
        from .mqd import MQDRun

        return MQDRun.for_layers(layers)
    from .mqd_unet import UNetMQDRun

    return UNetMQDRun([layer.latent_mask for layer in layers[1:]],
                      [layer.positive.embedding for layer in layers],
                      layers[-1].negative.embedding)


def install_mqd(patcher, run) -> list:
    """Install MQD on `patcher` (a clone the caller owns), whichever family `run` is for."""
    from .mqd_unet import UNetMQDRun

    if isinstance(run, UNetMQDRun):
        from . import mqd_unet

        return mqd_unet.install(patcher, run)
    from . import mqd

    return mqd.install(patcher, run)
