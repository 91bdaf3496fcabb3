"""An SD 1.5 API workflow runs on ComfyUI's real server through the random-model rewrite.

The rewrite swaps CheckpointLoaderSimple with an SD 1.5 file for LayerMemTestSD15Loader (the small
random SD 1.5 UNet of tools/random_models.py and TAESD) and the CLIPTextEncode nodes fed by it for
LayerMemTestEncodeSD15 (768-wide, 77 tokens per 75 words). The workflow is built here: a
background, then AddLayer with a two-chunk prompt next to a one-chunk negative (ComfyUI repeats the
negative and batches cond and uncond), both decoded and saved.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from tools import headless
from tools.headless.random_rewrite import TEST_SD15_ENCODER, TEST_SD15_LOADER

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.e2e

STEPS = 2
BOX = (160, 192, 352, 384)  # x0, y0, x1, y1 of the new layer's mask, pixels
LONG_PROMPT = " ".join(["a red fox with a bushy tail sitting in tall grass"] * 8)  # 80 words
DECODER_REACH_PX = 80  # the random TAESD decoder's reach around a changed latent (test_server.py)


def sd15_workflow() -> dict:
    """API format, as ComfyUI's default SD 1.5 graph plus the pack's nodes would export it."""
    x0, y0, x1, y1 = BOX

    def encode(text: str) -> dict:
        return {"class_type": "CLIPTextEncode", "inputs": {"text": text, "clip": ["1", 1]}}

    def save(source: str, prefix: str) -> dict:
        return {"class_type": "SaveImage",
                "inputs": {"filename_prefix": f"sd15_scene/{prefix}", "images": [source, 0]}}

    return {
        "1": {"class_type": "CheckpointLoaderSimple",
              "inputs": {"ckpt_name": "v1-5-pruned-emaonly.safetensors"}},
        "2": encode("a sunny meadow, watercolor"),
        "3": encode("blurry, low quality"),
        "4": {"class_type": "LayerMem_LayerMemory", "inputs": {
            "width": 512, "height": 512, "seed": 42, "steps": 20, "cfg": 7.0,
            "sampler_name": "dpmpp_2m", "scheduler": "karras", "name": "background",
            "model": ["1", 0], "positive": ["2", 0], "negative": ["3", 0]}},
        "5": {"class_type": "VAEDecode", "inputs": {"samples": ["4", 1], "vae": ["1", 2]}},
        "6": save("5", "1_background"),
        "7": {"class_type": "SolidMask", "inputs": {"value": 0.0, "width": 512, "height": 512}},
        "8": {"class_type": "SolidMask", "inputs": {"value": 1.0, "width": x1 - x0,
                                                    "height": y1 - y0}},
        "9": {"class_type": "MaskComposite", "inputs": {
            "x": x0, "y": y0, "operation": "add", "destination": ["7", 0], "source": ["8", 0]}},
        "10": encode(LONG_PROMPT),
        "11": {"class_type": "LayerMem_AddLayer", "inputs": {
            "seed": 101, "use_mqd": True, "grow": 0, "feather": 0, "unblended_fraction": 0.0,
            "name": "fox", "position": -1, "memory": ["4", 0], "model": ["1", 0],
            "positive": ["10", 0], "mask": ["9", 0]}},
        "12": {"class_type": "VAEDecode", "inputs": {"samples": ["11", 1], "vae": ["1", 2]}},
        "13": save("12", "2_fox"),
    }


def test_rewrite_swaps_the_sd15_checkpoint_and_its_text_encoders():
    prompt, changes = headless.rewrite_for_random_models(sd15_workflow(), steps=STEPS)
    assert prompt["1"]["class_type"] == TEST_SD15_LOADER
    assert prompt["1"]["inputs"]["ckpt_name"] == "v1-5-pruned-emaonly.safetensors"
    original = sd15_workflow()
    for nid in ("2", "3", "10"):
        assert prompt[nid] == {"class_type": TEST_SD15_ENCODER,
                               "inputs": {"text": original[nid]["inputs"]["text"]}}
    assert prompt["4"]["inputs"]["steps"] == STEPS
    assert not {"CheckpointLoaderSimple", "CLIPTextEncode"} & {
        n["class_type"] for n in prompt.values()}
    assert len(changes) == 5, changes
    # an SDXL file still goes to the SDXL stand-in, and nothing else is touched
    xl = sd15_workflow()
    xl["1"]["inputs"]["ckpt_name"] = "sd_xl_base_1.0.safetensors"
    rewritten, _ = headless.rewrite_for_random_models(xl, steps=STEPS)
    assert rewritten["1"]["class_type"] == "LayerMemTestSDXLLoader"
    assert rewritten["2"]["class_type"] == "CLIPTextEncode"


def test_sd15_encoder_gives_clip_chunks_of_768():
    from tools import random_text_encoder as rte

    assert rte.sd15_embedding("a fox").shape == (1, 77, 768)
    assert rte.sd15_embedding(LONG_PROMPT).shape == (1, 154, 768)
    assert rte.sd15_embedding("a fox").equal(rte.sd15_embedding("a fox"))


@pytest.fixture(scope="module")
def server(comfy_root, tmp_path_factory):
    srv = headless.ComfyServer(tmp_path_factory.mktemp("e2e_sd15"), comfy_root=comfy_root,
                               random_models=True,
                               random_models_cache=tmp_path_factory.mktemp("e2e_sd15_models"))
    try:
        srv.start()
        yield srv
    finally:
        srv.stop()


def _picture(server, result, save_id: str):
    import numpy as np
    from PIL import Image

    (image,) = result.outputs[save_id]["images"]
    path = server.output_dir / image["subfolder"] / image["filename"]
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.float32)


def test_sd15_workflow_runs_on_the_stand_in(server):
    """Both nodes ran on the SD 1.5 stand-in; the new layer changed its box and, beyond the
    decoder's reach, nothing else."""
    import numpy as np

    prompt, _ = headless.rewrite_for_random_models(sd15_workflow(), steps=STEPS)
    result = server.run(prompt)
    assert result.ok, result.describe_error()
    assert {"1", "4", "11"} <= set(result.executed)
    background, added = _picture(server, result, "6"), _picture(server, result, "13")
    assert background.shape == (512, 512, 3)
    x0, y0, x1, y1 = BOX
    inside = np.zeros(background.shape[:2], dtype=bool)
    inside[y0:y1, x0:x1] = True
    far = np.ones_like(inside)
    r = DECODER_REACH_PX
    far[max(0, y0 - r):y1 + r, max(0, x0 - r):x1 + r] = False
    assert np.abs(added - background)[far].max() <= 2.0, "the picture changed outside the mask"
    assert np.abs(added - background)[inside].mean() > 1.0, "AddLayer changed nothing in its box"
