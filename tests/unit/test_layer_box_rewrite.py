"""The random-model rewrite (tools/headless) scales a Layer Box typed for the template's size
like SolidMask + MaskComposite, and keeps a box drawn on the rewritten run's own picture."""
from __future__ import annotations

from tools import headless


def _prompt(box: dict) -> dict:
    return {
        "1": {"class_type": "LayerMem_LayerMemory", "inputs": {"width": 1024, "height": 1024}},
        "2": {"class_type": "LayerMem_LayerMemoryBox", "inputs": {"memory": ["1", 0], **box}},
    }


def test_a_typed_box_is_scaled_with_the_scene():
    box = {"x": 384, "y": 464, "width": 240, "height": 320, "picture_width": 1024,
           "picture_height": 1024}
    out = headless.rewrite_for_random_models(_prompt(box))[0]["2"]["inputs"]
    assert out == {"memory": ["1", 0], "x": 192, "y": 232, "width": 120, "height": 160,
                   "picture_width": 512, "picture_height": 512}


def test_a_box_drawn_on_the_rewritten_picture_stays_as_drawn():
    box = {"x": 200, "y": 136, "width": 152, "height": 160, "picture_width": 512,
           "picture_height": 512}
    out = headless.rewrite_for_random_models(_prompt(box))[0]["2"]["inputs"]
    assert out == {"memory": ["1", 0], **box}


def test_strokes_painted_for_the_template_size_are_scaled_with_the_scene():
    strokes = '[{"tool": "brush", "radius": 40, "points": [[100, 200], [300, 401]]}]'
    box = {"x": 0, "y": 0, "width": 64, "height": 64, "picture_width": 1024,
           "picture_height": 1024, "strokes": strokes}
    out = headless.rewrite_for_random_models(_prompt(box))[0]["2"]["inputs"]
    assert out["strokes"] == \
        '[{"tool":"brush","radius":20.0,"points":[[50.0,100.0],[150.0,200.5]]}]'
    drawn = {**box, "picture_width": 512, "picture_height": 512}
    assert headless.rewrite_for_random_models(_prompt(drawn))[0]["2"]["inputs"] == \
        {"memory": ["1", 0], **drawn}
