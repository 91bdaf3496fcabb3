"""Issue 24, second round: a pipeline posting to /prompt paints Layer Box's mask with strokes as
JSON text (no frontend) and gets the same memory, bit for bit, as AddLayer given the same mask
made another way: the strokes rasterised by an independent reference, saved as a PNG and read
back by ComfyUI's stock LoadImageMask. The prompt goes through ComfyUI's /prompt validation and
its real executor."""
from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest
import torch
from executor import background_prompt, cached_output, classic_executor, register_test_cond
from PIL import Image
from stroke_reference import reference

from tools import scenes
from tools.random_models import ALPHA_512

pytestmark = pytest.mark.e2e

STROKES = [{"tool": "brush", "radius": 40, "points": [[120, 300], [200, 260], [330, 280]]},
           {"tool": "brush", "radius": 18, "points": [[400, 120]]},
           {"tool": "eraser", "radius": 12, "points": [[200, 230], [200, 300]]}]
PNG = "layer_box_strokes_reference.png"


@pytest.fixture
def input_dir(host, tmp_path):
    """ComfyUI's input folder pointed at a test folder (never the real ~/ComfyUI/input)."""
    fp = host.folder_paths
    before = fp.get_input_directory()
    fp.set_input_directory(str(tmp_path))
    yield tmp_path
    fp.set_input_directory(before)


def _prompt(host, strokes: str) -> dict:
    add = {"seed": 7, "use_mqd": True, "grow": 0, "feather": 0, "unblended_fraction": 0.0,
           "name": "painted", "position": -1}
    return {
        **background_prompt(host, ALPHA_512.filename),
        "6": {"class_type": "LayerMemTestCond", "inputs": {"seed": 5}},
        "box": {"class_type": "LayerMem_LayerMemoryBox",
                "inputs": {"memory": ["4", 0], "x": 0, "y": 0, "width": 0, "height": 0,
                           "vae": ["1", 2], "picture_width": 512, "picture_height": 512,
                           "layer": "", "shape": "strokes", "strokes": strokes}},
        "add_painted": {"class_type": "LayerMem_AddLayer",
                        "inputs": {"memory": ["4", 0], "model": ["1", 0], "positive": ["6", 0],
                                   "mask": ["box", 0], **add}},
        "load": {"class_type": "LoadImageMask", "inputs": {"image": PNG, "channel": "red"}},
        "add_loaded": {"class_type": "LayerMem_AddLayer",
                       "inputs": {"memory": ["4", 0], "model": ["1", 0], "positive": ["6", 0],
                                  "mask": ["load", 0], **add}},
    }


def test_api_strokes_give_the_same_memory_as_the_stock_loaded_mask(host, input_dir):
    import execution

    want = reference(STROKES, np.zeros((512, 512)))
    red = (want * 255).astype(np.uint8)
    Image.fromarray(np.stack([red] * 3, axis=-1)).save(input_dir / PNG)
    register_test_cond(host)
    prompt = _prompt(host, json.dumps(STROKES))
    valid, error, outputs, node_errors = asyncio.run(
        execution.validate_prompt("layer-box-strokes", prompt, None))
    assert valid, (error, node_errors)
    executor = classic_executor()
    executor.execute(prompt, "layer-box-strokes", {}, list(outputs) + ["add_painted",
                                                                       "add_loaded"])
    assert executor.success, executor.status_messages
    painted, loaded = cached_output(executor, "box"), cached_output(executor, "load")
    assert painted.shape == loaded.shape == (1, 512, 512) and painted.dtype == loaded.dtype
    assert torch.equal(painted, loaded)
    assert 0.05 < float(painted.mean()) < 0.3, "the strokes painted something, not everything"
    a, b = cached_output(executor, "add_painted"), cached_output(executor, "add_loaded")
    assert len(a.layers) == 2 and a.layers[1].name == "painted"
    assert scenes.memory_digest(a) == scenes.memory_digest(b)


@pytest.mark.parametrize("strokes, fix", [
    ("[{", "Fix: give a JSON list of strokes"),
    ('[{"tool": "brush", "radius": 0, "points": [[10, 10]]}]', "use a radius of at least 1"),
    ('[{"tool": "brush", "radius": 5, "points": [[600, 10]]}]',
     "Fix: paint on the Layer Box's picture"),
])
def test_api_bad_strokes_are_refused_before_sampling(host, input_dir, strokes, fix):
    """Refused by Layer Box, which runs before the AddLayer it feeds samples anything."""
    import execution

    register_test_cond(host)
    prompt = _prompt(host, strokes)
    for name in ("load", "add_loaded"):
        del prompt[name]
    valid, *_ = asyncio.run(execution.validate_prompt("layer-box-bad-strokes", prompt, None))
    assert valid
    executor = classic_executor()
    executor.execute(prompt, "layer-box-bad-strokes", {}, ["add_painted"])
    assert not executor.success
    (error,) = [d for e, d in executor.status_messages if e == "execution_error"]
    assert error["node_id"] == "box" and error["exception_type"].endswith("LayerMemoryError")
    assert "input 'strokes'" in error["exception_message"] and fix in error["exception_message"]
    assert "add_painted" not in error.get("executed", []), "AddLayer did not run"
