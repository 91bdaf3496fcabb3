"""Issue 24: a pipeline posting to /prompt sets Layer Box's box with numbers (API format, no
frontend) and gets the same mask, bit for bit, as the SolidMask + MaskComposite chain the
templates used. The prompt goes through ComfyUI's own /prompt validation and its real executor."""
from __future__ import annotations

import asyncio

import pytest
import torch
from executor import background_prompt, cached_output, classic_executor, register_test_cond

from tools.random_models import ALPHA_512

pytestmark = pytest.mark.e2e

BOXES = [(64, 96, 200, 120), (0, 0, 512, 512), (8, 400, 504, 112), (311, 7, 1, 3)]


def _prompt(host) -> dict:
    """The API format a pipeline posts: node id -> class_type and inputs (links are [id, out])."""
    prompt = {
        **background_prompt(host, ALPHA_512.filename),
        "5": {"class_type": "SolidMask", "inputs": {"value": 0.0, "width": 512, "height": 512}},
    }
    for i, (x, y, w, h) in enumerate(BOXES):
        prompt[f"box{i}"] = {"class_type": "LayerMem_LayerMemoryBox",
                             "inputs": {"memory": ["4", 0], "x": x, "y": y, "width": w,
                                        "height": h, "vae": ["1", 2]}}
        prompt[f"size{i}"] = {"class_type": "SolidMask",
                              "inputs": {"value": 1.0, "width": w, "height": h}}
        prompt[f"paste{i}"] = {"class_type": "MaskComposite",
                               "inputs": {"destination": ["5", 0], "source": [f"size{i}", 0],
                                          "x": x, "y": y, "operation": "add"}}
    return prompt


def test_api_boxes_give_the_solidmask_maskcomposite_mask_bit_for_bit(host):
    import execution

    register_test_cond(host)
    prompt = _prompt(host)
    valid, error, outputs, node_errors = asyncio.run(
        execution.validate_prompt("layer-box-api", prompt, None))
    assert valid, (error, node_errors)
    assert sorted(outputs) == sorted(f"box{i}" for i in range(len(BOXES))), \
        "Layer Box is an output node: it runs (and shows its picture) with nothing connected"
    executor = classic_executor()
    pastes = [f"paste{i}" for i in range(len(BOXES))]
    executor.execute(prompt, "layer-box-api", {}, list(outputs) + pastes)
    assert executor.success, executor.status_messages
    for i in range(len(BOXES)):
        ours, theirs = cached_output(executor, f"box{i}"), cached_output(executor, f"paste{i}")
        assert ours.dtype == theirs.dtype and ours.shape == theirs.shape == (1, 512, 512)
        assert torch.equal(ours, theirs), BOXES[i]
        assert ours.untyped_storage().nbytes() == theirs.untyped_storage().nbytes()


@pytest.mark.parametrize("change, input_name, fix", [
    ({"x": 480, "width": 64}, "width", "Fix: use x + width <= 512"),
    ({"height": 0}, "height", "Fix: drag a box on the Layer Box's picture"),
    ({"width": 0}, "width", "or type a width of at least 1"),
    ({"picture_width": 768, "picture_height": 512}, "picture_width",
     "Fix: run the workflow once so the Layer Box shows this memory's picture"),
])
def test_api_bad_box_is_refused_with_the_input_and_the_fix(host, change, input_name, fix):
    """Refused by the node (not by ComfyUI's min/max check), with what to do."""
    import execution

    register_test_cond(host)
    prompt = _prompt(host)
    prompt["box0"]["inputs"].update(change)
    valid, *_ = asyncio.run(execution.validate_prompt("layer-box-bad", prompt, None))
    assert valid
    executor = classic_executor()
    executor.execute(prompt, "layer-box-bad", {}, ["box0"])
    assert not executor.success
    (error,) = [d for e, d in executor.status_messages if e == "execution_error"]
    assert error["node_id"] == "box0" and error["exception_type"].endswith("LayerMemoryError")
    assert f"input '{input_name}'" in error["exception_message"]
    assert fix in error["exception_message"]
