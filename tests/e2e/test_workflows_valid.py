"""Every workflow in workflows/ is a valid graph for ComfyUI and this pack, and its UI and API
versions agree.

Node definitions come from the real ComfyUI booted in-process (`host` fixture: ComfyUI's nodes,
comfy_extras and this pack), so a renamed input, a changed type or a new required input in the pack
breaks these tests instead of the user's canvas.
"""
from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest

from tools import build_workflows, headless

REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.e2e, pytest.mark.host]

WORKFLOW_DIR = REPO / "workflows"
FRONTEND_ONLY = {"Note", "MarkdownNote", "Reroute", "PrimitiveNode"}  # exist only in the browser
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
MODEL_FILE_INPUTS = {"unet_name", "text_encoder", "vae_name", "ckpt_name", "clip_name", "lora_name",
                     "control_net_name", "clip_name1", "clip_name2", "clip_name3"}
MODEL_SUFFIXES = (".safetensors", ".sft", ".pth", ".pt", ".ckpt", ".bin", ".gguf")
CONTROL_VALUES = {"fixed", "increment", "decrement", "randomize"}
OUTPUT_TAG = " [output]"  # LoadLayerMemory's mark for a file in the output folder
EXAMPLE_INPUTS = REPO / "example_inputs"  # pictures LoadImage nodes of the examples open


def _load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


ALL_FILES = sorted(WORKFLOW_DIR.rglob("*.json"))
UI_FILES = [p for p in ALL_FILES if headless.is_ui_format(_load(p))]
API_FILES = [p for p in ALL_FILES if p not in UI_FILES]


def _rel(p: Path) -> str:
    return str(p.relative_to(REPO))


def workflow_name(ui_path: Path) -> str:
    """A template's workflow name: its file name less the run-order prefix ("1_layered_scene")."""
    return re.sub(r"^\d+_", "", ui_path.stem)


def api_twin(ui_path: Path) -> Path:
    return ui_path.parent / "api" / f"{workflow_name(ui_path)}_api.json"


# ------------------------------------------------------------ node definitions
class Spec:
    """One node type as the server describes it (/object_info): ordered inputs, output types."""

    def __init__(self, host, class_type: str):
        cls = host.nodes.NODE_CLASS_MAPPINGS[class_type]
        info = cls.INPUT_TYPES()
        self.class_type = class_type
        self.inputs: dict[str, tuple] = {}  # name -> (type, options, required)
        for group, required in (("required", True), ("optional", False)):
            for name, spec in (info.get(group) or {}).items():
                self.inputs[name] = (spec[0],
                                     spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {},
                                     required)
        self.outputs = list(cls.RETURN_TYPES)
        self.output_names = list(getattr(cls, "RETURN_NAMES", None) or cls.RETURN_TYPES)

    @staticmethod
    def kind(typ) -> str:
        return "COMBO" if isinstance(typ, list) else typ

    def is_widget(self, name: str) -> bool:
        typ, opts, _ = self.inputs[name]
        return self.kind(typ) in WIDGET_TYPES and not opts.get("forceInput")

    def has_upload(self, name: str) -> bool:
        """LoadImage's picture combo: the frontend adds an upload widget whose value it saves."""
        return bool(self.inputs[name][1].get("image_upload"))

    def has_control(self, name: str) -> bool:
        """The frontend's rule: INT inputs get a 'control after generate' widget when asked or
        named seed/noise_seed."""
        typ, opts, _ = self.inputs[name]
        flag = opts.get("control_after_generate")
        if self.kind(typ) == "INT":
            return bool(flag) if flag is not None else name in ("seed", "noise_seed")
        return self.kind(typ) == "COMBO" and bool(flag)

    @property
    def sockets(self) -> list[str]:
        return [n for n in self.inputs if not self.is_widget(n)]

    @property
    def widgets(self) -> list[str]:
        return [n for n in self.inputs if self.is_widget(n)]

    def options(self, name: str) -> list:
        typ, opts, _ = self.inputs[name]
        return typ if isinstance(typ, list) else list(opts.get("options", []))

    def check_value(self, name: str, value) -> str | None:
        """Why `value` is not acceptable for widget `name`, or None."""
        typ, opts, _ = self.inputs[name]
        kind = self.kind(typ)
        if kind == "COMBO":
            if name in MODEL_FILE_INPUTS and isinstance(value, str) and (
                    value.endswith(MODEL_SUFFIXES) or value in self.options(name)):
                return None  # a model file the user downloads; this host has other files
            return (None if value in self.options(name)
                    else f"{value!r} is not one of {self.options(name)[:12]}")
        if kind == "INT" and not (isinstance(value, int) and not isinstance(value, bool)):
            return f"{value!r} is not an INT"
        if kind == "FLOAT" and not (isinstance(value, (int, float))
                                    and not isinstance(value, bool)):
            return f"{value!r} is not a FLOAT"
        if kind == "BOOLEAN" and not isinstance(value, bool):
            return f"{value!r} is not a BOOLEAN"
        if kind == "STRING" and not isinstance(value, str):
            return f"{value!r} is not a STRING"
        if kind in ("INT", "FLOAT"):
            if "min" in opts and value < opts["min"]:
                return f"{value} < min {opts['min']}"
            if "max" in opts and value > opts["max"]:
                return f"{value} > max {opts['max']}"
        return None


