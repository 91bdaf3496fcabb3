"""ComfyUI's real server runs every example workflow (random models), then re-uses its cache for
unchanged layers.

One server per module (tools/headless: `python main.py --cpu --base-directory <tmp>`), always
stopped by the fixture. Workflows are rewritten for the random test models: 512 px, few steps,
test text encoder.

The workflows run in build_workflows.RUN_ORDER, not in file-name order: continue_scene loads the
layer memory layered_scene saves. `workflow` is a module-scoped parametrized fixture, so pytest
runs every test of one workflow before the next workflow's (the cache check needs its workflow
to be the last one run: ComfyUI's classic cache drops the nodes of earlier prompts), and
`_first_run` runs a workflow's prerequisites first when a test asks for a later workflow alone
(e.g. `-k continue`).
"""
from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest
import requests

from tools import build_workflows, headless
from tools.pack_labels import labels

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.e2e

API_DIR = REPO / "workflows" / "api"
# the order they must run in
API_FILES = [API_DIR / f"{name}_api.json" for name in build_workflows.RUN_ORDER]
UI_FILES = sorted(p for p in (REPO / "workflows").glob("*.json")
                  if headless.is_ui_format(json.loads(p.read_text())))
# enough for every node to run its real code path; keeps the module well under 3 minutes on a CPU
STEPS = 2
NODE_IDS = ["LayerMem_LoadPixArt", "LayerMem_LayerMemory", "LayerMem_AddLayer",
            "LayerMem_BCGBlend", "LayerMem_DeleteLayer", "LayerMem_ListLayers",
            "LayerMem_SaveLayerMemory", "LayerMem_LoadLayerMemory", "LayerMem_PreviewLayers",
            "LayerMem_EditLayer",
            "LayerMem_LayerMemoryFromImage"]
# nodes whose output 0 is a memory
MEMORY_MAKERS = ("LayerMem_LayerMemory", "LayerMem_LoadLayerMemory", "LayerMem_AddLayer",
                 "LayerMem_DeleteLayer", "LayerMem_EditLayer",
                 "LayerMem_LayerMemoryFromImage")
_FIRST_RUNS: dict[Path, headless.RunResult] = {}
# the workflow the server ran last (as is): its nodes are in ComfyUI's cache
_LAST_RUN: list[Path] = []


def _rel(p: Path) -> str:
    return str(p.relative_to(REPO))


@pytest.fixture(scope="module")
def server(comfy_root, tmp_path_factory):
    srv = headless.ComfyServer(tmp_path_factory.mktemp("e2e_comfyui"), comfy_root=comfy_root,
                               random_models=True,
                               random_models_cache=tmp_path_factory.mktemp("e2e_models"))
    try:
        srv.start()
        yield srv
    finally:
        srv.stop()
        assert srv.proc is None


@pytest.fixture(scope="module", params=API_FILES, ids=_rel)
def workflow(request) -> Path:
    return request.param


def _prompt(path: Path) -> dict:
    return headless.rewrite_for_random_models(headless.load_api_workflow(path), steps=STEPS)[0]


def _nodes(prompt: dict, class_type: str) -> list[str]:
    return [nid for nid, n in prompt.items() if n["class_type"] == class_type]


def _saved_memory_file(prefix: str, counter: int = 1) -> str:
    """The name SaveLayerMemory returns for the counter-th save of `prefix` (LoadLayerMemory's
    combo value)."""
    return labels.output_name(f"{prefix}_{counter:05}_.safetensors")


def _inputs(prompt: dict, class_type: str, name: str) -> set:
    return {prompt[nid]["inputs"][name] for nid in _nodes(prompt, class_type)}


def prerequisites(path: Path) -> list[Path]:
    """The workflows before `path` in RUN_ORDER that save a memory `path` loads from the output
    folder."""
    loads = _inputs(headless.load_api_workflow(path), "LayerMem_LoadLayerMemory", "file")
    before = API_FILES[:API_FILES.index(path)]
    return [p for p in before
            if any(_saved_memory_file(prefix) in loads
                   for prefix in _inputs(headless.load_api_workflow(p), "LayerMem_SaveLayerMemory",
                                         "filename_prefix"))]


