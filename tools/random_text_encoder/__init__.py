"""Test-only ComfyUI nodes: stand-ins for PixArt's T5-XXL, for SDXL and SD 1.5 checkpoints, for
FLUX.1-dev's diffusion model and text encoders, and for an SD3.5 Large checkpoint and its
TripleCLIPLoader.

A real T5-XXL (4.7B parameters) cannot run in CPU tests, so `headless.ComfyServer(random_models=
True)` (and `tools/run_workflow.py --random-models`) links this folder into ComfyUI's
custom_nodes and swaps every `CLIPTextEncodePixArtAlpha` for `LayerMemTestEncode`. The embedding
is random but deterministic: the same text always gives the same tensor, so ComfyUI's cache and
the pack's bit-exactness checks behave as with a real encoder. Never shipped to users: the pack
itself does not import this; it lives in tools/ because the headless runner needs it.
"""
from __future__ import annotations

import hashlib

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


def small_unet_model(family: str = "sdxl"):
    """The random SD15_SMALL / SDXL_SMALL UNet as a ModelPatcher, built once per process."""
    if family not in _MODELS:
        import comfy.model_management as mm
        import comfy.model_patcher

        from tools import random_models as rm  # the server runs with comfy_host.child_env()

        variant, seed = {"sdxl": (rm.SDXL_SMALL, 101), "sd15": (rm.SD15_SMALL, 102)}[family]
        model = rm._model_config(variant).get_model({})
        model.load_model_weights(rm.unet_state_dict(variant, seed=seed), rm.UNET_PREFIX)
        _MODELS[family] = comfy.model_patcher.ModelPatcher(
            model.to(mm.unet_offload_device()), load_device=mm.get_torch_device(),
            offload_device=mm.unet_offload_device())
    return _MODELS[family]


class SmallUNetLoader:
    """CheckpointLoaderSimple's outputs for a small random UNet of FAMILY: MODEL, no CLIP (the
    family's test encoder stands in) and a TAESD-architecture VAE."""

    CATEGORY = "testing/layer_memory"
    RETURN_TYPES = ("MODEL", "CLIP", "VAE")
    FUNCTION = "load"
    FAMILY = ""
    VAE = ""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"ckpt_name": ("STRING", {
            "default": "", "tooltip": "The checkpoint the workflow named; kept for the record."})}}

    def load(self, ckpt_name: str):
        import nodes

        vae = nodes.VAELoader().load_vae(self.VAE)[0]
        return (small_unet_model(self.FAMILY), None, vae)


class LayerMemTestSDXLLoader(SmallUNetLoader):
    DESCRIPTION = ("TEST ONLY. A small random SDXL UNet (MODEL), no CLIP (use "
                   "LayerMemTestEncodeSDXL) and TAESDXL (VAE), in CheckpointLoaderSimple's "
                   "output order.")
    FAMILY, VAE = "sdxl", "taesdxl"


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


# ------------------------------------------------------------------ SD 1.5
# `headless.rewrite_for_random_models` swaps CheckpointLoaderSimple (any other checkpoint file)
# for LayerMemTestSD15Loader and a CLIPTextEncode fed by it for LayerMemTestEncodeSD15: the small
# random SD 1.5 UNet of tools/random_models.py (SD15_SMALL, ComfyUI's own SD15 classes, weights
# from a fixed seed) and TAESD as the VAE.
SD15_CONTEXT = 768
CLIP_CHUNK = 77  # ComfyUI's CLIP gives 77 tokens per chunk of up to 75 words
CHUNK_WORDS = 75


