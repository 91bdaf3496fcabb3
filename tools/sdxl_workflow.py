#!/usr/bin/env python3
"""Write the SDXL example workflow (UI + API) from the PixArt layered_scene workflow (issue 11).

Same scene, same steps and boxes; the loader becomes the stock CheckpointLoaderSimple (MODEL,
CLIP and VAE in the same output order as LoadPixArt), every prompt is encoded with the stock
CLIPTextEncodeSDXL (CLIP-L + CLIP-G, pooled output and size conditioning), cfg 6.0, and the
files go to their own output folders. A one-off script of the SDXL engineer, run after
tools/build_workflows.py has written layered_scene; the UI engineer may fold it into that
generator later.

    python3 tools/sdxl_workflow.py            # writes workflows/sdxl_layered_scene.json + api/
"""

from __future__ import annotations

import copy
import json
import uuid
from pathlib import Path

WF = Path(__file__).resolve().parents[1] / "workflows"
NAME = "sdxl_layered_scene"
CKPT = "sd_xl_base_1.0.safetensors"
CFG = 6.0
SDXL_WIDGETS = [
    "width",
    "height",
    "crop_w",
    "crop_h",
    "target_width",
    "target_height",
    "text_g",
    "text_l",
]

_PARAGRAPHS = [
    "## Layer memory with SDXL: a scene built layer by layer",
    "The **layered_scene** example with an SDXL checkpoint: a savanna, then a **cheetah**, a "
    "**leopard** and a "
    "**lion** added one layer at a time, then the **leopard deleted**. Each step saves an image: "
    "5 in all, in "
    f"`ComfyUI/output/{NAME}/`. At the end the whole scene is saved to "
    "`ComfyUI/output/layer_memory/savanna_sdxl_00001_.safetensors`.",
    "### Model: one checkpoint file, then press `r` to refresh the list\n"
    f"```\nComfyUI/models/\n└── checkpoints/   {CKPT}\n```\n"
    f"- **SDXL base 1.0** (`checkpoints/`): `{CKPT}` from the Hugging Face repository "
    "`stabilityai/stable-diffusion-xl-base-1.0`; choose your file in `ckpt_name`. The checkpoint "
    "holds the UNet, "
    "both text encoders (CLIP-L and CLIP-G) and the VAE, so nothing goes into `diffusion_models/`, "
    "`text_encoders/` or `vae/`. Any SDXL base fine-tune works; SD 1.5 checkpoints work the same "
    "way (use "
    "**CLIPTextEncode**, 512x512). Inpainting and refiner checkpoints are not supported.",
    "### How it works\n"
    "A layer is sampled inside its mask while everything outside follows the stored trajectory of "
    "the layers "
    "before it (**BCG**), and in every cross-attention of the UNet each region of the image "
    "listens to its own "
    "prompt (**MQD**; the masks are pooled to each UNet level, a cell belongs to a layer when its "
    "mask covers at "
    "least half of it). MQD uses PyTorch attention for the routed call whatever attention backend "
    "ComfyUI was "
    "started with. A memory made with SDXL only works with the same SDXL checkpoint.",
    "Prompts are encoded with **CLIPTextEncodeSDXL** (size conditioning 1024x1024, no crop); plain "
    "**CLIPTextEncode** works too. Change one step and press Queue: ComfyUI re-runs that step and "
    "the ones after "
    "it, and takes the rest from its cache.",
]
README = "\n\n".join(_PARAGRAPHS) + "\n"


def _ui_encoder(node: dict) -> None:
    width, height, text = node["widgets_values"]
    node["type"] = "CLIPTextEncodeSDXL"
    node["widgets_values"] = [width, height, 0, 0, width, height, text, text]
    clip = next(i for i in node["inputs"] if i["name"] == "clip")
    node["inputs"] = [clip] + [
        {
            "localized_name": n,
            "name": n,
            "type": "STRING" if n.startswith("text") else "INT",
            "widget": {"name": n},
            "link": None,
        }
        for n in SDXL_WIDGETS
    ]
    node["properties"] = dict(
        node.get("properties", {}), **{"Node name for S&R": "CLIPTextEncodeSDXL"}
    )


def _ui_loader(node: dict) -> None:
    node["type"] = "CheckpointLoaderSimple"
    node["title"] = "Load SDXL checkpoint (model, CLIP, VAE)"
    node["widgets_values"] = [CKPT]
    node["inputs"] = [
        {
            "localized_name": "ckpt_name",
            "name": "ckpt_name",
            "type": "COMBO",
            "widget": {"name": "ckpt_name"},
            "link": None,
        }
    ]
    node["properties"] = dict(
        node.get("properties", {}), **{"Node name for S&R": "CheckpointLoaderSimple"}
    )


def _text(s: str) -> str:
    return (
        s.replace("layered_scene/", f"{NAME}/")
        .replace("layer_memory/savanna", "layer_memory/savanna_sdxl")
        .replace("cfg 4.5", f"cfg {CFG}")
        .replace("the paper's: ", "")
    )


def convert_ui(wf: dict) -> dict:
    wf = copy.deepcopy(wf)
    wf["id"] = str(uuid.uuid5(uuid.NAMESPACE_URL, NAME))
    for node in wf["nodes"]:
        kind = node["type"]
        if kind == "LoadPixArt":
            _ui_loader(node)
        elif kind == "CLIPTextEncodePixArtAlpha":
            _ui_encoder(node)
        elif kind == "LayerMemory":
            node["widgets_values"][5] = CFG
        elif kind == "MarkdownNote":
            node["widgets_values"][0] = (
                README if node["id"] == 2 else _text(node["widgets_values"][0])
            )
        elif kind in ("SaveImage", "SaveLayerMemory"):
            node["widgets_values"][0] = _text(node["widgets_values"][0])
    return wf


def convert_api(api: dict) -> dict:
    api = copy.deepcopy(api)
    for node in api.values():
        inputs, kind = node["inputs"], node["class_type"]
        if kind == "LoadPixArt":
            node.update(
                class_type="CheckpointLoaderSimple",
                inputs={"ckpt_name": CKPT},
                _meta={"title": "Load SDXL checkpoint (model, CLIP, VAE)"},
            )
        elif kind == "CLIPTextEncodePixArtAlpha":
            w, h, text = inputs["width"], inputs["height"], inputs["text"]
            node["class_type"] = "CLIPTextEncodeSDXL"
            node["inputs"] = {
                "width": w,
                "height": h,
                "crop_w": 0,
                "crop_h": 0,
                "target_width": w,
                "target_height": h,
                "text_g": text,
                "text_l": text,
                "clip": inputs["clip"],
            }
        elif kind == "LayerMemory":
            inputs["cfg"] = CFG
        elif kind in ("SaveImage", "SaveLayerMemory"):
            inputs["filename_prefix"] = _text(inputs["filename_prefix"])
    return api


def main() -> None:
    ui = convert_ui(json.loads((WF / "layered_scene.json").read_text()))
    api = convert_api(json.loads((WF / "api" / "layered_scene_api.json").read_text()))
    (WF / f"{NAME}.json").write_text(json.dumps(ui, indent=2, ensure_ascii=False) + "\n")
    (WF / "api" / f"{NAME}_api.json").write_text(
        json.dumps(api, indent=2, ensure_ascii=False) + "\n"
    )


if __name__ == "__main__":
    main()
