"""Test-only ComfyUI nodes: a stand-in for PixArt's T5-XXL text encoder.

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


NODE_CLASS_MAPPINGS = {"LayerMemTestEncode": LayerMemTestEncode}
NODE_DISPLAY_NAME_MAPPINGS = {
    "LayerMemTestEncode": "Layer Memory test text encoder (random, TEST ONLY)",
}
