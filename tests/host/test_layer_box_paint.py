"""Issue 24, second round: Layer Box's brush and eraser strokes (JSON text, rasterised on the
server) and "layer's shape" (a dragged layer's own mask moved, not its bounding box), in the real
ComfyUI; bad strokes refused with the input and the fix before anything is decoded or sampled."""
import json

import numpy as np
import pytest
import torch
from refusals import NoDecode, refused
from stroke_reference import reference

from tools import scenes

pytestmark = pytest.mark.host


@pytest.fixture(scope="module")
def N(host):
    return host.nodes.NODE_CLASS_MAPPINGS



def _box(N, memory, x=0, y=0, w=64, h=64, **kw):
    return N["LayerMem_LayerMemoryBox"].execute(memory, x, y, w, h, **kw)


STROKES = [{"tool": "brush", "radius": 30, "points": [[100, 120], [180, 150], [260, 140]]},
           {"tool": "brush", "radius": 12.5, "points": [[400.25, 60.75]]},
           {"tool": "eraser", "radius": 10, "points": [[180, 150], [180, 300]]},
           {"tool": "brush", "radius": 6, "points": [[0, 0], [512, 512]]}]


def test_strokes_are_rasterised_as_an_independent_rasteriser_does(N, background, temp_dir):
    mask = _box(N, background, shape="strokes", strokes=json.dumps(STROKES)).result[0]
    assert mask.dtype == torch.float32 and mask.shape == (1, 512, 512)
    want = reference(STROKES, np.zeros((512, 512)))
    assert np.array_equal(mask[0].numpy(), want.astype(np.float32))
    # the dot: a disc of radius 12.5 (about 491 px), the eraser cut the first stroke
    assert abs(want[40:90, 380:430].sum() - np.pi * 12.5 ** 2) < 30
    assert want[200, 180] == 0 and want[150, 120] == 1


def test_box_plus_strokes_paints_and_erases_on_the_box(N, background, temp_dir):
    strokes = [{"tool": "eraser", "radius": 20, "points": [[64, 64]]},
               {"tool": "brush", "radius": 16, "points": [[300, 300], [350, 300]]}]
    mask = _box(N, background, 64, 64, 128, 128, shape="box + strokes",
                strokes=json.dumps(strokes)).result[0]
    base = np.zeros((512, 512))
    base[64:192, 64:192] = 1
    assert np.array_equal(mask[0].numpy(), reference(strokes, base).astype(np.float32))
    assert mask[0, 64, 64] == 0 and mask[0, 100, 100] == 1 and mask[0, 300, 320] == 1


def test_box_ignores_strokes_and_strokes_ignore_the_box(N, background, temp_dir):
    """Old workflows (no shape) keep their box; shape 'strokes' does not check the box."""
    box = _box(N, background, 8, 8, 32, 32, strokes="not even JSON").result[0]
    assert int(box.sum()) == 32 * 32
    only = _box(N, background, 0, 0, 0, 0, shape="strokes",
                strokes='[{"tool": "brush", "radius": 4, "points": [[50, 50]]}]').result[0]
    assert 0 < int(only.sum()) < 60 and only[0, 50, 50] == 1


@pytest.mark.parametrize("text, match", [
    ("[{", "not JSON"),
    ('{"tool": "brush"}', "not a list of strokes"),
    ('[[1, 2]]', "stroke 0 is list, not an object"),
    ('[{"tool": "pen", "radius": 3, "points": [[1, 1]]}]', 'tool is "pen"'),
    ('[{"tool": "brush", "radius": 0, "points": [[1, 1]]}]', "radius is 0"),
    ('[{"tool": "brush", "radius": -2, "points": [[1, 1]]}]', "radius is -2"),
    ('[{"tool": "brush", "radius": "big", "points": [[1, 1]]}]', "not a number"),
    ('[{"tool": "brush", "radius": 3, "points": []}]', "has no points"),
    ('[{"tool": "brush", "radius": 3, "points": [[1, 2, 3]]}]', "not \\[x, y\\]"),
    ('[{"tool": "brush", "radius": 3, "points": [[10, 10], [513, 10]]}]',
     r"point 1 \(513, 10\) is outside the picture"),
    ('[{"tool": "brush", "radius": 3, "points": [[-1, 10]]}]', "outside the picture"),
    ('[{"tool": "brush", "radius": 3, "size": 2, "points": [[1, 1]]}]', "unknown keys"),
    ("", "nothing is painted"),
    ("[]", "nothing is painted"),
    ('[{"tool": "eraser", "radius": 9, "points": [[5, 5]]}]', "the eraser removed everything"),
])
def test_bad_strokes_are_refused_before_decoding(host, N, background, temp_dir, text, match):
    e = refused(host, _box, N, background, shape="strokes", strokes=text, vae=NoDecode(),
                match=match, input_name="strokes")
    assert e.fix


def test_bad_shape_and_missing_layer_are_refused(host, N, three_layers, temp_dir):
    refused(host, _box, N, three_layers[-1], shape="circle", vae=NoDecode(),
            match="not a shape", input_name="shape")
    refused(host, _box, N, three_layers[-1], shape="layer's shape", vae=NoDecode(),
            match="no layer is given", input_name="layer")


# ------------------------------------------------------------------ a layer's own shape, moved

@pytest.fixture(scope="module")
def round_layer(host, alpha, background):
    """A background and one round object (a disc painted with the brush: not its bounding box)."""
    disc = [{"tool": "brush", "radius": 60, "points": [[160, 200]]}]
    mask = torch.from_numpy(reference(disc, np.zeros((512, 512))).astype(np.float32))[None]
    return host.layer_ops.add_layer(background, alpha, scenes.cond(50), mask, seed=51,
                                    name="ball")


def test_layers_shape_is_its_own_mask_shifted(N, round_layer, temp_dir):
    memory = round_layer
    digest = scenes.memory_digest(memory)
    old = memory.layers[1].latent_mask
    (x, y, w, h) = N["LayerMem_LayerMemoryBox"].execute(memory, 0, 0, 8,
                                                        8).ui["layer_box"][0]["layers"][0][
        "box"]
    mask = _box(N, memory, x + 96, y + 40, w, h, layer="ball", shape="layer's shape").result[0]
    up = old.repeat_interleave(8, 0).repeat_interleave(8, 1)
    assert torch.equal(mask[0], torch.roll(up, (40, 96), (0, 1)))
    assert float(mask.sum()) < 0.85 * w * h, "a disc, not its box"
    scaled = _box(N, memory, 0, 0, 2 * w, h, layer="ball", shape="layer's shape").result[0]
    assert torch.equal(scaled[0, :h, 0:2 * w:2], up[y:y + h, x:x + w])
    assert scenes.memory_digest(memory) == digest, "the memory on the edge is not changed"


def test_edit_layer_moves_the_shape(N, alpha, round_layer, temp_dir):
    """EditLayer with the shape mask: the new layer's latent mask is the old one shifted."""
    memory = round_layer
    old = memory.layers[1].latent_mask
    (x, y, w, h) = N["LayerMem_LayerMemoryBox"].execute(memory, 0, 0, 8,
                                                        8).ui["layer_box"][0]["layers"][0][
        "box"]
    mask, layer = _box(N, memory, x + 96, y + 40, w, h, layer="ball",
                       shape="layer's shape").result
    moved = N["LayerMem_EditLayer"].execute(memory, alpha, layer, 51, mask=mask, grow=0,
                                   feather=0).result[0]
    assert torch.equal(moved.layers[1].latent_mask, torch.roll(old, (5, 12), (0, 1)))
    assert moved.layers[1].name == "ball"