def types_match(out_type: str, in_type) -> bool:
    """ComfyUI's rule: equal, '*' on either side, or overlapping comma-separated unions; a combo
    takes COMBO."""
    in_type = Spec.kind(in_type)
    if out_type == "*" or in_type == "*":
        return True
    return bool(set(out_type.split(",")) & set(in_type.split(",")))


def _loaded_files(prompt: dict) -> set[str]:
    """LoadLayerMemory files a workflow takes from the output folder (what an earlier workflow
    saved)."""
    return {n["inputs"]["file"] for n in prompt.values()
            if n["class_type"] == "LayerMem_LoadLayerMemory"
            and str(n["inputs"].get("file", "")).endswith(OUTPUT_TAG)}


@pytest.fixture(scope="module")
def saved_memories(host, models) -> set[str]:
    """The memory files the workflows load from the output folder, really saved there first.

    continue_scene loads the file layered_scene's SaveLayerMemory writes, which exists only after
    that workflow ran. Here a small real memory (random PixArt-alpha 512, 2 steps) is saved in the
    host's output folder by the SaveLayerMemory node with the prefix the file name implies, and the
    name the node returns must be the workflow's: the validations below then check the workflows as
    ComfyUI sees them after the first workflow ran, LoadLayerMemory's own validate_inputs (the file
    exists) included."""
    from tools import scenes

    save = host.nodes.NODE_CLASS_MAPPINGS["LayerMem_SaveLayerMemory"]
    output = Path(host.folder_paths.get_output_directory())
    wanted = set().union(*(_loaded_files(headless.load_api_workflow(p)) for p in API_FILES))
    memory = None
    for file in sorted(wanted):
        found = re.fullmatch(r"(.+)_(\d{5})_\.safetensors" + re.escape(OUTPUT_TAG), file)
        assert found, (f"{file!r} is not a name SaveLayerMemory writes "
                       "(<prefix>_<counter>_.safetensors [output])")
        if (output / file.removesuffix(OUTPUT_TAG)).is_file():
            continue
        if memory is None:
            memory = host.layer_ops.start_memory(models("pixart_alpha_512"), scenes.cond(1),
                                                 scenes.negative(), 512, 512, seed=1, steps=2,
                                                 cfg=4.5, sampler_name="dpmpp_2m",
                                                 scheduler="karras")
        name = save.execute(memory, found.group(1), "float32 (exact)").result[0]
        assert name == file, f"SaveLayerMemory named the file {name!r}; the workflow loads {file!r}"
    return wanted


@pytest.fixture(scope="module")
def example_inputs(host) -> set[str]:
    """The pictures the workflows load (example_inputs/), in the host's input folder as a user
    (or the headless server) puts them there."""
    import shutil

    folder = Path(host.folder_paths.get_input_directory())
    folder.mkdir(parents=True, exist_ok=True)
    for picture in EXAMPLE_INPUTS.glob("*.*"):
        shutil.copyfile(picture, folder / picture.name)
    return {p.name for p in EXAMPLE_INPUTS.glob("*.*")}