def sd15_embedding(text: str) -> torch.Tensor:
    """[1, 77 * chunks, 768], CLIP-L shaped (one chunk per 75 words), seeded by the text."""
    seed = int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[16:24], "little")
    chunks = max(1, -(-len(text.split()) // CHUNK_WORDS))
    g = torch.Generator().manual_seed(seed)
    return torch.randn(1, CLIP_CHUNK * chunks, SD15_CONTEXT, generator=g) * 0.5


class LayerMemTestSD15Loader(SmallUNetLoader):
    DESCRIPTION = ("TEST ONLY. A small random SD 1.5 UNet (MODEL), no CLIP (use "
                   "LayerMemTestEncodeSD15) and TAESD (VAE), in CheckpointLoaderSimple's output "
                   "order.")
    FAMILY, VAE = "sd15", "taesd"


class LayerMemTestEncodeSD15:
    CATEGORY = "testing/layer_memory"
    DESCRIPTION = ("TEST ONLY. A deterministic random SD 1.5-shaped conditioning ([1, 77 per 75 "
                   "words, 768]) from a hash of the text, like CLIPTextEncode with SD 1.5's CLIP.")
    RETURN_TYPES = ("CONDITIONING",)
    FUNCTION = "encode"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"text": ("STRING", {
            "multiline": True, "tooltip": "Prompt text (its hash and word count)."})}}

    def encode(self, text: str):
        return ([[sd15_embedding(text), {}]],)


# ------------------------------------------------------------------ FLUX.1
# `headless.rewrite_for_random_models` swaps UNETLoader (a FLUX file) for LayerMemTestFluxLoader,
# DualCLIPLoader (type flux) for LayerMemTestFluxCLIPLoader, CLIPTextEncodeFlux and a
# CLIPTextEncode fed by that loader for LayerMemTestEncodeFlux (same text, same guidance) and the
# FLUX VAE (ae.safetensors) for VAELoader's "taef1" (a random TAEF1 of tools/random_models.py).
# FluxGuidance stays stock. The model is tools/flux_scenes.py's small random FLUX.1-dev, built
# through ComfyUI's own Flux classes (its detection fixes hidden 3072, so no small file loads
# through UNETLoader), weights from a fixed seed.
FLUX_CONTEXT, FLUX_POOLED = 4096, 768
FLUX_TOKENS = 32  # a fixed length, as real FLUX prompts are padded (to 256 T5 tokens)


def flux_embedding(text: str) -> tuple[torch.Tensor, torch.Tensor]:
    """([1, 32, 4096], [1, 768]): T5-XXL context and CLIP-L pooled shaped, seeded by the text."""
    seed = int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[24:32], "little")
    g = torch.Generator().manual_seed(seed)
    cond = torch.randn(1, FLUX_TOKENS, FLUX_CONTEXT, generator=g) * 0.5
    return cond, torch.randn(1, FLUX_POOLED, generator=g) * 0.5


def small_flux_model():
    """tools/flux_scenes.py's random small FLUX.1-dev as a ModelPatcher, built once per process."""
    if "flux" not in _MODELS:
        from tools import flux_scenes  # the server runs with comfy_host.child_env()

        _MODELS["flux"] = flux_scenes.build(seed=103)
    return _MODELS["flux"]


