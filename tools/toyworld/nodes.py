"""Test-only ComfyUI nodes for the toy world: CheckpointLoaderSimple's outputs for the trained
UNet and VAE, and CLIPTextEncode's output from the toy text encoder.

Why nodes: the pack's real nodes then run on a model that draws recognisable objects, unchanged,
from tests (registered into the booted host) and from graphs. Never shipped to users.
"""
from __future__ import annotations

import functools
import os
from pathlib import Path

import torch

from . import text, unet, vae

# the committed weights; another folder (a fresh training run) via LAYERMEM_TOYWORLD_WEIGHTS
WEIGHTS = Path(os.environ.get("LAYERMEM_TOYWORLD_WEIGHTS", str(vae.WEIGHTS)))


@functools.cache
def model():
    """The trained toy UNet as a ModelPatcher, loaded once per process (shared, never patched)."""
    return unet.load_patcher(WEIGHTS)


@functools.cache
def vae_model():
    return vae.comfy_vae(WEIGHTS)


@functools.cache
def text_encoder() -> text.TextEncoder:
    return text.load(WEIGHTS)


@torch.no_grad()
def encode(prompt: str) -> list:
    """A CONDITIONING as CLIPTextEncode gives it for SD 1.5: [[ [1, 77, 768], {} ]]."""
    return [[text_encoder().encode([prompt]).float(), {}]]


class LayerMemToyWorldLoader:
    CATEGORY = "testing/layer_memory"
    DESCRIPTION = ("TEST ONLY. The toy world's UNet (a small SD 1.5 UNet trained in this repo on "
                   "flat-colour shapes), no CLIP (use LayerMemToyWorldEncode) and its TAESD VAE.")
    RETURN_TYPES = ("MODEL", "CLIP", "VAE")
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"ckpt_name": ("STRING", {
            "default": "toyworld", "tooltip": "Kept for the record; the weights are the repo's."})}}

    def load(self, ckpt_name: str = "toyworld"):
        return (model(), None, vae_model())


class LayerMemToyWorldEncode:
    CATEGORY = "testing/layer_memory"
    DESCRIPTION = ("TEST ONLY. The toy world's text encoder ([1, 77, 768], like CLIPTextEncode "
                   "with SD 1.5's CLIP); words outside its vocabulary are refused.")
    RETURN_TYPES = ("CONDITIONING",)
    FUNCTION = "encode"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"text": ("STRING", {
            "multiline": True, "tooltip": f"Words of the toy world: {', '.join(text.WORDS)}."})}}

    def encode(self, text: str):
        return (encode(text),)


NODE_CLASS_MAPPINGS = {"LayerMemToyWorldLoader": LayerMemToyWorldLoader,
                       "LayerMemToyWorldEncode": LayerMemToyWorldEncode}


def register(host_nodes) -> None:
    """Make the toy nodes nodes of a booted host (its `nodes` module)."""
    for name, cls in NODE_CLASS_MAPPINGS.items():
        host_nodes.NODE_CLASS_MAPPINGS.setdefault(name, cls)