@pytest.fixture(scope="module")
def specs(host, saved_memories, example_inputs):
    """Node specs, read after the memories the workflows load are saved (LoadLayerMemory lists the
    files)."""
    cache: dict[str, Spec] = {}

    def get(class_type: str) -> Spec:
        assert class_type in host.nodes.NODE_CLASS_MAPPINGS, \
            f"node type {class_type} is neither in ComfyUI nor in this pack"
        if class_type not in cache:
            cache[class_type] = Spec(host, class_type)
        return cache[class_type]

    return get


@pytest.fixture(scope="module")
def host_with_test_nodes(host):
    """The host plus tests/support/test_nodes (LayerMemTestEncode), for the random-model version of
    each workflow."""
    if headless.TEST_ENCODER not in host.nodes.NODE_CLASS_MAPPINGS:
        ok = asyncio.run(host.nodes.load_custom_node(str(headless.TEST_NODES_DIR),
                                                     module_parent="custom_nodes"))
        assert ok, "tests/support/test_nodes failed to load"
    return host


# ------------------------------------------------------------ files and folders
def test_every_workflow_has_both_formats():
    assert UI_FILES and API_FILES, f"no workflows found in {WORKFLOW_DIR}"
    for ui in UI_FILES:
        assert api_twin(ui).exists(), f"{_rel(ui)} has no API-format twin {_rel(api_twin(ui))}"
    twins = {api_twin(ui) for ui in UI_FILES}
    for api in API_FILES:
        assert api in twins, f"{_rel(api)} has no UI-format twin (expected workflows/<name>.json)"


def test_comfyui_serves_ui_files_only(comfy_root):
    """ComfyUI lists every *.json directly inside these pack folders as a template and opens it as
    a UI graph."""
    source = (comfy_root / "app" / "custom_node_manager.py").read_text(encoding="utf-8")
    found = re.search(r"example_workflow_folder_names\s*=\s*\[([^\]]*)\]", source)
    assert found, "ComfyUI's template folder list moved; re-check how packs serve example workflows"
    served = set(re.findall(r"[\"']([^\"']+)[\"']", found.group(1)))
    assert "workflows" in served, ("ComfyUI no longer serves a pack's workflows/ folder "
                                   f"(serves {sorted(served)})")
    for ui in UI_FILES:
        assert ui.parent == WORKFLOW_DIR, (f"{_rel(ui)} is not directly in workflows/, "
                                           "ComfyUI would not list it")
    for api in API_FILES:
        assert api.parent.name not in served or api.parent.parent != REPO, \
            (f"{_rel(api)} would be listed as a template, "
             "and the frontend cannot open the API format")


def test_templates_sort_in_run_order():
    """continue_scene needs what layered_scene saves: the template names say the order."""
    names = [workflow_name(p) for p in sorted(UI_FILES, key=lambda p: p.name)]
    assert names == list(build_workflows.RUN_ORDER)
    assert [p.stem for p in sorted(UI_FILES)] == [build_workflows.UI_NAMES[n] for n in names]


def test_templates_have_thumbnails():
    """The template browser asks for <name>.jpg beside each template (grey placeholder
    otherwise)."""
    for ui in UI_FILES:
        thumb = ui.with_suffix(".jpg")
        assert thumb.is_file(), (f"{_rel(thumb)} missing: "
                                 "run python3 -m tools.screenshots (see its header)")
        assert thumb.read_bytes()[:3] == b"\xff\xd8\xff" and thumb.stat().st_size < 200_000