class LayerMemTestFluxLoader:
    CATEGORY = "testing/layer_memory"
    DESCRIPTION = ("TEST ONLY. A small random FLUX.1-dev (MODEL, ComfyUI's own Flux classes, "
                   "hidden 64, one double and one single block), in UNETLoader's place.")
    RETURN_TYPES = ("MODEL",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        keep = {"default": "", "tooltip": "What the workflow named; kept for the record."}
        return {"required": {"unet_name": ("STRING", keep), "weight_dtype": ("STRING", keep)}}

    def load(self, unet_name: str, weight_dtype: str):
        return (small_flux_model(),)


class LayerMemTestFluxCLIPLoader:
    CATEGORY = "testing/layer_memory"
    DESCRIPTION = ("TEST ONLY. DualCLIPLoader's place for FLUX: no CLIP (None); "
                   "LayerMemTestEncodeFlux stands in for the encoders.")
    RETURN_TYPES = ("CLIP",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        keep = {"default": "", "tooltip": "What the workflow named; kept for the record."}
        return {"required": {"clip_name1": ("STRING", keep), "clip_name2": ("STRING", keep),
                             "type": ("STRING", keep)}}

    def load(self, clip_name1: str, clip_name2: str, type: str):
        return (None,)


class LayerMemTestEncodeFlux:
    CATEGORY = "testing/layer_memory"
    DESCRIPTION = ("TEST ONLY. A deterministic random FLUX-shaped conditioning (T5-XXL context "
                   "[1, 32, 4096], CLIP-L pooled [1, 768]) from a hash of the text, with "
                   "CLIPTextEncodeFlux's guidance when given (none: CLIPTextEncode's output).")
    RETURN_TYPES = ("CONDITIONING",)
    FUNCTION = "encode"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"text": ("STRING", {"multiline": True,
                                                 "tooltip": "Prompt text (its hash)."})},
                "optional": {
                    "clip": ("CLIP", {"tooltip": "The test CLIP loader's output (unused)."}),
                    "guidance": ("FLOAT", {"default": -1.0, "min": -1.0, "max": 100.0,
                                           "tooltip": "FLUX guidance; below 0: none."})}}

    def encode(self, text: str, clip=None, guidance: float = -1.0):
        cond, pooled = flux_embedding(text)
        extras = {"pooled_output": pooled}
        if guidance >= 0:
            extras["guidance"] = guidance
        return ([[cond, extras]],)


# ------------------------------------------------------------------ SD3.5
# `headless.rewrite_for_random_models` swaps CheckpointLoaderSimple of an SD3 file ("sd3" in its
# name) for LayerMemTestSD3Loader, TripleCLIPLoader for LayerMemTestSD3CLIPLoader, and
# CLIPTextEncodeSD3 or a CLIPTextEncode fed by either for LayerMemTestEncodeSD3 (same text). The
# model is tools/sd3_scenes.py's small random SD3.5 Large (ComfyUI's own MMDiT classes, loaded
# through comfy.sd.load_diffusion_model_state_dict), weights from a fixed seed; the VAE is
# VAELoader's "taesd3" (a random TAESD3 of tools/random_models.py).
SD3_CONTEXT, SD3_POOLED, SD3_CLIP_WIDTH = 4096, 2048, 2048
SD3_TOKENS = 32  # half CLIP-L + CLIP-G (2048 wide, zero-padded to 4096), half T5-XXL


