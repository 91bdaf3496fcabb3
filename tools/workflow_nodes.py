"""The node types the example workflows use, as the frontend sees them, and their model files.

Per node type: socket inputs (name, type, optional), widget inputs (name, type, optional, has
control_after_generate), outputs (name, type), registry id and display name, in the node's
input order. This is a copy of the node schemas kept by hand so that the workflows can be built
without booting ComfyUI; tests/e2e/test_workflows_valid.py compares every generated file with
the schemas of the real ComfyUI and this pack, so a drift fails the tests.
"""
from __future__ import annotations

from tools.workflow_graph import NodeDef

MEMORY = ("memory", "LAYER_MEMORY", False)
MODEL = ("model", "MODEL", False)
COMPUTE = (("compute", "COMBO", True, False), ("context_margin", "INT", True, False))
LAYER_OUT = (("memory", "LAYER_MEMORY"), ("latent", "LATENT"))


def _pack(display: str, **kw) -> NodeDef:
    """A node of this pack (no registry id in the saved workflow: the pack is not published yet)."""
    return NodeDef(pack=None, display=display, **kw)


NODE_DEFS: dict[str, NodeDef] = {
    "LayerMem_LoadPixArt": _pack(
        "Load PixArt (model, T5, VAE)",
        widgets=(("unet_name", "COMBO", False, False), ("text_encoder", "COMBO", False, False),
                 ("vae_name", "COMBO", False, False), ("weight_dtype", "COMBO", False, False)),
        outputs=(("MODEL", "MODEL"), ("CLIP", "CLIP"), ("VAE", "VAE"))),
    "CLIPTextEncodePixArtAlpha": NodeDef(
        sockets=(("clip", "CLIP", False),),
        widgets=(("width", "INT", False, False), ("height", "INT", False, False),
                 ("text", "STRING", False, False)),
        outputs=(("CONDITIONING", "CONDITIONING"),), display="CLIPTextEncodePixArtAlpha"),
    "LayerMem_LayerMemory": _pack(
        "Layer Memory (background)",
        sockets=(MODEL, ("positive", "CONDITIONING", False), ("negative", "CONDITIONING", False)),
        widgets=(("width", "INT", False, False), ("height", "INT", False, False),
                 ("seed", "INT", False, True), ("steps", "INT", False, False),
                 ("cfg", "FLOAT", False, False), ("sampler_name", "COMBO", False, False),
                 ("scheduler", "COMBO", False, False), ("name", "STRING", True, False)),
        outputs=LAYER_OUT),
    "LayerMem_AddLayer": _pack(
        "Add Layer (MQD + BCG)",
        sockets=(MEMORY, MODEL, ("positive", "CONDITIONING", False), ("mask", "MASK", False),
                 ("negative", "CONDITIONING", True)),
        widgets=(("seed", "INT", False, True), ("use_mqd", "BOOLEAN", False, False),
                 ("grow", "INT", False, False), ("feather", "INT", False, False),
                 ("unblended_fraction", "FLOAT", False, False), ("name", "STRING", True, False),
                 ("position", "INT", True, False)) + COMPUTE,
        outputs=LAYER_OUT),
    "LayerMem_DeleteLayer": _pack(
        "Delete Layer",
        sockets=(MEMORY, MODEL),
        widgets=(("layer", "STRING", False, False), ("regenerate_fraction", "FLOAT", False, False),
                 ("seed", "INT", False, True), ("grow", "INT", False, False),
                 ("unblended_fraction", "FLOAT", True, False)) + COMPUTE,
        outputs=LAYER_OUT),
    "LayerMem_EditLayer": _pack(
        "Edit Layer (reroll, re-prompt, move)",
        sockets=(MEMORY, MODEL, ("positive", "CONDITIONING", True), ("mask", "MASK", True),
                 ("negative", "CONDITIONING", True)),
        widgets=(("layer", "STRING", False, False), ("seed", "INT", False, True),
                 ("grow", "INT", False, False), ("feather", "INT", True, False),
                 ("regenerate_fraction", "FLOAT", True, False), ("use_mqd", "BOOLEAN", True, False),
                 ("name", "STRING", True, False)) + COMPUTE,
        outputs=LAYER_OUT),
    "LayerMem_LayerMemoryFromImage": _pack(
        "Layer Memory from Image",
        sockets=(MODEL, ("vae", "VAE", False), ("image", "IMAGE", False),
                 ("positive", "CONDITIONING", False), ("negative", "CONDITIONING", False)),
        widgets=(("steps", "INT", False, False), ("cfg", "FLOAT", False, False),
                 ("sampler_name", "COMBO", False, False), ("scheduler", "COMBO", False, False),
                 ("seed", "INT", False, True), ("name", "STRING", True, False)),
        outputs=LAYER_OUT),
    "LoadImage": NodeDef(widgets=(("image", "COMBO", False, False),),
                         outputs=(("IMAGE", "IMAGE"), ("MASK", "MASK")), display="Load Image",
                         ui_extra=("image",)),
    "ImageScale": NodeDef(
        sockets=(("image", "IMAGE", False),),
        widgets=(("upscale_method", "COMBO", False, False), ("width", "INT", False, False),
                 ("height", "INT", False, False), ("crop", "COMBO", False, False)),
        outputs=(("IMAGE", "IMAGE"),), display="Upscale Image"),
    "CheckpointLoaderSimple": NodeDef(
        widgets=(("ckpt_name", "COMBO", False, False),),
        outputs=(("MODEL", "MODEL"), ("CLIP", "CLIP"), ("VAE", "VAE")), display="Load Checkpoint"),
    "CLIPTextEncodeSDXL": NodeDef(
        sockets=(("clip", "CLIP", False),),
        widgets=tuple((n, "INT", False, False) for n in (
            "width", "height", "crop_w", "crop_h", "target_width", "target_height"))
        + (("text_g", "STRING", False, False), ("text_l", "STRING", False, False)),
        outputs=(("CONDITIONING", "CONDITIONING"),), display="CLIPTextEncodeSDXL"),
    "UNETLoader": NodeDef(
        widgets=(("unet_name", "COMBO", False, False), ("weight_dtype", "COMBO", False, False)),
        outputs=(("MODEL", "MODEL"),), display="Load Diffusion Model"),
    "DualCLIPLoader": NodeDef(
        widgets=(("clip_name1", "COMBO", False, False), ("clip_name2", "COMBO", False, False),
                 ("type", "COMBO", False, False), ("device", "COMBO", True, False)),
        outputs=(("CLIP", "CLIP"),), display="DualCLIPLoader"),
    "VAELoader": NodeDef(widgets=(("vae_name", "COMBO", False, False),),
                         outputs=(("VAE", "VAE"),), display="Load VAE"),
    "CLIPTextEncodeFlux": NodeDef(
        sockets=(("clip", "CLIP", False),),
        widgets=(("clip_l", "STRING", False, False), ("t5xxl", "STRING", False, False),
                 ("guidance", "FLOAT", False, False)),
        outputs=(("CONDITIONING", "CONDITIONING"),), display="CLIPTextEncodeFlux"),
    "CLIPTextEncode": NodeDef(
        sockets=(("clip", "CLIP", False),), widgets=(("text", "STRING", False, False),),
        outputs=(("CONDITIONING", "CONDITIONING"),), display="CLIP Text Encode (Prompt)"),
    "TripleCLIPLoader": NodeDef(
        widgets=(("clip_name1", "COMBO", False, False), ("clip_name2", "COMBO", False, False),
                 ("clip_name3", "COMBO", False, False)),
        outputs=(("CLIP", "CLIP"),), display="TripleCLIPLoader"),
    "FluxGuidance": NodeDef(
        sockets=(("conditioning", "CONDITIONING", False),),
        widgets=(("guidance", "FLOAT", False, False),),
        outputs=(("CONDITIONING", "CONDITIONING"),), display="FluxGuidance"),
    "SolidMask": NodeDef(
        widgets=(("value", "FLOAT", False, False), ("width", "INT", False, False),
                 ("height", "INT", False, False)),
        outputs=(("MASK", "MASK"),), display="SolidMask"),
    "MaskComposite": NodeDef(
        sockets=(("destination", "MASK", False), ("source", "MASK", False)),
        widgets=(("x", "INT", False, False), ("y", "INT", False, False),
                 ("operation", "COMBO", False, False)),
        outputs=(("MASK", "MASK"),), display="MaskComposite"),
    "VAEDecode": NodeDef(sockets=(("samples", "LATENT", False), ("vae", "VAE", False)),
                         outputs=(("IMAGE", "IMAGE"),), display="VAE Decode"),
    "SaveImage": NodeDef(sockets=(("images", "IMAGE", False),),
                         widgets=(("filename_prefix", "STRING", False, False),),
                         display="Save Image"),
    "LayerMem_SaveLayerMemory": _pack(
        "Save Layer Memory",
        sockets=(MEMORY,),
        widgets=(("filename_prefix", "STRING", False, False),
                 ("trajectory_storage", "COMBO", False, False)),
        outputs=(("file", "STRING"),)),
    "LayerMem_LoadLayerMemory": _pack(
        "Load Layer Memory",
        widgets=(("file", "COMBO", False, False),),
        outputs=(("memory", "LAYER_MEMORY"), ("latent", "LATENT"), ("layers", "STRING"))),
    "LayerMem_PreviewLayers": _pack(
        "Preview Layers",
        sockets=(MEMORY, ("vae", "VAE", False)),
        widgets=(("line_width", "INT", True, False),),
        outputs=(("outlined", "IMAGE"), ("per_layer", "IMAGE"))),
    "LayerMem_ListLayers": _pack("List Layers", sockets=(MEMORY,), outputs=(("table", "STRING"),)),
    "LayerMem_LayerMemoryBox": _pack(
        "Layer Box (draw a mask)",
        sockets=(MEMORY, ("vae", "VAE", True)),
        widgets=(("x", "INT", False, False), ("y", "INT", False, False),
                 ("width", "INT", False, False), ("height", "INT", False, False),
                 ("picture_width", "INT", True, False), ("picture_height", "INT", True, False),
                 ("layer", "STRING", True, False), ("shape", "COMBO", True, False),
                 ("strokes", "STRING", True, False)),
        outputs=(("mask", "MASK"), ("layer", "STRING"))),
}