def test_node_table_matches_the_node_schemas(host, specs):
    """tools/workflow_nodes.py copies the node schemas so that the workflows build without ComfyUI:
    every socket, widget, output and display name there must be the real node's."""
    from tools.workflow_nodes import NODE_DEFS

    problems = []
    for class_type, d in NODE_DEFS.items():
        spec = specs(class_type)
        sockets = [(n, Spec.kind(spec.inputs[n][0]), not spec.inputs[n][2]) for n in spec.sockets]
        widgets = [(n, Spec.kind(spec.inputs[n][0]), not spec.inputs[n][2], spec.has_control(n))
                   for n in spec.widgets]
        outputs = list(zip(spec.output_names, spec.outputs, strict=True))
        cls = host.nodes.NODE_CLASS_MAPPINGS[class_type]
        display = host.nodes.NODE_DISPLAY_NAME_MAPPINGS.get(class_type) \
            or getattr(cls, "DISPLAY_NAME", None) or class_type
        for what, mine, real in (("sockets", list(d.sockets), sockets),
                                 ("widgets", list(d.widgets), widgets),
                                 ("outputs", list(d.outputs), outputs),
                                 ("display", d.display, display)):
            if mine != real:
                problems.append(f"{class_type} {what}: {mine} in workflow_nodes.py, "
                                f"{real} in ComfyUI")
    assert not problems, "\n".join(problems)


def test_generator_reproduces_the_files():
    assert build_workflows.main(["--check"]) == 0, ("run python3 -m tools.build_workflows "
                                                    "and commit the result")


# ------------------------------------------------------------ UI format
@pytest.mark.parametrize("path", UI_FILES, ids=_rel)
def test_ui_workflow_is_valid(path, specs):
    wf = _load(path)
    assert wf.get("version") == 0.4
    nodes = {n["id"]: n for n in wf["nodes"]}
    assert len(nodes) == len(wf["nodes"]), "duplicate node ids"
    assert wf["last_node_id"] >= max(nodes)
    links = {ln[0]: ln for ln in wf["links"]}
    assert len(links) == len(wf["links"]), "duplicate link ids"
    assert not links or wf["last_link_id"] >= max(links)
    problems = []
    for node in wf["nodes"]:
        where = f"node {node['id']} ({node['type']})"
        if node["type"] in FRONTEND_ONLY:
            continue
        spec = specs(node["type"])
        # sockets first, then one socket per widget, in the node's input order
        # (how the frontend saves)
        names = [i["name"] for i in node.get("inputs", [])]
        if names != spec.sockets + spec.widgets:
            problems.append(f"{where}: inputs {names} != {spec.sockets + spec.widgets}")
        for slot in node.get("inputs", []):
            if slot["name"] in spec.inputs and spec.is_widget(slot["name"]) != ("widget" in slot):
                problems.append(f"{where}: input {slot['name']} widget flag is wrong")
        outputs = [(o["name"], o["type"]) for o in node.get("outputs", [])]
        if outputs != list(zip(spec.output_names, spec.outputs, strict=False)):
            problems.append(f"{where}: outputs {outputs} != "
                            f"{list(zip(spec.output_names, spec.outputs, strict=False))}")
        # widget values in widget order, with the control value right after a seed
        values = list(node.get("widgets_values", []))
        expected = sum(1 + spec.has_control(w) + spec.has_upload(w) for w in spec.widgets)
        if len(values) != expected:
            problems.append(f"{where}: {len(values)} widget values, "
                            f"the node has {expected} widgets")
            continue
        it = iter(values)
        for w in spec.widgets:
            why = spec.check_value(w, next(it))
            if why:
                problems.append(f"{where}: {w}: {why}")
            if spec.has_control(w) and (control := next(it)) not in CONTROL_VALUES:
                problems.append(f"{where}: control value {control!r} after {w}")
        if any(spec.has_upload(w) for w in spec.widgets) and values[-1] != "image":
            problems.append(f"{where}: the upload widget's value is {values[-1]!r}, not 'image'")
        # every required socket is linked
        linked = {i["name"] for i in node.get("inputs", []) if i.get("link") is not None}
        for name in spec.sockets:
            if spec.inputs[name][2] and name not in linked:
                problems.append(f"{where}: required input {name} is not connected")
    for link_id, origin, o_slot, target, t_slot, typ in wf["links"]:
        where = f"link {link_id} ({origin}:{o_slot} -> {target}:{t_slot})"
        if origin not in nodes or target not in nodes:
            problems.append(f"{where}: unknown node")
            continue
        src, dst = nodes[origin], nodes[target]
        out_types = specs(src["type"]).outputs
        if o_slot >= len(out_types) or t_slot >= len(dst["inputs"]):
            problems.append(f"{where}: slot out of range")
            continue
        slot = dst["inputs"][t_slot]
        in_type = specs(dst["type"]).inputs[slot["name"]][0]
        if typ != out_types[o_slot]:
            problems.append(f"{where}: link type {typ} != output type {out_types[o_slot]}")
        if not types_match(out_types[o_slot], in_type):
            problems.append(f"{where}: {out_types[o_slot]} into {dst['type']}.{slot['name']} "
                            f"({Spec.kind(in_type)})")
        if slot.get("link") != link_id:
            problems.append(f"{where}: target input does not point back to the link")
        if link_id not in (src["outputs"][o_slot].get("links") or []):
            problems.append(f"{where}: origin output does not list the link")
    for node in wf["nodes"]:  # no dangling references from slots
        for i, slot in enumerate(node.get("inputs", [])):
            if (slot.get("link") is not None
                    and links.get(slot["link"], [None] * 5)[3:5] != [node["id"], i]):
                problems.append(f"node {node['id']} input {slot['name']} "
                                f"points at a missing link {slot['link']}")
        for o, slot in enumerate(node.get("outputs", [])):
            for link_id in slot.get("links") or []:
                if links.get(link_id, [None] * 3)[1:3] != [node["id"], o]:
                    problems.append(f"node {node['id']} output {o} lists a missing link {link_id}")
    assert not problems, "\n".join(problems)


