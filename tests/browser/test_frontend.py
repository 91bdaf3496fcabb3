"""What a ComfyUI user sees, in the real frontend (1.27.10) in a headless Chromium.

The real server runs with this pack and the random test models; tools/frontend_run.js opens each
template as the template browser does, presses the Queue button (the prompt it posts is rewritten
in flight for the random models: 512 px, 3 steps) and reports what the page shows. One run of the
script serves every test here (module fixture); the templates run in their order, so
continue_scene loads what layered_scene saved.

Needs /usr/bin/chromium and playwright-core (`bash tools/setup.sh` installs both). Without them
the tests are skipped with a loud reason, except under CI=true, where they fail.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tools import headless
from tools.build_workflows import UI_NAMES
from tools.workflow_nodes import (
    FLUX_MODEL_LINKS,
    MODEL_LINKS,
    SD15_LINKS,
    SD35_MODEL_LINKS,
    SDXL_LINKS,
)

REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.e2e]

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
PLAYWRIGHT = REPO / ".browser" / "node_modules" / "playwright-core"
SCRIPT = REPO / "tools" / "frontend_run.js"
PACK_EXTENSION = "layer_memory.ui"
LINK_COLOUR = "#D500F9"  # web/layer_memory.js
SCRIPT_TIMEOUT_S = 1800
TEMPLATES = list(UI_NAMES.values())  # in run order: continue_scene loads what layered_scene saved


def _browser_missing() -> str | None:
    needed = (("node", shutil.which("node")), (CHROMIUM, Path(CHROMIUM).exists()),
              (str(PLAYWRIGHT), PLAYWRIGHT.is_dir()))
    missing = [what for what, ok in needed if not ok]
    if not missing:
        return None
    why = f"!!! BROWSER TEST NOT RUN: {', '.join(missing)} missing; run `bash tools/setup.sh` !!!"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(why + " (CI=true: the browser test must run)")
    return why


@pytest.fixture(scope="module")
def report(comfy_root, tmp_path_factory) -> dict:
    why = _browser_missing()
    if why:
        pytest.skip(why)
    base = tmp_path_factory.mktemp("browser_comfyui")
    srv = headless.ComfyServer(base, comfy_root=comfy_root, random_models=True,
                               random_models_cache=tmp_path_factory.mktemp("browser_models"))
    out = base / "report.json"
    try:
        srv.start()
        proc = subprocess.run(["node", str(SCRIPT), srv.url, "--report", str(out)], cwd=REPO,
                              env={**os.environ, "PYTHON": sys.executable}, capture_output=True,
                              text=True, timeout=SCRIPT_TIMEOUT_S)
    finally:
        srv.stop()
    print(proc.stdout)
    assert proc.returncode == 0 and out.exists(), \
        f"frontend_run.js failed:\n{proc.stdout}\n{proc.stderr[-4000:]}"
    return json.loads(out.read_text())


def _workflows(report: dict) -> dict[str, dict]:
    found = {w["name"]: w for w in report["workflows"]}
    assert list(found) == TEMPLATES, list(found)
    return found


def _nodes(workflow: dict, type_: str) -> list[dict]:
    return [n for n in workflow["nodes"] if n["type"] == type_]


def test_pack_extension_loads_without_page_errors(report):
    assert PACK_EXTENSION in report["extensions"]
    from_pack = [e["text"] for e in report["page_errors"] if "layer_memory" in e["text"]]
    assert not from_pack, from_pack
    while_used = [e for e in report["page_errors"] if e["phase"] != "startup"]
    assert not while_used, while_used


def test_layer_memory_wires_have_their_own_colour(report):
    assert report["link_colour"] == LINK_COLOUR


def test_seed_nodes_from_the_menu_keep_their_seed(report):
    """Issue 26: a sampling node made from the menu starts with its seed on "fixed", so a
    re-run does not re-sample the scene from the background up (workflows keep their value)."""
    assert report["new_node_seed_controls"] == {
        t: "fixed" for t in ("LayerMem_LayerMemory", "LayerMem_AddLayer", "LayerMem_EditLayer",
                             "LayerMem_DeleteLayer",
                             "LayerMem_LayerMemoryFromImage")}


@pytest.mark.parametrize("name", TEMPLATES)
def test_template_opens_and_runs(report, name):
    wf = _workflows(report)[name]
    assert wf["missing_nodes"] == []
    assert wf["view_scale"] >= 8 / 14 and not wf["low_quality"], "opens in low-detail rendering"
    assert wf["errors"] == [], wf["errors"]
    assert wf["progress_samples"] > 0, "no progress bar seen on any node while sampling"
    # the Missing Models dialog offers every model file (this server has only the random models)
    dialog = "\n".join(wf["dialogs"])
    links = {"sdxl": SDXL_LINKS, "flux": FLUX_MODEL_LINKS, "sd35": SD35_MODEL_LINKS,
             "sd15": SD15_LINKS}
    for model in next((v for k, v in links.items() if k in name), MODEL_LINKS):
        assert f"{model['directory']} / {model['name']}" in dialog, dialog[:500]


@pytest.mark.parametrize("name", TEMPLATES)
def test_images_on_image_nodes(report, name):
    wf = _workflows(report)[name]
    shown = [n for n in wf["nodes"] if n["type"] in ("SaveImage", "LayerMem_PreviewLayers")]
    assert shown
    for node in shown:
        assert node["images"] >= 1, f"{node['title']} ({node['type']}) shows no image"
        assert str(node["id"]) in wf["executed"]


def test_save_layer_memory_message_on_the_node(report):
    (node,) = _nodes(_workflows(report)["1_layered_scene"], "LayerMem_SaveLayerMemory")
    saved = "layer_memory/savanna_00001_.safetensors"
    assert node["text"].startswith(f"Saved {saved}"), node["text"]
    assert f"LoadLayerMemory lists it as '{saved} [output]'" in node["text"]
    assert node["text_on_screen"]


def test_list_layers_table_on_the_node(report):
    (node,) = _nodes(_workflows(report)["2_continue_scene"], "LayerMem_ListLayers")
    lines = node["text"].splitlines()
    assert lines[1] == "order | name | mask area | tokens | seed", lines
    names = [row.split(" | ")[1] for row in lines[2:]]
    assert names == ["background", "cheetah", "lion", "leopard"], lines
    assert node["text_on_screen"]


def test_list_layers_table_is_back_after_the_workflow_is_opened_again(report):
    """Issue 26: the table was an empty box after a reload until the next run; it is kept in the
    node's properties and sized to its text (no wrapped rows)."""
    wf = _workflows(report)["2_continue_scene"]
    (node,) = _nodes(wf, "LayerMem_ListLayers")
    (again,) = wf["reloaded"]
    assert again["text"] == node["text"] and again["text"].count("\n") >= 4
    longest = max(len(line) for line in again["text"].splitlines())
    assert again["size"][0] >= 60 + 7 * longest, again["size"]


