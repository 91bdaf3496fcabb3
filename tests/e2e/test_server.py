"""ComfyUI's real server runs every example workflow (random models), then re-uses its cache for unchanged layers.

One server per module (tools/headless.py: `python main.py --cpu --base-directory <tmp>`), always stopped
by the fixture. Workflows are rewritten for the random test models: 512 px, few steps, test text encoder.
"""
from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[2]
if str(REPO / "tools") not in sys.path:
    sys.path.insert(0, str(REPO / "tools"))

import headless  # noqa: E402

pytestmark = pytest.mark.e2e

API_FILES = sorted((REPO / "workflows").rglob("*_api.json"))
UI_FILES = sorted(p for p in (REPO / "workflows").glob("*.json") if headless.is_ui_format(json.loads(p.read_text())))
STEPS = 2  # enough for every node to run its real code path; keeps the module well under 3 minutes on a CPU
NODE_IDS = ["LoadPixArt", "LayerMemory", "AddLayer", "BCGBlend", "DeleteLayer", "ListLayers"]
_FIRST_RUNS: dict[Path, headless.RunResult] = {}


def _rel(p: Path) -> str:
    return str(p.relative_to(REPO))


@pytest.fixture(scope="module")
def server(comfy_root, tmp_path_factory):
    srv = headless.ComfyServer(tmp_path_factory.mktemp("e2e_comfyui"), comfy_root=comfy_root, random_models=True,
                               random_models_cache=tmp_path_factory.mktemp("e2e_models"))
    try:
        srv.start()
        yield srv
    finally:
        srv.stop()
        assert srv.proc is None


def _prompt(path: Path) -> dict:
    return headless.rewrite_for_random_models(headless.load_api_workflow(path), steps=STEPS)[0]


def _first_run(server, path: Path) -> headless.RunResult:
    if path not in _FIRST_RUNS:
        _FIRST_RUNS[path] = server.run(_prompt(path), timeout=600)
    return _FIRST_RUNS[path]


def _files(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if p.is_file()}


def test_server_has_the_pack_and_serves_the_examples(server):
    info = server.object_info()
    for node_id in NODE_IDS:
        assert node_id in info, node_id
        assert info[node_id]["category"] == "layer_memory"
    templates = server.get("/workflow_templates")
    assert sorted(templates.get(headless.PACK_NAME, [])) == sorted(p.stem for p in UI_FILES), templates
    for ui in UI_FILES:
        r = requests.get(f"{server.url}/api/workflow_templates/{headless.PACK_NAME}/{ui.name}", timeout=30)
        assert r.status_code == 200
        assert r.json() == json.loads(ui.read_text(encoding="utf-8"))


@pytest.mark.parametrize("path", API_FILES, ids=_rel)
def test_workflow_runs_and_saves_its_images(server, path):
    prompt = _prompt(path)
    result = _first_run(server, path)
    assert result.ok, result.describe_error()
    assert set(result.executed) | set(result.cached) == set(prompt)
    assert not set(result.executed) & set(result.cached)
    saves = {nid: n["inputs"]["filename_prefix"] for nid, n in prompt.items() if n["class_type"] == "SaveImage"}
    assert saves, "the workflow saves no images"
    from PIL import Image

    for nid, prefix in saves.items():
        images = result.outputs.get(nid, {}).get("images", [])
        assert len(images) == 1, f"SaveImage {nid} reported {images}"
        file = server.output_dir / images[0]["subfolder"] / images[0]["filename"]
        assert file in result.images and file.is_file()
        assert str(file.relative_to(server.output_dir)).startswith(prefix)
        with Image.open(file) as im:
            assert im.size == (512, 512)


def append_layer(prompt: dict) -> tuple[dict, set[str]]:
    """The workflow plus one AddLayer on top of its last memory, with its mask, prompt, decode and save."""
    p = copy.deepcopy(prompt)
    makers = {nid for nid, n in p.items() if n["class_type"] in ("LayerMemory", "AddLayer", "DeleteLayer")}
    used = {n["inputs"]["memory"][0] for n in p.values() if isinstance(n["inputs"].get("memory"), list)}
    tops = sorted(makers - used)
    assert len(tops) == 1, f"expected one last memory, found {tops}"
    top = p[tops[0]]
    memory = next(n for n in p.values() if n["class_type"] == "LayerMemory")["inputs"]
    width, height = memory["width"], memory["height"]
    vae = next(n for n in p.values() if n["class_type"] == "VAEDecode")["inputs"]["vae"]
    # reuse the workflow's empty canvas: a new node with the same inputs would itself come from the cache
    canvas = next(n for n in p.values() if n["class_type"] == "MaskComposite")["inputs"]["destination"]
    box = (width // 4 + 8, height // 4 + 24)
    assert all((n["inputs"]["width"], n["inputs"]["height"]) != box for n in p.values() if n["class_type"] == "SolidMask")
    first = max(int(k) for k in p) + 100
    ids = [str(first + i) for i in range(6)]
    text, source, composite, layer, decode, save = ids
    p[text] = {"class_type": headless.TEST_ENCODER, "_meta": {"title": "Prompt: balloon"},
               "inputs": {"text": "a red hot-air balloon drifting low over the plain", "width": width, "height": height}}
    p[source] = {"class_type": "SolidMask", "inputs": {"value": 1.0, "width": box[0], "height": box[1]}}
    p[composite] = {"class_type": "MaskComposite", "inputs": {"destination": canvas, "source": [source, 0],
                                                              "x": width // 2, "y": height // 8, "operation": "add"}}
    p[layer] = {"class_type": "AddLayer", "_meta": {"title": "Add layer: balloon"},
                "inputs": {"memory": [tops[0], 0], "model": top["inputs"]["model"], "positive": [text, 0],
                           "mask": [composite, 0], "seed": 7, "use_mqd": True, "grow": 0, "feather": 0,
                           "unblended_fraction": 0.0, "name": "balloon"}}
    p[decode] = {"class_type": "VAEDecode", "inputs": {"samples": [layer, 1], "vae": vae}}
    p[save] = {"class_type": "SaveImage", "inputs": {"images": [decode, 0], "filename_prefix": "e2e_appended/balloon"}}
    return p, set(ids)


@pytest.mark.parametrize("path", API_FILES, ids=_rel)
def test_appended_layer_runs_only_the_new_nodes(server, path):
    prompt = _prompt(path)
    assert _first_run(server, path).ok
    before = _files(server.output_dir)

    again = server.run(prompt, timeout=600)
    assert again.ok, again.describe_error()
    assert again.executed == [], f"an unchanged workflow re-ran {again.executed}"
    assert set(again.cached) == set(prompt)
    assert _files(server.output_dir) == before, "a cached SaveImage wrote a file"

    bigger, new_ids = append_layer(prompt)
    result = server.run(bigger, timeout=600)
    assert result.ok, result.describe_error()
    # the server's own messages: websocket 'executing' events and the 'execution_cached' list in /history
    assert set(result.executed) == new_ids, \
        f"ran {sorted(result.executed, key=int)}, expected only the new nodes {sorted(new_ids, key=int)}"
    assert set(result.cached) == set(prompt)
    cached_messages = [m for m in result.messages if m[0] == "execution_cached"]
    assert len(cached_messages) == 1 and set(cached_messages[0][1]["nodes"]) == set(prompt)
    new_files = _files(server.output_dir) - before
    assert len(new_files) == 1 and next(iter(new_files)).name.startswith("balloon"), new_files