def _num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


@pytest.mark.parametrize("path", UI_FILES, ids=_rel)
def test_ui_workflow_matches_the_frontend_schema(path):
    """The required parts of the frontend's zod schema for version 0.4 (zComfyWorkflow,
    comfyui-frontend-package 1.27)."""
    wf = _load(path)
    uuid_re = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}"
                         r"-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
    assert "id" not in wf or uuid_re.match(wf["id"])
    assert (isinstance(wf["last_node_id"], (int, str)) and _num(wf["last_link_id"])
            and _num(wf["version"]))
    for node in wf["nodes"]:
        for key in ("id", "type", "pos", "size", "flags", "order", "mode", "properties"):
            assert key in node, f"node {node.get('id')} lacks {key}"
        assert all(len(node[k]) == 2 and all(map(_num, node[k]))
                   for k in ("pos", "size")), node["id"]
        for slot in node.get("inputs", []):
            assert isinstance(slot["name"], str) and isinstance(slot["type"], str)
            assert slot.get("link") is None or _num(slot["link"])
        for slot in node.get("outputs", []):
            assert isinstance(slot["name"], str) and isinstance(slot["type"], str)
            assert slot.get("links") is None or all(map(_num, slot["links"]))
        assert isinstance(node.get("widgets_values", []), (list, dict))
        for model in node["properties"].get("models", []):
            assert ({"name", "url", "directory"} <= set(model)
                    and model["url"].startswith("https://huggingface.co/"))
            assert model["name"].endswith((".safetensors", ".sft")), \
                "the frontend only offers these for download"
    for link in wf["links"]:
        assert (len(link) == 6 and all(map(_num, (link[0], link[2], link[4])))
                and isinstance(link[5], str))
    for group in wf.get("groups", []):
        assert (isinstance(group["title"], str) and len(group["bounding"]) == 4
                and all(map(_num, group["bounding"])))
    ds = wf.get("extra", {}).get("ds")
    assert ds is None or (_num(ds["scale"]) and len(ds["offset"]) == 2)
    # opens with titles, widgets and notes drawn: frontend 1.27 switches to low detail below
    # MinFontSizeForLOD (default 8 px) / NODE_TEXT_SIZE (14 px) = 0.571
    assert ds and ds["scale"] >= 8 / 14, (f"opens at zoom {ds and ds['scale']}, "
                                          "below the low-detail threshold")
    # the Missing Models dialog can offer every model file the graph names
    for node in wf["nodes"]:
        offered = {m["name"] for m in node["properties"].get("models", [])}
        for value in node.get("widgets_values") or []:
            if isinstance(value, str) and value.endswith(MODEL_SUFFIXES):
                assert value in offered, (f"node {node['id']}: {value} "
                                          "has no download URL in properties.models")