# ------------------------------------------------------------------ issue 24: Layer Box, layers

GRID = 8  # web/layer_box.js snaps a drag to the latent grid


def _layer_box(report) -> dict:
    box = report.get("layer_box")
    assert box, "frontend_run.js ran no Layer Box phase"
    return box


def test_layer_box_before_any_run_says_to_run_once(report):
    box = _layer_box(report)
    assert box["canvas_on_screen"]
    assert box["before_run"]["values"] == box["before"], "a press before a run changes nothing"
    assert box["before_run"]["note"].startswith("Run the workflow once (Queue)")


def test_layer_box_shows_the_memorys_picture_and_outlines_after_a_run(report):
    box = _layer_box(report)
    assert box["first_run"]["errors"] == [], box["first_run"]["errors"]
    pic = box["picture"]
    assert pic["ready"] and (pic["width"], pic["height"]) == (512, 512)  # the random-model scene
    assert [(o["index"], o["name"]) for o in pic["layers"]] == [(1, "cheetah"), (2, "lion")]


def test_dragging_a_box_on_the_node_sets_its_numbers(report):
    box = _layer_box(report)
    drawn, v = box["new_box"], box["new_box"]["values"]
    assert v != box["before"]
    for axis, size in (("x", "width"), ("y", "height")):
        lo = min(drawn["from"][axis], drawn["to"][axis])
        hi = max(drawn["from"][axis], drawn["to"][axis])
        assert v[axis] % GRID == 0 and v[size] % GRID == 0, v
        assert v[axis] <= lo < v[axis] + GRID, (axis, lo, v)
        assert v[axis] + v[size] - GRID < hi <= v[axis] + v[size], (axis, hi, v)
    assert (v["picture_width"], v["picture_height"]) == (512, 512)
    assert v["layer"] == ""
    assert "link the mask to Add Layer's mask" in drawn["note"]


def test_the_drawn_box_is_the_new_layers_mask(report):
    """The second run sends the dragged numbers: List Layers' new top layer covers exactly them."""
    box = _layer_box(report)
    assert box["second_run"]["errors"] == [], box["second_run"]["errors"]
    v = box["new_box"]["values"]
    rows = [row.split(" | ") for row in box["table"].splitlines()[2:]]
    assert [r[1] for r in rows] == ["background", "cheetah", "lion", "leopard"], box["table"]
    assert rows[3][2] == f"{v['width'] * v['height'] / 512 ** 2 * 100:.1f}%", (rows[3], v)