def _run(server, path: Path, prompt: dict) -> headless.RunResult:
    result = server.run(prompt, timeout=600)
    _LAST_RUN[:] = [path] if prompt == _prompt(path) else []
    return result


def _first_run(server, path: Path) -> headless.RunResult:
    if path not in _FIRST_RUNS:
        for before in prerequisites(path):
            assert _first_run(server, before).ok, \
                f"{_rel(before)}, which {_rel(path)} needs, failed"
        _FIRST_RUNS[path] = _run(server, path, _prompt(path))
    return _FIRST_RUNS[path]


def test_run_order_lists_every_workflow_after_what_it_loads():
    assert sorted(API_FILES) == sorted(API_DIR.rglob("*_api.json")), \
        "build_workflows.RUN_ORDER misses a workflow"
    for path in API_FILES:
        prompt = headless.load_api_workflow(path)
        for nid in _nodes(prompt, "LayerMem_LoadLayerMemory"):
            file = prompt[nid]["inputs"]["file"]
            if labels.is_output_name(file):
                assert prerequisites(path), \
                    f"{_rel(path)} loads {file!r}, which no earlier workflow in RUN_ORDER saves"


def _files(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if p.is_file()}


def test_server_has_the_pack_and_serves_the_examples(server):
    info = server.object_info()
    for node_id in NODE_IDS:
        assert node_id in info, node_id
        assert info[node_id]["category"] == "layer_memory"
    templates = server.get("/workflow_templates")
    assert sorted(templates.get(headless.PACK_NAME, [])) == sorted(p.stem for p in UI_FILES), \
        templates
    for ui in UI_FILES:
        r = requests.get(f"{server.url}/api/workflow_templates/{headless.PACK_NAME}/{ui.name}",
                         timeout=30)
        assert r.status_code == 200
        assert r.json() == json.loads(ui.read_text(encoding="utf-8"))


def test_workflow_runs_and_saves_its_images(server, workflow):
    path = workflow
    prompt = _prompt(path)
    result = _first_run(server, path)
    assert result.ok, result.describe_error()
    assert set(result.executed) | set(result.cached) == set(prompt)
    assert not set(result.executed) & set(result.cached)
    saves = {nid: prompt[nid]["inputs"]["filename_prefix"] for nid in _nodes(prompt, "SaveImage")}
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


def _top_memory(p: dict) -> str:
    """The node whose memory no other node takes: the workflow's last memory."""
    makers = {nid for nid, n in p.items() if n["class_type"] in MEMORY_MAKERS}
    used = {p[nid]["inputs"]["memory"][0] for nid in makers
            if isinstance(p[nid]["inputs"].get("memory"), list)}
    tops = sorted(makers - used)
    assert len(tops) == 1, f"expected one last memory, found {tops}"
    return tops[0]


def _first(p: dict, class_type: str) -> dict:
    return next(n for n in p.values() if n["class_type"] == class_type)["inputs"]


