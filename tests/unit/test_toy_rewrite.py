"""The toy-world rewrite (tools/headless/toy_rewrite.py) turns the SD 1.5 template into a graph
the toy model can run: its nodes, the toy world's words only, 128 px, boxes on the 8 px grid,
the toy ablation's sampling; and it refuses what the toy model cannot run."""
from __future__ import annotations

from pathlib import Path

import pytest

from tools import headless
from tools.headless import toy_rewrite
from tools.toyworld import world

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "workflows" / "api" / "sd15_layered_scene_api.json"


def _template() -> dict:
    return headless.load_api_workflow(TEMPLATE)


def test_the_template_becomes_the_toy_scene():
    prompt, changes = headless.rewrite_for_toy_world(_template())
    kinds = {n["class_type"] for n in prompt.values()}
    assert not kinds & {"CheckpointLoaderSimple", "CLIPTextEncode"}
    captions = [n["inputs"]["text"] for n in prompt.values()
                if n["class_type"] == toy_rewrite.TOY_ENCODER]
    # background, negative, then the three objects in graph order
    assert captions == ["grass", "", "a red circle", "a blue square", "a yellow triangle"]
    (memory,) = [n["inputs"] for n in prompt.values()
                 if n["class_type"] == "LayerMem_LayerMemory"]
    assert (memory["width"], memory["height"], memory["steps"], memory["cfg"],
            memory["sampler_name"], memory["scheduler"]) == (128, 128, 12, 5.0, "dpmpp_2m",
                                                             "karras")
    boxes = [n["inputs"] for n in prompt.values() if n["class_type"] == "LayerMem_LayerMemoryBox"]
    # tools/toyworld/picture.py's boxes (x0, y0, x1, y1)
    assert [(b["x"], b["y"], b["x"] + b["width"], b["y"] + b["height"]) for b in boxes] == \
        [(16, 24, 64, 72), (48, 40, 96, 88), (72, 16, 120, 64)]
    for b in boxes:
        assert all(b[k] % 8 == 0 for k in ("x", "y", "width", "height"))
        assert (b["picture_width"], b["picture_height"]) == (128, 128)
    assert len(changes) == 28, changes


def test_every_caption_is_known_to_the_toy_encoder():
    text = pytest.importorskip("tools.toyworld.text")  # torch: the encoder's own tokenizer
    prompts = ["A purple cross on the beach at night", "an orange wheel", "a crate", "",
               "Create an image of a cheetah with a sleek, slender body", "white disc, sky"]
    for i, p in enumerate(prompts):
        for caption in (toy_rewrite.object_caption(p, i), toy_rewrite.background_caption(p)):
            text.tokenize(caption)  # raises on an unknown word
    assert toy_rewrite.object_caption("A purple cross on the beach", 0) == "a purple cross"
    assert toy_rewrite.object_caption("a cheetah", 1) == "a blue square"  # the 2nd default
    assert toy_rewrite.background_caption("a sandy beach at night") == "sand"
    assert toy_rewrite.background_caption("a savanna") == "grass"


def test_the_word_lists_are_the_toy_worlds():
    assert set(toy_rewrite.BACKGROUNDS) == set(world.BG_NAMES)
    assert set(toy_rewrite.SHAPES) == set(world.SHAPES)
    assert set(toy_rewrite.COLOURS) == set(world.COLOUR_NAMES)
    for colour, shape in toy_rewrite.DEFAULT_OBJECTS:
        assert colour in world.COLOUR_NAMES and shape in world.SHAPES


def test_a_box_drawn_on_the_toy_picture_stays_as_drawn():
    prompt = _template()
    prompt["12"]["inputs"].update(x=8, y=16, width=40, height=24, picture_width=128,
                                  picture_height=128)
    out = headless.rewrite_for_toy_world(prompt)[0]["12"]["inputs"]
    assert (out["x"], out["y"], out["width"], out["height"]) == (8, 16, 40, 24)


@pytest.mark.parametrize("path", ["layered_scene_api.json", "sdxl_layered_scene_api.json",
                                  "flux_layered_scene_api.json", "sd35_layered_scene_api.json"])
def test_other_families_are_refused_with_the_fix(path):
    with pytest.raises(headless.HeadlessError, match="SD 1.5 workflows only.*Fix: use "
                                                     "--random-models"):
        headless.rewrite_for_toy_world(headless.load_api_workflow(REPO / "workflows" / "api"
                                                                  / path))


def test_run_workflow_takes_one_model_choice(capsys):
    from tools import run_workflow

    args = run_workflow.parse_args([str(TEMPLATE), "--toy-world"])
    assert args.toy_world and not args.random_models
    with pytest.raises(SystemExit):
        run_workflow.parse_args([str(TEMPLATE), "--toy-world", "--random-models"])
    assert "choose one" in capsys.readouterr().err


def test_run_workflow_refuses_another_family_before_any_server(capsys):
    from tools import run_workflow

    status = run_workflow.main([str(REPO / "workflows" / "api" / "sdxl_layered_scene_api.json"),
                                "--toy-world"])
    assert status == 1
    assert "SD 1.5 workflows only" in capsys.readouterr().err