@pytest.mark.parametrize("path", UI_FILES, ids=_rel)
def test_ui_workflow_explains_itself(path):
    """Notes on the canvas say where each model file goes and explain every layer step."""
    wf = _load(path)
    notes = [n["widgets_values"][0] for n in wf["nodes"] if n["type"] in ("Note", "MarkdownNote")]
    text = "\n".join(notes)
    for node in wf["nodes"]:
        if node["type"] == "LayerMem_LoadPixArt":
            for value in node["widgets_values"]:
                if isinstance(value, str) and value.endswith(MODEL_SUFFIXES):
                    assert value in text, f"no note tells where {value} goes"
    for folder in ("diffusion_models", "text_encoders", "vae"):
        assert f"{folder}/" in text
    displays = {"LayerMem_LayerMemory": "Layer Memory", "LayerMem_AddLayer": "Add Layer",
                "LayerMem_DeleteLayer": "Delete Layer",
                "LayerMem_SaveLayerMemory": "Save Layer Memory",
                "LayerMem_LoadLayerMemory": "Load Layer Memory",
                "LayerMem_PreviewLayers": "Preview Layers", "LayerMem_ListLayers": "List Layers"}
    for step in sorted({n["type"] for n in wf["nodes"]} & set(displays)):
        assert displays[step] in text, f"no note explains {displays[step]}"
    for node in wf["nodes"]:
        if (node["type"] == "LayerMem_LoadLayerMemory"
                and node["widgets_values"][0].endswith(OUTPUT_TAG)):
            # a file another workflow saved: say which one, and where a received file goes
            assert node["widgets_values"][0] in text
            saved_by = [w for w in build_workflows.RUN_ORDER
                        if w != workflow_name(path) and f"**{w}**" in text]
            assert saved_by, "no note names the workflow that saves the file this one loads"
            assert "`ComfyUI/input/`" in text, \
                "no note says where to put a memory file from someone else"
        # the example picture: which one, where it is, where it goes
        if node["type"] == "LoadImage":
            picture = node["widgets_values"][0]
            assert (EXAMPLE_INPUTS / picture).is_file(), f"{picture} is not in example_inputs/"
            assert picture in text and "example_inputs/" in text and "`ComfyUI/input/`" in text


def _memory_source(wf: dict, node: dict) -> tuple[int, int] | None:
    """The (node id, output slot) that feeds a node's `memory` input in a UI workflow."""
    link_id = next((i.get("link") for i in node.get("inputs", []) if i["name"] == "memory"), None)
    link = next((k for k in wf["links"] if k[0] == link_id), None)
    return None if link is None else (link[1], link[2])


@pytest.mark.parametrize("path", UI_FILES, ids=_rel)
def test_ui_workflow_shows_which_layer_is_which(path):
    """Issue 26: indices shift after a delete, so a graph that deletes, rerolls, re-prompts or
    moves shows the layer table of the memory it edits, names layers by name, and no node title
    names an index that a later edit makes stale (0, the background, never moves)."""
    wf = _load(path)
    edits = [n for n in wf["nodes"] if n["type"] in ("LayerMem_DeleteLayer", "LayerMem_EditLayer")]
    tables = {_memory_source(wf, n) for n in wf["nodes"] if n["type"] == "LayerMem_ListLayers"}
    if edits:
        assert tables, "a workflow that edits layers has no List Layers"
    for node in edits:
        layer = node["widgets_values"][0]
        assert not str(layer).strip().isdigit(), \
            f"node {node['id']} ({node.get('title')}) picks layer {layer!r} by index, not by name"
    deletes = [n for n in edits if n["type"] == "LayerMem_DeleteLayer"]
    for node in deletes:
        assert _memory_source(wf, node) in tables, \
            f"no List Layers shows the memory that {node.get('title')!r} deletes from"
    for node in wf["nodes"]:
        title = node.get("title") or ""
        assert not re.search(r"\blayers?\s*[1-9]", title, re.IGNORECASE), \
            f"node {node['id']}'s title {title!r} names a layer index"