def append_layer(prompt: dict) -> tuple[dict, set[str]]:
    """The workflow plus one AddLayer on top of its last memory, with its mask, prompt, decode
    and save."""
    p = copy.deepcopy(prompt)
    top = _top_memory(p)
    # the scene's size: LayerMemory's, or (a loaded memory, a picture) the prompts'
    # the new prompt: a copy of an object's prompt node (the model family's test encoder)
    encoder = copy.deepcopy(p[_first(p, "LayerMem_AddLayer")["positive"][0]])
    memory = next((n["inputs"] for n in p.values() if n["class_type"] == "LayerMem_LayerMemory"),
                  encoder["inputs"])
    width, height = memory["width"], memory["height"]
    encoder["inputs"]["text"] = "a red hot-air balloon drifting low over the plain"
    encoder["_meta"] = {"title": "Prompt: balloon"}
    top_inputs = p[top]["inputs"]
    model = top_inputs["model"] if "model" in top_inputs else _first(p,
                                                                     "LayerMem_AddLayer")["model"]
    vae = _first(p, "VAEDecode")["vae"]
    box = (width // 4 + 8, height // 4 + 24)
    first = max(int(k) for k in p) + 100
    ids = [str(first + i) for i in range(5)]
    text, composite, layer, decode, save = ids
    p[text] = encoder
    p[composite] = {"class_type": "LayerMem_LayerMemoryBox",
                    "inputs": {"memory": [top, 0], "x": width // 2, "y": height // 8,
                               "width": box[0], "height": box[1]}}
    p[layer] = {"class_type": "LayerMem_AddLayer", "_meta": {"title": "Add layer: balloon"},
                "inputs": {"memory": [top, 0], "model": model, "positive": [text, 0],
                           "mask": [composite, 0], "seed": 7, "use_mqd": True, "grow": 0,
                           "feather": 0, "unblended_fraction": 0.0, "name": "balloon",
                           "position": -1}}
    p[decode] = {"class_type": "VAEDecode", "inputs": {"samples": [layer, 1], "vae": vae}}
    p[save] = {"class_type": "SaveImage",
               "inputs": {"images": [decode, 0], "filename_prefix": "e2e_appended/balloon"}}
    return p, set(ids)


def test_appended_layer_runs_only_the_new_nodes(server, workflow):
    path = workflow
    prompt = _prompt(path)
    assert _first_run(server, path).ok
    if _LAST_RUN != [path]:  # another workflow ran since: the cache holds not this one's nodes
        assert _run(server, path, prompt).ok
    before = _files(server.output_dir)

    again = _run(server, path, prompt)
    assert again.ok, again.describe_error()
    assert again.executed == [], f"an unchanged workflow re-ran {again.executed}"
    assert set(again.cached) == set(prompt)
    assert _files(server.output_dir) == before, "a cached SaveImage wrote a file"

    bigger, new_ids = append_layer(prompt)
    result = _run(server, path, bigger)
    assert result.ok, result.describe_error()
    # the server's own messages: websocket 'executing' events, 'execution_cached' in /history
    assert set(result.executed) == new_ids, (f"ran {sorted(result.executed, key=int)}, expected "
                                             f"only the new nodes {sorted(new_ids, key=int)}")
    assert set(result.cached) == set(prompt)
    cached_messages = [m for m in result.messages if m[0] == "execution_cached"]
    assert len(cached_messages) == 1 and set(cached_messages[0][1]["nodes"]) == set(prompt)
    new_files = _files(server.output_dir) - before
    assert len(new_files) == 1 and next(iter(new_files)).name.startswith("balloon"), new_files


def _image_of(server, result: headless.RunResult, save_id: str) -> Path:
    images = result.outputs.get(save_id, {}).get("images", [])
    assert len(images) == 1, f"SaveImage {save_id} reported {images}"
    return server.output_dir / images[0]["subfolder"] / images[0]["filename"]


def _saver_of(prompt: dict, source: str, output: int) -> str:
    """The SaveImage that decodes output `output` of node `source` (through one VAEDecode)."""
    decodes = [nid for nid in _nodes(prompt, "VAEDecode")
               if prompt[nid]["inputs"]["samples"] == [source, output]]
    saves = [nid for nid in _nodes(prompt, "SaveImage")
             if prompt[nid]["inputs"]["images"][0] in decodes]
    assert len(saves) == 1, (source, saves)
    return saves[0]


def _saved_layers(p1: dict, r1: headless.RunResult, p2: dict, server) -> int:
    """The first workflow saved the memory under the name the second loads; its layer count."""
    (save_memory,) = _nodes(p1, "LayerMem_SaveLayerMemory")
    (load,) = _nodes(p2, "LayerMem_LoadLayerMemory")
    file = p2[load]["inputs"]["file"]
    saved_text = r1.outputs[save_memory]["text"][0]
    relative = labels.output_path(file)
    assert saved_text.startswith(f"Saved {relative} in the output folder: "), saved_text
    assert (server.output_dir / relative).is_file()
    saved_layers = int(re.search(r": (\d+) layers", saved_text).group(1))
    assert saved_layers == 3, saved_text  # background, cheetah, lion: the leopard was deleted
    return saved_layers


def _same_picture(server, r1, p1: dict, r2, p2: dict) -> None:
    """The loaded scene is the first workflow's last picture (the memory it saved), pixel for
    pixel."""
    from PIL import Image

    (save,) = _nodes(p1, "LayerMem_SaveLayerMemory")
    last = p1[save]["inputs"]["memory"][0]
    (load,) = _nodes(p2, "LayerMem_LoadLayerMemory")
    with Image.open(_image_of(server, r1, _saver_of(p1, last, 1))) as a, \
            Image.open(_image_of(server, r2, _saver_of(p2, load, 1))) as b:
        assert a.size == b.size == (512, 512) and a.tobytes() == b.tobytes(), \
            "the loaded memory decodes differently"


def _new_layer_listed_and_saved(server, p1, r1, p2, r2, saved_layers: int) -> None:
    """ListLayers' table (ui text in /history), PreviewLayers' images (outlined + one per layer),
    and the new layer's image."""
    from PIL import Image

    (add,) = _nodes(p2, "LayerMem_AddLayer")
    (table,) = _nodes(p2, "LayerMem_ListLayers")
    rows = r2.outputs[table]["text"][0].splitlines()[2:]
    assert len(rows) == saved_layers + 1, rows
    assert [r.split(" | ")[1] for r in rows] == \
        ["background", "cheetah", "lion", p2[add]["inputs"]["name"]], rows
    (preview,) = _nodes(p2, "LayerMem_PreviewLayers")
    assert len(r2.outputs[preview]["images"]) == 1 + saved_layers + 1
    (preview1,) = _nodes(p1, "LayerMem_PreviewLayers")
    assert len(r1.outputs[preview1]["images"]) == 1 + saved_layers

    saver = _saver_of(p2, add, 1)
    new_image = _image_of(server, r2, saver)
    assert new_image in r2.images and new_image.is_file()
    assert str(new_image.relative_to(server.output_dir)).startswith(
        p2[saver]["inputs"]["filename_prefix"])
    (load,) = _nodes(p2, "LayerMem_LoadLayerMemory")
    with Image.open(new_image) as im, \
            Image.open(_image_of(server, r2, _saver_of(p2, load, 1))) as loaded:
        assert im.size == (512, 512) and im.tobytes() != loaded.tobytes(), \
            "the new layer changed nothing"


def test_second_workflow_continues_the_scene_the_first_saved(server):
    """continue_scene loads the file layered_scene's SaveLayerMemory wrote, adds one layer and
    saves its image."""
    first, second = API_DIR / "layered_scene_api.json", API_DIR / "continue_scene_api.json"
    assert API_FILES.index(first) < API_FILES.index(second) and prerequisites(second) == [first]
    p1, p2 = _prompt(first), _prompt(second)
    r1 = _first_run(server, first)
    r2 = _first_run(server, second)
    assert r1.ok, r1.describe_error()
    assert r2.ok, r2.describe_error()
    saved_layers = _saved_layers(p1, r1, p2, server)
    (load,) = _nodes(p2, "LayerMem_LoadLayerMemory")
    assert load in r2.executed, "LoadLayerMemory did not run"
    _same_picture(server, r1, p1, r2, p2)
    _new_layer_listed_and_saved(server, p1, r1, p2, r2, saved_layers)


def _box_of(prompt: dict, layer: str) -> tuple[int, int, int, int]:
    """The pixel box of a layer's mask: the x, y, width, height of its Layer Box."""
    box = prompt[prompt[layer]["inputs"]["mask"][0]]
    assert box["class_type"] == "LayerMem_LayerMemoryBox", box
    b = box["inputs"]
    return b["x"], b["y"], b["x"] + b["width"], b["y"] + b["height"]


# The random TAESD decoder sees about 8 latent pixels (64 px) around a changed latent (measured: a
# 128x256 box changed the image up to 65 px outside it); farther pixels decode unchanged latents.
DECODER_REACH_PX = 80


def test_picture_survives_outside_the_mask(server):
    """edit_picture: outside the giraffe's (then elephant's) box the last image is the first one
    (the picture after LayerMemoryFromImage), up to the decoder's reach; inside it changed, and the
    re-prompt changed it again."""
    import numpy as np
    from PIL import Image

    path = API_DIR / "edit_picture_api.json"
    p = _prompt(path)
    result = _first_run(server, path)
    assert result.ok, result.describe_error()
    (start,) = _nodes(p, "LayerMem_LayerMemoryFromImage")
    (add,) = _nodes(p, "LayerMem_AddLayer")
    (edit,) = _nodes(p, "LayerMem_EditLayer")
    assert "mask" not in p[edit]["inputs"], "the re-prompt keeps the layer's mask"
    (load,) = _nodes(p, "LoadImage")
    assert (server.base / "input" / p[load]["inputs"]["image"]).is_file()
    pictures = []
    for node in (start, add, edit):
        with Image.open(_image_of(server, result, _saver_of(p, node, 1))) as im:
            pictures.append(np.asarray(im.convert("RGB"), dtype=np.float32))
    first, added, last = pictures
    x0, y0, x1, y1 = _box_of(p, add)
    inside = np.zeros(first.shape[:2], dtype=bool)
    inside[y0:y1, x0:x1] = True
    far = np.ones_like(inside)
    far[max(0, y0 - DECODER_REACH_PX):y1 + DECODER_REACH_PX,
        max(0, x0 - DECODER_REACH_PX):x1 + DECODER_REACH_PX] = False
    assert far.mean() > 0.3
    assert np.abs(last - first)[far].max() <= 2.0, "the picture changed outside the mask"
    assert np.abs(added - first)[inside].mean() > 1.0, "Add Layer changed nothing in its box"
    assert np.abs(last - added)[inside].mean() > 1.0, "the re-prompt changed nothing in the box"


def test_sdxl_workflow_ran_on_the_sdxl_stand_in(server):
    """The SDXL example ran through the test SDXL loader and encoder (not a PixArt model), every
    edit step included."""
    path = API_DIR / "sdxl_layered_scene_api.json"
    p = _prompt(path)
    assert {n["class_type"] for n in p.values()} >= {
        "LayerMemTestSDXLLoader", "LayerMemTestEncodeSDXL", "LayerMem_EditLayer",
        "LayerMem_DeleteLayer"}
    assert not _nodes(p, "LayerMem_LoadPixArt") and not _nodes(p, headless.TEST_ENCODER)
    result = _first_run(server, path)
    assert result.ok, result.describe_error()
    assert set(_nodes(p, "LayerMem_EditLayer")) <= set(result.executed)


def test_flux_workflow_ran_on_the_flux_stand_in(server):
    """The FLUX.1-dev example ran through the test FLUX loader and encoder, the stock FluxGuidance
    and VAELoader's TAEF1 (no PixArt or UNet stand-in), every edit step included, and its
    memory says FLUX."""
    path = API_DIR / "flux_layered_scene_api.json"
    p = _prompt(path)
    assert {n["class_type"] for n in p.values()} >= {
        "LayerMemTestFluxLoader", "LayerMemTestFluxCLIPLoader", "LayerMemTestEncodeFlux",
        "FluxGuidance", "LayerMem_EditLayer", "LayerMem_DeleteLayer"}
    assert _inputs(p, "VAELoader", "vae_name") == {"taef1"}
    assert not _nodes(p, "LayerMem_LoadPixArt") and not _nodes(p, headless.TEST_ENCODER)
    assert not _nodes(p, "CheckpointLoaderSimple")
    result = _first_run(server, path)
    assert result.ok, result.describe_error()
    assert set(_nodes(p, "LayerMem_EditLayer")) <= set(result.executed)
    table = result.outputs[_nodes(p, "LayerMem_ListLayers")[0]]
    assert "model flux" in json.dumps(table), table


def test_sd35_workflow_ran_on_the_sd35_stand_in(server):
    """The SD3.5 Large example ran through the test SD3.5 loader (its VAE VAELoader's TAESD3),
    CLIP loader and encoder (no PixArt, SD 1.5 or SDXL stand-in), every edit step included, and
    its memory says SD3.5."""
    path = API_DIR / "sd35_layered_scene_api.json"
    p = _prompt(path)
    assert {n["class_type"] for n in p.values()} >= {
        "LayerMemTestSD3Loader", "LayerMemTestSD3CLIPLoader", "LayerMemTestEncodeSD3",
        "LayerMem_EditLayer", "LayerMem_DeleteLayer"}
    assert not _nodes(p, "LayerMem_LoadPixArt") and not _nodes(p, headless.TEST_ENCODER)
    assert not _nodes(p, "CheckpointLoaderSimple") and not _nodes(p, "TripleCLIPLoader")
    assert not _nodes(p, "CLIPTextEncode") and not _nodes(p, "LayerMemTestSD15Loader")
    result = _first_run(server, path)
    assert result.ok, result.describe_error()
    assert set(_nodes(p, "LayerMem_EditLayer")) <= set(result.executed)
    table = result.outputs[_nodes(p, "LayerMem_ListLayers")[0]]
    assert "model sd3.5" in json.dumps(table), table


def _file_choices(server) -> list[str]:
    info = server.object_info("LayerMem_LoadLayerMemory")["LayerMem_LoadLayerMemory"]
    spec = info["input"]["required"]["file"]
    return spec[1]["options"] if spec[0] == "COMBO" else spec[0]


def test_memory_files_sent_through_upload_image(server):
    """ComfyUI's /upload/image writes any file into the input folder: an uploaded memory is
    listed and loads; an uploaded file that only carries the name is refused with the reason."""
    layered = API_DIR / "layered_scene_api.json"
    assert _first_run(server, layered).ok
    prefix = next(iter(_inputs(_prompt(layered), "LayerMem_SaveLayerMemory", "filename_prefix")))
    saved = (server.output_dir / f"{prefix}_00001_.safetensors").read_bytes()
    for name, data in (("scene.safetensors", saved),
                       ("fake.safetensors", b"not a layer memory at all " * 40)):
        r = requests.post(f"{server.url}/upload/image", timeout=30,
                          files={"image": (name, data, "application/octet-stream")},
                          data={"subfolder": "uploads", "type": "input", "overwrite": "true"})
        assert r.status_code == 200, r.text
    choices = _file_choices(server)
    assert {"uploads/scene.safetensors", "uploads/fake.safetensors"} <= set(choices), choices

    def load_and_list(file: str) -> headless.RunResult:
        _LAST_RUN[:] = []  # the cache now holds these nodes, not a workflow's
        return server.run({"1": {"class_type": "LayerMem_LoadLayerMemory",
                                 "inputs": {"file": file}},
                           "2": {"class_type": "LayerMem_ListLayers", "inputs": {"memory": ["1",
                                                                                            0]}}},
                          timeout=120)

    good = load_and_list("uploads/scene.safetensors")
    assert good.ok, good.describe_error()
    table = "".join(good.outputs["2"]["text"])
    assert table.count("\n") >= 3 and "background" in table, table
    bad = load_and_list("uploads/fake.safetensors")
    assert not bad.ok
    text = bad.describe_error()
    assert "fake.safetensors" in text and "not a safetensors file" in text, text
    assert "not a layer memory at all" not in text, "the message quotes the file's bytes"