def sd3_embedding(text: str) -> tuple[torch.Tensor, torch.Tensor]:
    """([1, 32, 4096], [1, 2048]): SD3's CLIP-L + CLIP-G tokens (zero-padded from 2048 to 4096)
    followed by T5-XXL tokens, and the CLIP-L + CLIP-G pooled vector, seeded by the text."""
    seed = int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[0:8], "big")
    g = torch.Generator().manual_seed(seed)
    clip = torch.randn(1, SD3_TOKENS // 2, SD3_CLIP_WIDTH, generator=g) * 0.5
    clip = torch.nn.functional.pad(clip, (0, SD3_CONTEXT - SD3_CLIP_WIDTH))
    t5 = torch.randn(1, SD3_TOKENS // 2, SD3_CONTEXT, generator=g) * 0.5
    return torch.cat([clip, t5], 1), torch.randn(1, SD3_POOLED, generator=g) * 0.5


def small_sd3_model():
    """tools/sd3_scenes.py's random small SD3.5 Large as a ModelPatcher, built once per process."""
    if "sd3" not in _MODELS:
        from tools import sd3_scenes  # the server runs with comfy_host.child_env()

        _MODELS["sd3"] = sd3_scenes.build("large35", seed=104)
    return _MODELS["sd3"]


class LayerMemTestSD3Loader(SmallUNetLoader):
    DESCRIPTION = ("TEST ONLY. A small random SD3.5 Large (MODEL, ComfyUI's own MMDiT classes, "
                   "hidden 128, depth 2), no CLIP (use LayerMemTestEncodeSD3) and TAESD3 (VAE), "
                   "in CheckpointLoaderSimple's output order.")
    FAMILY, VAE = "sd3", "taesd3"

    def load(self, ckpt_name: str):
        import nodes

        return (small_sd3_model(), None, nodes.VAELoader().load_vae(self.VAE)[0])


class LayerMemTestSD3CLIPLoader:
    CATEGORY = "testing/layer_memory"
    DESCRIPTION = ("TEST ONLY. TripleCLIPLoader's place for SD3.5: no CLIP (None); "
                   "LayerMemTestEncodeSD3 stands in for the encoders.")
    RETURN_TYPES = ("CLIP",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        keep = {"default": "", "tooltip": "What the workflow named; kept for the record."}
        return {"required": {f"clip_name{i}": ("STRING", keep) for i in (1, 2, 3)}}

    def load(self, clip_name1: str, clip_name2: str, clip_name3: str):
        return (None,)


class LayerMemTestEncodeSD3:
    CATEGORY = "testing/layer_memory"
    DESCRIPTION = ("TEST ONLY. A deterministic random SD3-shaped conditioning (context [1, 32, "
                   "4096]: CLIP-L + CLIP-G padded, then T5-XXL; pooled [1, 2048]) from a hash of "
                   "the text, like CLIPTextEncode with SD3.5's TripleCLIPLoader.")
    RETURN_TYPES = ("CONDITIONING",)
    FUNCTION = "encode"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"text": ("STRING", {"multiline": True,
                                                 "tooltip": "Prompt text (its hash)."})},
                "optional": {
                    "clip": ("CLIP", {"tooltip": "The test CLIP loader's output (unused)."})}}

    def encode(self, text: str, clip=None):
        cond, pooled = sd3_embedding(text)
        return ([[cond, {"pooled_output": pooled}]],)


NODE_CLASS_MAPPINGS = {"LayerMemTestEncode": LayerMemTestEncode,
                       "LayerMemTestSDXLLoader": LayerMemTestSDXLLoader,
                       "LayerMemTestEncodeSDXL": LayerMemTestEncodeSDXL,
                       "LayerMemTestSD15Loader": LayerMemTestSD15Loader,
                       "LayerMemTestEncodeSD15": LayerMemTestEncodeSD15,
                       "LayerMemTestFluxLoader": LayerMemTestFluxLoader,
                       "LayerMemTestFluxCLIPLoader": LayerMemTestFluxCLIPLoader,
                       "LayerMemTestEncodeFlux": LayerMemTestEncodeFlux,
                       "LayerMemTestSD3Loader": LayerMemTestSD3Loader,
                       "LayerMemTestSD3CLIPLoader": LayerMemTestSD3CLIPLoader,
                       "LayerMemTestEncodeSD3": LayerMemTestEncodeSD3}
NODE_DISPLAY_NAME_MAPPINGS = {
    "LayerMemTestEncode": "Layer Memory test text encoder (random, TEST ONLY)",
    "LayerMemTestSDXLLoader": "Layer Memory test SDXL loader (random, TEST ONLY)",
    "LayerMemTestEncodeSDXL": "Layer Memory test SDXL text encoder (random, TEST ONLY)",
    "LayerMemTestSD15Loader": "Layer Memory test SD 1.5 loader (random, TEST ONLY)",
    "LayerMemTestEncodeSD15": "Layer Memory test SD 1.5 text encoder (random, TEST ONLY)",
    "LayerMemTestFluxLoader": "Layer Memory test FLUX.1-dev loader (random, TEST ONLY)",
    "LayerMemTestFluxCLIPLoader": "Layer Memory test FLUX CLIP loader (none, TEST ONLY)",
    "LayerMemTestEncodeFlux": "Layer Memory test FLUX text encoder (random, TEST ONLY)",
    "LayerMemTestSD3Loader": "Layer Memory test SD3.5 loader (random, TEST ONLY)",
    "LayerMemTestSD3CLIPLoader": "Layer Memory test SD3.5 CLIP loader (none, TEST ONLY)",
    "LayerMemTestEncodeSD3": "Layer Memory test SD3.5 text encoder (random, TEST ONLY)",
}