# ------------------------------------------------------------ API format
@pytest.mark.parametrize("path", API_FILES, ids=_rel)
def test_api_workflow_is_valid(path, specs):
    prompt = headless.load_api_workflow(path)
    problems = []
    for nid, node in prompt.items():
        spec = specs(node["class_type"])
        where = f"node {nid} ({node['class_type']})"
        for name, value in node["inputs"].items():
            if name not in spec.inputs:
                problems.append(f"{where}: unknown input {name}")
                continue
            if isinstance(value, list):
                src_id, slot = value
                if src_id not in prompt:
                    problems.append(f"{where}: {name} links to missing node {src_id}")
                    continue
                out_types = specs(prompt[src_id]["class_type"]).outputs
                if slot >= len(out_types) or not types_match(out_types[slot], spec.inputs[name][0]):
                    problems.append(f"{where}: {name} gets output {slot} of node {src_id}, "
                                    "wrong type")
            elif not spec.is_widget(name):
                problems.append(f"{where}: {name} needs a link, got {value!r}")
            elif why := spec.check_value(name, value):
                problems.append(f"{where}: {name}: {why}")
        for name, (_typ, _opts, required) in spec.inputs.items():
            if required and name not in node["inputs"]:
                problems.append(f"{where}: required input {name} missing")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", API_FILES, ids=_rel)
def test_comfyui_validation_accepts_api_workflow(path, host_with_test_nodes, saved_memories,
                                                 example_inputs):
    """ComfyUI's own /prompt validation, as is (model files may be missing here) and rewritten for
    the test models.

    A memory loaded from the output folder exists (`saved_memories`), as after the workflow that
    saves it ran."""
    import execution

    host = host_with_test_nodes
    prompt = headless.load_api_workflow(path)
    assert _loaded_files(prompt) <= saved_memories
    ok, error, _outputs, node_errors = asyncio.run(execution.validate_prompt("check", prompt, None))
    unexpected = [(nid, e) for nid, info in node_errors.items() for e in info["errors"]
                  if not (e["type"] == "value_not_in_list"
                          and e.get("extra_info", {}).get("input_name") in MODEL_FILE_INPUTS)]
    assert not unexpected, unexpected
    assert ok or node_errors, error
    rewritten, _ = headless.rewrite_for_random_models(prompt)
    ok, error, outputs, node_errors = asyncio.run(execution.validate_prompt("check", rewritten,
                                                                            None))
    assert ok, (error, node_errors)
    output_nodes = {nid for nid, n in prompt.items()
                    if getattr(host.nodes.NODE_CLASS_MAPPINGS[n["class_type"]], "OUTPUT_NODE",
                               False)}
    assert {n["class_type"] for n in prompt.values()} & {"SaveImage"}, \
        "the workflow saves no images"
    assert set(outputs) == output_nodes, "every output node validates and runs"


@pytest.mark.parametrize("path", [p for p in API_FILES
                                  if _loaded_files(headless.load_api_workflow(p))], ids=_rel)
def test_comfyui_validation_refuses_a_missing_memory(path, host_with_test_nodes):
    """Without the saved file ComfyUI refuses the workflow before anything runs, saying where files
    go."""
    import execution

    prompt, _ = headless.rewrite_for_random_models(headless.load_api_workflow(path))
    loads = [nid for nid, n in prompt.items() if n["class_type"] == "LayerMem_LoadLayerMemory"]
    for nid in loads:
        prompt[nid]["inputs"]["file"] = "layer_memory/never_saved_00001_.safetensors" + OUTPUT_TAG
    ok, _error, _outputs, node_errors = asyncio.run(execution.validate_prompt("check", prompt,
                                                                              None))
    assert not ok
    for nid in loads:
        messages = [e["details"] for e in node_errors[nid]["errors"]]
        assert any("does not exist" in m and "input folder" in m for m in messages), messages


