"""Issue 24: Layer Box (LayerMemoryBox) in the real ComfyUI: box numbers -> MASK exactly, the
picture and outlines it sends to its widget, bad boxes refused with the input and the fix, and the
layer choices the `layer` inputs offer after a run."""
import os

import pytest
import torch
from PIL import Image
from refusals import NoDecode, refused

from tools import scenes

pytestmark = pytest.mark.host


@pytest.fixture(scope="module")
def N(host):
    return host.nodes.NODE_CLASS_MAPPINGS



def _box(N, memory, x, y, w, h, vae=None, **kw):
    return N["LayerMem_LayerMemoryBox"].execute(memory, x, y, w, h, vae=vae, **kw)


@pytest.mark.parametrize("box", [(0, 0, 512, 512), (64, 128, 200, 72), (511, 0, 1, 512),
                                 (3, 5, 7, 11)])
def test_box_numbers_give_the_mask_exactly(N, background, temp_dir, box):
    x, y, w, h = box
    mask = _box(N, background, *box).result[0]
    want = torch.zeros(1, 512, 512, dtype=torch.float32)
    want[0, y:y + h, x:x + w] = 1.0
    assert mask.dtype == torch.float32 and mask.shape == (1, 512, 512)
    assert torch.equal(mask, want)
    assert int(mask.sum()) == w * h


def test_the_widget_gets_the_picture_outlines_and_choices(N, three_layers, vae, temp_dir):
    memory = three_layers[-1]
    digest = scenes.memory_digest(memory)
    out = _box(N, memory, 0, 0, 64, 64, vae=vae)
    (shown,) = out.ui["layer_box"]
    assert (shown["width"], shown["height"], shown["type"]) == (512, 512, "temp")
    path = os.path.join(temp_dir, shown["subfolder"], shown["filename"])
    with Image.open(path) as img:
        assert img.size == (512, 512)
    # the fixture's boxes: (0.10, 0.10, 0.55, 0.55), (0.40, 0.30, 0.85, 0.80), (0.20, 0.60, ...)
    outlines = {o["index"]: o for o in shown["layers"]}
    assert sorted(outlines) == [1, 2, 3]
    assert outlines[1]["name"] == "object 1"
    x, y, w, h = outlines[1]["box"]
    assert (x, y) == (48, 48) and (x + w, y + h) == (288, 288), outlines[1]  # 8 px grid
    assert [c["label"] for c in out.ui["layer_choices"]] == \
        ["0: background", "1: object 1", "2: object 2", "3: object 3"]
    assert scenes.memory_digest(memory) == digest


def test_without_a_vae_the_outlines_are_on_grey(N, three_layers, temp_dir):
    out = _box(N, three_layers[1], 0, 0, 64, 64)
    (shown,) = out.ui["layer_box"]
    with Image.open(os.path.join(temp_dir, shown["subfolder"], shown["filename"])) as img:
        corner = img.convert("RGB").getpixel((500, 500))
    assert corner == (89, 89, 89), corner  # 0.35 grey, far from the one layer


@pytest.mark.parametrize("box, input_name, match", [
    ((0, 0, 0, 64), "width", "zero size"),
    ((0, 0, 64, 0), "height", "zero size"),
    ((-8, 0, 64, 64), "x", "starts outside the picture"),
    ((0, -1, 64, 64), "y", "starts outside the picture"),
    ((480, 0, 64, 64), "width", r"x \+ width = 480 \+ 64 = 544 is past the picture's right edge"),
    ((0, 500, 64, 13), "height", "past the picture's bottom edge"),
    ((512, 0, 1, 1), "width", "past the picture's right edge"),
])
def test_bad_boxes_are_refused_before_decoding(host, N, background, temp_dir, box, input_name,
                                              match):
    refused(host, _box, N, background, *box, vae=NoDecode(), match=match, input_name=input_name)


def test_a_box_drawn_on_another_size_is_refused(host, N, background, temp_dir):
    e = refused(host, _box, N, background, 0, 0, 64, 64, vae=NoDecode(), picture_width=1024,
                picture_height=1024, match="drawn on a 1024x1024 picture but this memory is "
                                           "512x512", input_name="picture_width")
    assert "run the workflow once" in e.fix
    assert _box(N, background, 0, 0, 64, 64, picture_width=512, picture_height=512).result


def test_the_dragged_layer_is_passed_on_and_checked(host, N, three_layers, temp_dir):
    memory = three_layers[-1]
    assert _box(N, memory, 0, 0, 64, 64, layer="object 2").result[1] == "object 2"
    assert _box(N, memory, 0, 0, 64, 64).result[1] == ""
    refused(host, _box, N, memory, 0, 0, 64, 64, vae=NoDecode(), layer="dog",
            match="no layer is named 'dog'", input_name="layer")
    refused(host, _box, N, memory, 0, 0, 64, 64, vae=NoDecode(), layer="0",
            match="the background, which has no outline", input_name="layer")


def test_not_a_memory_is_refused(host, N, temp_dir):
    refused(host, _box, N, torch.zeros(1, 4, 64, 64), 0, 0, 64, 64, match="LAYER_MEMORY",
            input_name="memory")


def test_the_mask_makes_the_same_layer_as_a_hand_made_box(N, alpha, background, temp_dir):
    mask = _box(N, background, 64, 96, 256, 160).result[0]
    by_hand = torch.zeros(1, 512, 512)
    by_hand[:, 96:256, 64:320] = 1.0
    a = N["LayerMem_AddLayer"].execute(background, alpha, scenes.cond(40), mask, 3).result[0]
    b = N["LayerMem_AddLayer"].execute(background, alpha, scenes.cond(40), by_hand, 3).result[0]
    assert scenes.memory_digest(a) == scenes.memory_digest(b)


# ------------------------------------------------------------------------- layer choices

def test_layer_inputs_get_the_input_memorys_layers(host, N, alpha, three_layers):
    memory = three_layers[-1].renamed(2, "object 1")  # two layers named "object 1"
    history = N["LayerMem_LayerMemoryHistory"].execute(memory, "-1").ui["layer_choices"]
    assert history == [{"label": "0: background", "value": "background"},
                       {"label": "1: object 1", "value": "1"},  # the name picks layer 2
                       {"label": "2: object 1", "value": "object 1"},
                       {"label": "3: object 3", "value": "object 3"}]
    for choice in history:
        assert memory.resolve(choice["value"], allow_background=True) == \
            int(choice["label"].split(":")[0]), choice
    deleted = N["LayerMem_DeleteLayer"].execute(memory, alpha, "-1", 0.0, 1).ui["layer_choices"]
    assert [c["label"] for c in deleted] == ["1: object 1", "2: object 1", "3: object 3"], \
        "DeleteLayer cannot pick the background"