# The model files LoadPixArt names, with what the frontend's Missing Models dialog needs to offer
# them (it lists a node's `properties.models` whose name is one of the node's widget values; only
# .safetensors/.sft files from huggingface.co or civitai.com).
UNET = "PixArt-XL-2-1024-MS.safetensors"
T5 = "t5xxl_fp16.safetensors"
VAE = "vae-ft-mse-840000-ema-pruned.safetensors"
SDXL_CKPT = "sd_xl_base_1.0.safetensors"
HF = "https://huggingface.co"
MODEL_LINKS = [
    # The diffusers-layout transformer; ComfyUI's loader converts it (comfy/model_detection.py).
    {"name": UNET, "directory": "diffusion_models",
     "url": f"{HF}/PixArt-alpha/PixArt-XL-2-1024-MS/resolve/main/transformer/"
            "diffusion_pytorch_model.safetensors"},
    {"name": T5, "directory": "text_encoders",
     "url": f"{HF}/comfyanonymous/flux_text_encoders/resolve/main/t5xxl_fp16.safetensors"},
    {"name": VAE, "directory": "vae",
     "url": f"{HF}/stabilityai/sd-vae-ft-mse-original/resolve/main/"
            "vae-ft-mse-840000-ema-pruned.safetensors"},
]
SDXL_LINKS = [
    {"name": SDXL_CKPT, "directory": "checkpoints",
     "url": f"{HF}/stabilityai/stable-diffusion-xl-base-1.0/resolve/main/"
            "sd_xl_base_1.0.safetensors"},
]
# FLUX.1-dev: the diffusion model, both text encoders and the VAE, each a file of its own
FLUX_UNET = "flux1-dev.safetensors"
FLUX_CLIP_L = "clip_l.safetensors"
FLUX_VAE = "ae.safetensors"
FLUX_LINKS = {
    "unet": {"name": FLUX_UNET, "directory": "diffusion_models",
             "url": f"{HF}/black-forest-labs/FLUX.1-dev/resolve/main/flux1-dev.safetensors"},
    "clip": [{"name": FLUX_CLIP_L, "directory": "text_encoders",
              "url": f"{HF}/comfyanonymous/flux_text_encoders/resolve/main/clip_l.safetensors"},
             MODEL_LINKS[1]],  # t5xxl_fp16, as for PixArt
    "vae": {"name": FLUX_VAE, "directory": "vae",
            "url": f"{HF}/black-forest-labs/FLUX.1-dev/resolve/main/ae.safetensors"},
}
FLUX_MODEL_LINKS = [FLUX_LINKS["unet"], *FLUX_LINKS["clip"], FLUX_LINKS["vae"]]
# SD3.5 Large: the checkpoint (MMDiT and VAE; no text encoders) and TripleCLIPLoader's three
# files, as in ComfyUI's own SD3.5 example
SD35_CKPT = "sd3.5_large.safetensors"
SD35_CLIP_G = "clip_g.safetensors"
_SD35 = f"{HF}/stabilityai/stable-diffusion-3.5-large/resolve/main"
SD35_LINKS = {
    "ckpt": {"name": SD35_CKPT, "directory": "checkpoints", "url": f"{_SD35}/{SD35_CKPT}"},
    "clip": [{"name": FLUX_CLIP_L, "directory": "text_encoders",
              "url": f"{_SD35}/text_encoders/clip_l.safetensors"},
             {"name": SD35_CLIP_G, "directory": "text_encoders",
              "url": f"{_SD35}/text_encoders/clip_g.safetensors"},
             MODEL_LINKS[1]],  # t5xxl_fp16, as for PixArt and FLUX
}
SD35_MODEL_LINKS = [SD35_LINKS["ckpt"], *SD35_LINKS["clip"]]
# SD 1.5: one checkpoint (UNet, CLIP-L, VAE), the file ComfyUI's own default graph loads
SD15_CKPT = "v1-5-pruned-emaonly-fp16.safetensors"
SD15_LINKS = [
    {"name": SD15_CKPT, "directory": "checkpoints",
     "url": f"{HF}/Comfy-Org/stable-diffusion-v1-5-archive/resolve/main/{SD15_CKPT}"},
]