def test_dragging_a_layer_outline_moves_its_box(report):
    moved = _layer_box(report)["moved_layer"]
    x, y, w, h = moved["layer"]["box"]
    v = moved["values"]
    assert v["layer"] == moved["layer"]["name"] == "lion"
    assert (v["width"], v["height"]) == (w, h), "moved, not resized"
    assert abs(v["x"] - (x + moved["by"]["x"])) <= GRID and v["x"] != x, (v, moved)
    assert abs(v["y"] - (y + moved["by"]["y"])) <= GRID and v["y"] != y, (v, moved)
    assert "Layer 2 'lion' moved" in moved["note"]
    assert v["shape"] == "layer's shape", "the lion's own mask is moved, not its box"


def test_edit_layer_moves_the_dragged_layer(report):
    """The drag's Layer Box linked (mask and layer) into an Edit Layer, run: a Layer Box on the
    edited memory outlines the lion exactly where the drag put it, the cheetah where it was."""
    box = _layer_box(report)
    moved = box["moved_layer"]
    edit, v = moved["edit"], moved["values"]
    assert edit["layer_linked"] and edit["run"]["errors"] == [], edit
    assert str(edit["edit"]) in edit["run"]["executed"]
    after = {o["name"]: o["box"] for o in edit["layers"]}
    assert after["lion"] == [v["x"], v["y"], v["width"], v["height"]], (after, v)
    before = {o["name"]: o["box"] for o in box["picture"]["layers"]}
    assert after["cheetah"] == before["cheetah"]
    assert after["lion"] != before["lion"]


def test_layer_inputs_offer_the_layers_after_a_run(report):
    wf = _workflows(report)["1_layered_scene"]
    (delete,) = _nodes(wf, "LayerMem_DeleteLayer")
    assert delete["pick"] == ["1: cheetah", "2: leopard", "3: lion"], delete["pick"]
    reroll = next(n for n in _nodes(wf, "LayerMem_EditLayer") if n["layer"] == "cheetah")
    assert reroll["pick"] == ["0: background", "1: cheetah", "2: lion"], reroll["pick"]
    picked = wf["picked"]
    assert picked["label"] == "2: lion" and picked["after"] == "lion", picked
    assert "2: lion" not in picked["widgets_values"], "the list is not saved into the workflow"
    assert picked["before"] in picked["widgets_values"]


# ------------------------------------------------- issue 24, second round: brush, a real pick

def test_a_brush_stroke_drawn_with_the_mouse_is_the_new_layers_mask(report):
    """Brush clicked, a stroke dragged with the mouse, a run: the strokes text is what the mouse
    drew and List Layers' new top layer has the stroke's area (a round brush along the line)."""
    brush = _layer_box(report)["brush"]
    assert brush["shape"] == "strokes" and brush["values"]["layer"] == "", brush
    (stroke,) = json.loads(brush["strokes"])
    assert stroke["tool"] == "brush" and stroke["radius"] == 24, stroke
    (x0, y0), (x1, y1) = stroke["points"][0], stroke["points"][-1]
    a, b = brush["from"], brush["to"]
    assert abs(x0 - a["x"]) <= 2 and abs(y0 - a["y"]) <= 2, (stroke["points"][0], a)
    assert abs(x1 - b["x"]) <= 2 and abs(y1 - b["y"]) <= 2, (stroke["points"][-1], b)
    assert len(stroke["points"]) >= 3, "the line's points, not only its ends"
    assert brush["run"]["errors"] == [], brush["run"]["errors"]
    rows = [row.split(" | ") for row in brush["table"].splitlines()[2:]]
    assert [r[1] for r in rows] == ["background", "cheetah", "lion", "leopard"], brush["table"]
    r = stroke["radius"]
    capsule = 2 * r * ((x1 - x0) ** 2 + (y1 - y0) ** 2) ** 0.5 + 3.14159 * r * r
    area = float(rows[3][2].rstrip("%")) / 100 * 512 ** 2
    assert abs(area - capsule) < 0.08 * capsule, (area, capsule, rows[3])


def test_picking_a_layer_with_clicks_on_the_list_deletes_that_layer(report):
    """A Delete Layer added after Add Layer ran once with `-1` (the top layer, the stroke); then
    its "pick layer" list was opened with a click and '1: cheetah' clicked; the next run's table
    no longer has the cheetah."""
    deleted = _layer_box(report)["deleted"]
    assert deleted["pick_clicked"] == ["1: cheetah", "2: lion", "3: leopard"], deleted
    assert deleted["layer"] == "cheetah"
    names = lambda table: [row.split(" | ")[1] for row in table.splitlines()[2:]]  # noqa: E731
    assert names(deleted["before"]) == ["background", "cheetah", "lion"], deleted["before"]
    assert deleted["run"]["errors"] == [], deleted["run"]["errors"]
    assert names(deleted["table"]) == ["background", "lion", "leopard"], deleted["table"]
