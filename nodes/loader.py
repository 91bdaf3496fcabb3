"""LoadPixArt: the PixArt transformer, its T5-XXL text encoder and the VAE, by ComfyUI's loaders."""
from __future__ import annotations

import comfy.sd
import folder_paths
import nodes as comfy_nodes
from comfy_api.latest import io

from ..layermem_core.errors import LayerMemoryError
from ..layermem_core.families.pixart import PIXART
from ..layermem_core.labels import NO_TEXT_ENCODER
from ..layermem_core.model_checks import require_family
from .types import CATEGORY

WEIGHT_DTYPES = ["default", "fp8_e4m3fn", "fp8_e4m3fn_fast", "fp8_e5m2"]


def _full_path(folder: str, name: str, input_name: str) -> str:
    path = folder_paths.get_full_path(folder, name)
    if path is None:
        where = ", ".join(folder_paths.get_folder_paths(folder))
        raise LayerMemoryError(input_name,
                               f"'{name}' was not found in the '{folder}' folders ({where})",
                               f"put the file into models/{folder} "
                               "(or an extra_model_paths.yaml entry) and refresh")
    return path


def load_diffusion_model(unet_name: str, weight_dtype: str = "default"):
    path = _full_path("diffusion_models", unet_name, "unet_name")
    model_options = {}
    if weight_dtype.startswith("fp8"):
        import torch
        fp8_e5m2 = weight_dtype == "fp8_e5m2"
        model_options["dtype"] = torch.float8_e5m2 if fp8_e5m2 else torch.float8_e4m3fn
        if weight_dtype == "fp8_e4m3fn_fast":
            model_options["fp8_optimizations"] = True
    try:
        model = comfy.sd.load_diffusion_model(path, model_options=model_options)
    except RuntimeError as e:
        raise LayerMemoryError("unet_name",
                               f"ComfyUI could not read '{unet_name}' as a diffusion model ({e})",
                               "choose a PixArt-alpha or PixArt-Sigma transformer file "
                               "(e.g. PixArt-XL-2-1024-MS.pth converted to safetensors)") from e
    require_family(model, PIXART, "unet_name")
    return model


def load_text_encoder(text_encoder: str):
    """PixArt's T5-XXL through ComfyUI's CLIP loader; None for NO_TEXT_ENCODER."""
    if text_encoder == NO_TEXT_ENCODER:
        return None
    path = _full_path("text_encoders", text_encoder, "text_encoder")
    try:
        return comfy.sd.load_clip(ckpt_paths=[path],
                                  embedding_directory=folder_paths.get_folder_paths("embeddings"),
                                  clip_type=comfy.sd.CLIPType.PIXART)
    except Exception as e:
        raise LayerMemoryError("text_encoder",
                               f"'{text_encoder}' could not be loaded as PixArt's T5-XXL ({e})",
                               "choose a T5-XXL encoder file "
                               "(t5xxl_fp16.safetensors or t5xxl_fp8_e4m3fn.safetensors)") from e


def load_vae(vae_name: str):
    if vae_name not in comfy_nodes.VAELoader.vae_list():
        raise LayerMemoryError("vae_name",
                               f"'{vae_name}' was not found in models/vae or models/vae_approx",
                               "put the VAE file into models/vae and refresh")
    return comfy_nodes.VAELoader().load_vae(vae_name)[0]


def _inputs() -> list[io.Input]:
    return [
        io.Combo.Input("unet_name", options=folder_paths.get_filename_list("diffusion_models"),
                       tooltip="PixArt transformer from models/diffusion_models "
                               "(PixArt-XL-2-512/1024-MS or PixArt-Sigma-XL-2)."),
        io.Combo.Input("text_encoder",
                       options=[NO_TEXT_ENCODER] + folder_paths.get_filename_list("text_encoders"),
                       tooltip="T5-XXL text encoder from models/text_encoders "
                               "(e.g. t5xxl_fp16.safetensors); 'none' returns no CLIP, "
                               "for graphs that encode prompts elsewhere."),
        io.Combo.Input("vae_name", options=comfy_nodes.VAELoader.vae_list(),
                       tooltip="VAE from models/vae: the SD1.5 VAE for PixArt-alpha, "
                               "the SDXL VAE for PixArt-Sigma "
                               "(taesd/taesdxl from models/vae_approx also work)."),
        io.Combo.Input("weight_dtype", options=WEIGHT_DTYPES, default="default",
                       tooltip="Storage dtype of the transformer weights; "
                               "'default' lets ComfyUI choose."),
    ]


class LoadPixArt(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="LayerMem_LoadPixArt",
            display_name="Load PixArt (model, T5, VAE)",
            category=CATEGORY,
            description="Loads a PixArt-alpha or PixArt-Sigma transformer, its T5-XXL text "
                        "encoder and a VAE with ComfyUI's own loaders, and refuses a file that "
                        "is not PixArt with the reason.",
            inputs=_inputs(),
            outputs=[
                io.Model.Output(display_name="MODEL", tooltip="The PixArt diffusion model."),
                io.Clip.Output(display_name="CLIP",
                               tooltip="The T5-XXL text encoder (type 'pixart'); "
                                       "None when 'none' was chosen."),
                io.Vae.Output(display_name="VAE", tooltip="The VAE for decoding composites."),
            ],
        )

    @classmethod
    def execute(cls, unet_name: str, text_encoder: str, vae_name: str,
                weight_dtype: str = "default") -> io.NodeOutput:
        model = load_diffusion_model(unet_name, weight_dtype)
        clip = load_text_encoder(text_encoder)
        return io.NodeOutput(model, clip, load_vae(vae_name))