# ------------------------------------------------------------ UI == API
@pytest.mark.parametrize("path", UI_FILES, ids=_rel)
def test_ui_and_api_describe_the_same_graph(path, specs):
    ui, api = _load(path), headless.load_api_workflow(api_twin(path))
    ui_nodes = {str(n["id"]): n for n in ui["nodes"] if n["type"] not in FRONTEND_ONLY}
    assert set(ui_nodes) == set(api), \
        f"node ids differ: {sorted(set(ui_nodes) ^ set(api), key=int)}"
    problems = []
    for nid, node in ui_nodes.items():
        a = api[nid]
        if a["class_type"] != node["type"]:
            problems.append(f"node {nid}: {node['type']} in UI, {a['class_type']} in API")
            continue
        spec = specs(node["type"])
        # widget values in order (the control value is UI-only)
        # a linked widget (Layer Box's layer into EditLayer's) keeps its value in the UI file; the
        # API has the link instead
        values = iter(node.get("widgets_values", []))
        linked = {i["name"] for i in node.get("inputs", []) if i.get("link") is not None}
        ui_widgets = []
        for w in spec.widgets:
            value = next(values, "<missing>")
            if w not in linked:
                ui_widgets.append((w, value))
            if spec.has_control(w):
                next(values, None)
        api_widgets = [(k, v) for k, v in a["inputs"].items() if not isinstance(v, list)]
        if sorted(api_widgets, key=lambda kv: spec.widgets.index(kv[0])
                  if kv[0] in spec.widgets else -1) != ui_widgets:
            problems.append(f"node {nid} ({node['type']}): widgets UI {ui_widgets} "
                            f"!= API {api_widgets}")
        if node.get("title") and a.get("_meta", {}).get("title") != node["title"]:
            problems.append(f"node {nid}: title {node['title']!r} in UI, {a.get('_meta')} in API")
    # links: [id, origin, origin_slot, target, target_slot, type] <-> inputs[name] = [origin, slot]
    ui_links = set()
    by_id = {n["id"]: n for n in ui["nodes"]}
    for _id, origin, o_slot, target, t_slot, _typ in ui["links"]:
        ui_links.add((str(origin), o_slot, str(target), by_id[target]["inputs"][t_slot]["name"]))
    api_links = {(v[0], v[1], nid, name) for nid, n in api.items()
                 for name, v in n["inputs"].items() if isinstance(v, list)}
    if ui_links != api_links:
        problems.append(f"links only in UI: {sorted(ui_links - api_links)}; "
                        f"only in API: {sorted(api_links - ui_links)}")
    assert not problems, "\n".join(problems)


# ------------------------------------------------------------ random-model rewrite
REAL_MODEL_NODES = {"CheckpointLoaderSimple", "CLIPTextEncodeSDXL", "CLIPTextEncodePixArtAlpha",
                    "UNETLoader", "DualCLIPLoader", "CLIPTextEncodeFlux", "TripleCLIPLoader",
                    "CLIPTextEncodeSD3"}


@pytest.mark.parametrize("path", API_FILES, ids=_rel)
def test_random_rewrite_leaves_no_real_model_and_no_large_size(path):
    """The rewritten workflow loads only the random test models (PixArt through LoadPixArt's random
    file names, SDXL through the test loader) and works at 512 px, so the CPU tests stay small."""
    prompt, changes = headless.rewrite_for_random_models(headless.load_api_workflow(path))
    assert changes
    assert not {n["class_type"] for n in prompt.values()} & REAL_MODEL_NODES
    for nid, node in prompt.items():
        if node["class_type"] == "LayerMem_LoadPixArt":
            assert node["inputs"]["unet_name"] in (headless.RANDOM_ALPHA, headless.RANDOM_SIGMA)
        if node["class_type"] == "VAELoader":  # a stand-in in vae_approx/, not a real VAE file
            assert not node["inputs"]["vae_name"].endswith(MODEL_SUFFIXES), (nid, node["inputs"])
        for name in ("width", "height", "target_width", "target_height"):
            value = node["inputs"].get(name)
            assert not isinstance(value, int) or value <= 512, (nid, name, value)
