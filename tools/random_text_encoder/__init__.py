"""Test-only ComfyUI nodes: stand-ins for PixArt's T5-XXL text encoder and for an SDXL checkpoint.

A real T5-XXL (4.7B parameters) cannot run in CPU tests, so `headless.ComfyServer(random_models=
True)` (and `tools/run_workflow.py --random-models`) links this folder into ComfyUI's
custom_nodes and swaps every `CLIPTextEncodePixArtAlpha` for `LayerMemTestEncode`. The embedding
is random but deterministic: the same text always gives the same tensor, so ComfyUI's cache and
the pack's bit-exactness checks behave as with a real encoder. Never shipped to users: the pack
itself does not import this; it lives in tools/ because the headless runner needs it.
"""
from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import torch

T5_WIDTH = 4096
MAX_TOKENS = 120  # PixArt-alpha's caption length


def embedding(text: str) -> torch.Tensor:
    """[1, L, 4096]: L = words + 1 (an end token, like T5), seeded by SHA-256 of the text."""
    seed = int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "little")
    tokens = max(1, min(len(text.split()) + 1, MAX_TOKENS))
    g = torch.Generator().manual_seed(seed)
    return torch.randn(1, tokens, T5_WIDTH, generator=g) * 0.5


class LayerMemTestEncode:
    CATEGORY = "testing/layer_memory"  # outside the pack's "layer_memory" category on purpose
    DESCRIPTION = ("TEST ONLY. A deterministic random T5-XXL-shaped embedding derived from a hash "
                   "of the text, with PixArt-alpha's width/height micro-conditions, like "
                   "CLIPTextEncodePixArtAlpha.")
    RETURN_TYPES = ("CONDITIONING",)
    FUNCTION = "encode"

    @classmethod
    def INPUT_TYPES(cls):
        size = {"default": 1024, "min": 0, "max": 16384}
        return {"required": {
            "text": ("STRING", {"multiline": True,
                                "tooltip": "Prompt text; only its hash and word count matter."}),
            "width": ("INT", {**size, "tooltip": "Micro-condition width."}),
            "height": ("INT", {**size, "tooltip": "Micro-condition height."}),
        }}

    def encode(self, text: str, width: int, height: int):
        return ([[embedding(text), {"width": width, "height": height}]],)


# ------------------------------------------------------------------ SDXL
# `headless.rewrite_for_random_models` swaps CheckpointLoaderSimple (an SDXL file) for
# LayerMemTestSDXLLoader and CLIPTextEncodeSDXL for LayerMemTestEncodeSDXL, so that the SDXL
# example runs on a CPU: the small random SDXL UNet of tools/random_models.py (SDXL_SMALL, built
# through ComfyUI's own SDXL classes, weights from a fixed seed: no file) and TAESDXL as the VAE.
SDXL_CONTEXT, SDXL_POOLED = 2048, 1280
SDXL_SIZES = ("width", "height", "crop_w", "crop_h", "target_width", "target_height")
_MODELS: dict[str, object] = {}


def sdxl_embedding(text: str) -> tuple[torch.Tensor, torch.Tensor]:
    """([1, L, 2048], [1, 1280]): CLIP-L + CLIP-G shaped, seeded by the text like `embedding`."""
    seed = int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[8:16], "little")
    g = torch.Generator().manual_seed(seed)
    cond = torch.randn(1, 77, SDXL_CONTEXT, generator=g) * 0.5
    return cond, torch.randn(1, SDXL_POOLED, generator=g) * 0.5


def small_sdxl_model():
    """The random SDXL_SMALL UNet as a ModelPatcher, built once per process."""
    if "sdxl" not in _MODELS:
        import comfy.model_management as mm
        import comfy.model_patcher

        tools = str(Path(__file__).resolve().parents[1])
        if tools not in sys.path:
            sys.path.insert(0, tools)
        import random_models as rm

        model = rm._model_config(rm.SDXL_SMALL).get_model({})
        model.load_model_weights(rm.unet_state_dict(rm.SDXL_SMALL, seed=101), rm.UNET_PREFIX)
        _MODELS["sdxl"] = comfy.model_patcher.ModelPatcher(
            model.to(mm.unet_offload_device()), load_device=mm.get_torch_device(),
            offload_device=mm.unet_offload_device())
    return _MODELS["sdxl"]


class LayerMemTestSDXLLoader:
    CATEGORY = "testing/layer_memory"
    DESCRIPTION = ("TEST ONLY. A small random SDXL UNet (MODEL), no CLIP (use "
                   "LayerMemTestEncodeSDXL) and TAESDXL (VAE), in CheckpointLoaderSimple's "
                   "output order.")
    RETURN_TYPES = ("MODEL", "CLIP", "VAE")
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"ckpt_name": ("STRING", {
            "default": "", "tooltip": "The checkpoint the workflow named; kept for the record."})}}

    def load(self, ckpt_name: str):
        import nodes

        vae = nodes.VAELoader().load_vae("taesdxl")[0]
        return (small_sdxl_model(), None, vae)


class LayerMemTestEncodeSDXL:
    CATEGORY = "testing/layer_memory"
    DESCRIPTION = ("TEST ONLY. A deterministic random SDXL-shaped conditioning ([1, 77, 2048], "
                   "pooled [1, 1280]) from a hash of the text, with CLIPTextEncodeSDXL's size "
                   "extras.")
    RETURN_TYPES = ("CONDITIONING",)
    FUNCTION = "encode"

    @classmethod
    def INPUT_TYPES(cls):
        size = {"default": 1024, "min": 0, "max": 16384}
        required = {"text": ("STRING", {"multiline": True, "tooltip": "Prompt text (its hash)."})}
        required.update({name: ("INT", {**size, "default": 0 if name.startswith("crop") else 1024})
                         for name in SDXL_SIZES})
        return {"required": required}

    def encode(self, text: str, **sizes: int):
        cond, pooled = sdxl_embedding(text)
        return ([[cond, {"pooled_output": pooled, **sizes}]],)


NODE_CLASS_MAPPINGS = {"LayerMemTestEncode": LayerMemTestEncode,
                       "LayerMemTestSDXLLoader": LayerMemTestSDXLLoader,
                       "LayerMemTestEncodeSDXL": LayerMemTestEncodeSDXL}
NODE_DISPLAY_NAME_MAPPINGS = {
    "LayerMemTestEncode": "Layer Memory test text encoder (random, TEST ONLY)",
    "LayerMemTestSDXLLoader": "Layer Memory test SDXL loader (random, TEST ONLY)",
    "LayerMemTestEncodeSDXL": "Layer Memory test SDXL text encoder (random, TEST ONLY)",
}
