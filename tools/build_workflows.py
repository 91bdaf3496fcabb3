"""Writes the example workflows in both of ComfyUI's formats from one description.

    python tools/build_workflows.py          # (re)write workflows/*.json
    python tools/build_workflows.py --check  # exit 1 if the files differ from what this script writes

Two workflows, each in both formats:
- `layered_scene`: builds the savanna scene layer by layer, deletes a layer, saves the scene as a
  layer memory file (`output/layer_memory/savanna_00001_.safetensors`) and previews its layers;
- `continue_scene`: loads that file and adds one more layer. It needs the file, so it runs after
  `layered_scene` (`RUN_ORDER`; in one headless session:
  `python tools/run_workflow.py workflows/api/layered_scene_api.json workflows/api/continue_scene_api.json`).

`workflows/<name>.json` is the UI format (litegraph, version 0.4, as the frontend saves it: drag it
onto the canvas, or open it from Workflow > Browse Templates > comfyui_layer_memory).
`workflows/api/<name>_api.json` is the API format a pipeline posts to `/prompt`. Both come from the
same `Graph` below, so they cannot drift apart; `tests/e2e/test_workflows_valid.py` checks them
against the node definitions of the real ComfyUI and this pack, and that this script reproduces them.

Why `workflows/api/`: ComfyUI lists every `*.json` directly inside a pack's `workflows/` (or
`example_workflows/`) folder as a template and hands it to the frontend's graph loader, which
cannot read the API format; one folder deeper it is not listed.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORKFLOWS = REPO / "workflows"
FRONTEND_VERSION = "1.27.10"  # comfyui-frontend-package pinned by ComfyUI 0.3.64
COMFY_VERSION = "0.3.64"

# ---------------------------------------------------------------- node definitions (as the frontend sees them)
# Per node type: socket inputs (name, type, optional), widget inputs (name, type, optional, has
# control_after_generate), outputs (name, type). Order = the node's input_order; the frontend puts
# sockets first, then one socket per widget, and stores widget values in widget order with the
# "control after generate" value right after its seed. The tests compare this table with ComfyUI.

@dataclass(frozen=True)
class NodeDef:
    sockets: tuple = ()
    widgets: tuple = ()
    outputs: tuple = ()
    pack: str | None = "comfy-core"  # cnr_id (registry id) of core nodes; none for this pack's


NODE_DEFS = {
    "LoadPixArt": NodeDef(
        widgets=(("unet_name", "COMBO", False, False), ("text_encoder", "COMBO", False, False),
                 ("vae_name", "COMBO", False, False), ("weight_dtype", "COMBO", False, False)),
        outputs=(("MODEL", "MODEL"), ("CLIP", "CLIP"), ("VAE", "VAE")), pack=None),
    "CLIPTextEncodePixArtAlpha": NodeDef(
        sockets=(("clip", "CLIP", False),),
        widgets=(("width", "INT", False, False), ("height", "INT", False, False), ("text", "STRING", False, False)),
        outputs=(("CONDITIONING", "CONDITIONING"),)),
    "LayerMemory": NodeDef(
        sockets=(("model", "MODEL", False), ("positive", "CONDITIONING", False), ("negative", "CONDITIONING", False)),
        widgets=(("width", "INT", False, False), ("height", "INT", False, False), ("seed", "INT", False, True),
                 ("steps", "INT", False, False), ("cfg", "FLOAT", False, False), ("sampler_name", "COMBO", False, False),
                 ("scheduler", "COMBO", False, False), ("name", "STRING", True, False)),
        outputs=(("memory", "LAYER_MEMORY"), ("latent", "LATENT")), pack=None),
    "AddLayer": NodeDef(
        sockets=(("memory", "LAYER_MEMORY", False), ("model", "MODEL", False), ("positive", "CONDITIONING", False),
                 ("mask", "MASK", False), ("negative", "CONDITIONING", True)),
        widgets=(("seed", "INT", False, True), ("use_mqd", "BOOLEAN", False, False), ("grow", "INT", False, False),
                 ("feather", "INT", False, False), ("unblended_fraction", "FLOAT", False, False),
                 ("name", "STRING", True, False)),
        outputs=(("memory", "LAYER_MEMORY"), ("latent", "LATENT")), pack=None),
    "DeleteLayer": NodeDef(
        sockets=(("memory", "LAYER_MEMORY", False), ("model", "MODEL", False)),
        widgets=(("layer", "STRING", False, False), ("regenerate_fraction", "FLOAT", False, False),
                 ("seed", "INT", False, True), ("grow", "INT", False, False)),
        outputs=(("memory", "LAYER_MEMORY"), ("latent", "LATENT")), pack=None),
    "SolidMask": NodeDef(
        widgets=(("value", "FLOAT", False, False), ("width", "INT", False, False), ("height", "INT", False, False)),
        outputs=(("MASK", "MASK"),)),
    "MaskComposite": NodeDef(
        sockets=(("destination", "MASK", False), ("source", "MASK", False)),
        widgets=(("x", "INT", False, False), ("y", "INT", False, False), ("operation", "COMBO", False, False)),
        outputs=(("MASK", "MASK"),)),
    "VAEDecode": NodeDef(sockets=(("samples", "LATENT", False), ("vae", "VAE", False)), outputs=(("IMAGE", "IMAGE"),)),
    "SaveImage": NodeDef(sockets=(("images", "IMAGE", False),), widgets=(("filename_prefix", "STRING", False, False),)),
    "SaveLayerMemory": NodeDef(
        sockets=(("memory", "LAYER_MEMORY", False),),
        widgets=(("filename_prefix", "STRING", False, False), ("trajectory_storage", "COMBO", False, False)),
        outputs=(("file", "STRING"),), pack=None),
    "LoadLayerMemory": NodeDef(
        widgets=(("file", "COMBO", False, False),),
        outputs=(("memory", "LAYER_MEMORY"), ("latent", "LATENT"), ("layers", "STRING")), pack=None),
    "PreviewLayers": NodeDef(
        sockets=(("memory", "LAYER_MEMORY", False), ("vae", "VAE", False)),
        widgets=(("line_width", "INT", True, False),),
        outputs=(("outlined", "IMAGE"), ("per_layer", "IMAGE")), pack=None),
    "ListLayers": NodeDef(sockets=(("memory", "LAYER_MEMORY", False),), outputs=(("table", "STRING"),), pack=None),
}
NOTE_TYPES = ("Note", "MarkdownNote")  # frontend-only nodes: on the canvas, never in the API format
SEED_CONTROL = "fixed"  # re-queueing must hit ComfyUI's cache: "randomize" would redo every layer

# ---------------------------------------------------------------- the scene
# Multi-Edit Bench (dev70) scene "1": background first, then the objects in mask order. Boxes are the
# bench's normalised [x0, y0, x1, y1] (x right, y down) times 1024, rounded to multiples of 16 so that
# they stay on the latent grid at 1024 px and at the 512 px the tests run.
SIZE = 1024
BACKGROUND = ("Create an image of background with vast rolling savannahs, varied tall grasses swaying in the breeze, "
              "distant acacia trees scattered across the horizon, soft sunlight filtering through the serene sky, "
              "casting delicate shadows and rich warm hues.")
NEGATIVE = "low quality, blurry, distorted, deformed, watermark, text"
OBJECTS = (
    ("cheetah", (0.21868987744716784, 0.11633567662303822, 0.4756481547851784, 0.4911883246027097),
     "Create an image of cheetah with a sleek, slender body sprawled comfortably on vibrant green grass, its deep "
     "amber eyes alert and focused, distinctive black \"tear marks\" accentuating its elegant face, its spotted coat "
     "shining in the sunlight with intricate patterns, exuding grace and a sense of latent power, complementing its "
     "tranquil yet vigilant posture."),
    ("leopard", (0.3739241505186154, 0.4515441078226743, 0.617012753109487, 0.7634068460734071),
     "Create an image of a leopard with sleek, defined muscle structure, its vibrant, rosette-patterned coat gleaming "
     "in the light, eyes sharp and focused, hidden partly by a bush, embodying a sense of stealth and caution."),
    ("lion", (0.3734809844484098, 0.18330152401880448, 0.7680104051890374, 0.45955130509993847),
     "Create an image of lion with a majestic, regal posture, standing firmly with a powerful presence, its thick "
     "mane meticulously groomed, each hair defined against its robust neck. The lion's piercing eyes exude "
     "dominance and wisdom, exhibiting strength and grace."),
)
DELETE = "2"  # the middle object (leopard); 0 is the background
# The second workflow puts the deleted object back, as a new top layer: scene 1 has no fourth object.
RESTORE = OBJECTS[int(DELETE) - 1]
RESTORE_SEED = 202
# SaveLayerMemory appends a counter as SaveImage does; the first save of a prefix is _00001_, and the
# node returns the name LoadLayerMemory lists for a file in the output folder: "<path> [output]".
MEMORY_PREFIX = "layer_memory/savanna"
MEMORY_FILE = f"{MEMORY_PREFIX}_00001_.safetensors [output]"
TRAJECTORY_STORAGE = "float32 (exact)"
# The order in which the workflows must run in one ComfyUI: continue_scene loads what layered_scene saves.
RUN_ORDER = ("layered_scene", "continue_scene")
UNET = "PixArt-XL-2-1024-MS.safetensors"
T5 = "t5xxl_fp16.safetensors"
VAE = "vae-ft-mse-840000-ema-pruned.safetensors"
MODEL_LINKS = [
    {"name": T5, "url": "https://huggingface.co/comfyanonymous/flux_text_encoders/resolve/main/t5xxl_fp16.safetensors",
     "directory": "text_encoders"},
    {"name": VAE, "url": "https://huggingface.co/stabilityai/sd-vae-ft-mse-original/resolve/main/vae-ft-mse-840000-ema-pruned.safetensors",
     "directory": "vae"},
]


def box_pixels(box, size: int = SIZE, grid: int = 16) -> tuple[int, int, int, int]:
    return tuple(int(round(c * size / grid)) * grid for c in box)


# ---------------------------------------------------------------- graph
@dataclass
class Node:
    id: int
    type: str
    widgets: dict  # name -> value, in the node's widget order
    links: dict  # input name -> (source node id, output slot)
    title: str | None = None
    pos: tuple = (0, 0)
    size: tuple = (300, 100)
    color: tuple | None = None  # (color, bgcolor)
    properties: dict = field(default_factory=dict)


@dataclass
class Group:
    title: str
    bounding: tuple


class Graph:
    def __init__(self):
        self.nodes: list[Node] = []
        self.groups: list[Group] = []

    def add(self, node: Node) -> int:
        assert all(n.id != node.id for n in self.nodes), node.id
        if node.type not in NOTE_TYPES:
            d = NODE_DEFS[node.type]
            names = {w[0] for w in d.widgets}
            assert list(node.widgets) == [w[0] for w in d.widgets if w[0] in node.widgets], (node.type, list(node.widgets))
            assert names == set(node.widgets), (node.type, names ^ set(node.widgets))
            assert set(node.links) <= {s[0] for s in d.sockets}, node.type
        self.nodes.append(node)
        return node.id

    def note(self, id: int, text: str, pos, size, title: str | None = None, markdown: bool = True) -> None:
        self.add(Node(id, "MarkdownNote" if markdown else "Note", {"text": text}, {}, title=title, pos=pos, size=size,
                      color=("#432", "#653")))

    # ------------------------------------------------------------ API format
    def api(self) -> dict:
        out = {}
        for n in self._ordered():
            if n.type in NOTE_TYPES:
                continue
            inputs = dict(n.widgets)
            for name, (src, slot) in n.links.items():
                inputs[name] = [str(src), slot]
            out[str(n.id)] = {"inputs": inputs, "class_type": n.type, "_meta": {"title": n.title or DISPLAY[n.type]}}
        return out

    # ------------------------------------------------------------ UI format
    def _ordered(self) -> list[Node]:
        """Topological order (the frontend's `order`), ties by id; notes first."""
        done: dict[int, int] = {}
        by_id = {n.id: n for n in self.nodes}
        order: list[Node] = []
        pending = sorted(self.nodes, key=lambda n: (n.type not in NOTE_TYPES, n.id))
        while pending:
            for n in pending:
                if all(src in done for src, _ in n.links.values()):
                    done[n.id] = len(order)
                    order.append(n)
                    pending.remove(n)
                    break
            else:
                raise ValueError("cycle in graph")
        assert len(by_id) == len(order)
        return order

    def ui(self, workflow_id: str) -> dict:
        order = self._ordered()
        links = []  # [id, origin_id, origin_slot, target_id, target_slot, type]
        in_link: dict[tuple[int, str], int] = {}
        out_links: dict[tuple[int, int], list[int]] = {}
        for n in sorted(self.nodes, key=lambda n: n.id):
            if n.type in NOTE_TYPES:
                continue
            sockets = [s[0] for s in NODE_DEFS[n.type].sockets]
            for name in sorted(n.links, key=sockets.index):
                src, slot = n.links[name]
                src_type = NODE_DEFS[self._node(src).type].outputs[slot][1]
                link_id = len(links) + 1
                links.append([link_id, src, slot, n.id, sockets.index(name), src_type])
                in_link[(n.id, name)] = link_id
                out_links.setdefault((src, slot), []).append(link_id)
        nodes = []
        for index, n in enumerate(order):
            entry = {"id": n.id, "type": n.type, "pos": list(n.pos), "size": list(n.size), "flags": {}, "order": index,
                     "mode": 0, "inputs": [], "outputs": []}
            if n.type in NOTE_TYPES:
                entry["properties"] = {}
                entry["widgets_values"] = [n.widgets["text"]]
            else:
                d = NODE_DEFS[n.type]
                for name, typ, optional in d.sockets:
                    slot = {"localized_name": name, "name": name}
                    if optional:
                        slot["shape"] = 7  # RenderShape.HollowCircle: optional input
                    slot.update({"type": typ, "link": in_link.get((n.id, name))})
                    entry["inputs"].append(slot)
                for name, typ, optional, _control in d.widgets:
                    slot = {"localized_name": name, "name": name}
                    if optional:
                        slot["shape"] = 7
                    slot.update({"type": typ, "widget": {"name": name}, "link": None})
                    entry["inputs"].append(slot)
                for slot_index, (name, typ) in enumerate(d.outputs):
                    entry["outputs"].append({"localized_name": name, "name": name, "type": typ,
                                             "slot_index": slot_index, "links": out_links.get((n.id, slot_index), [])})
                props = {"Node name for S&R": n.type}
                if d.pack:
                    props.update({"cnr_id": d.pack, "ver": COMFY_VERSION})
                props.update(n.properties)
                entry["properties"] = props
                values = []
                for name, _typ, _optional, control in d.widgets:
                    values.append(n.widgets[name])
                    if control:
                        values.append(SEED_CONTROL)
                entry["widgets_values"] = values
            if n.title:
                entry["title"] = n.title
            if n.color:
                entry["color"], entry["bgcolor"] = n.color
            # keep the frontend's key order: title sits before properties
            nodes.append(_reorder(entry))
        groups = [{"id": i + 1, "title": g.title, "bounding": list(g.bounding), "color": "#3f789e", "font_size": 24,
                   "flags": {}} for i, g in enumerate(self.groups)]
        return {"id": workflow_id, "revision": 0, "last_node_id": max(n.id for n in self.nodes),
                "last_link_id": len(links), "nodes": nodes, "links": links, "groups": groups, "config": {},
                "extra": {"ds": {"scale": 0.5, "offset": [1440, 430]}, "frontendVersion": FRONTEND_VERSION},
                "version": 0.4}

    def _node(self, id: int) -> Node:
        return next(n for n in self.nodes if n.id == id)


_KEY_ORDER = ["id", "type", "pos", "size", "flags", "order", "mode", "inputs", "outputs", "title", "properties",
              "widgets_values", "color", "bgcolor"]


def _reorder(entry: dict) -> dict:
    return {k: entry[k] for k in _KEY_ORDER if k in entry}


DISPLAY = {"LoadPixArt": "Load PixArt (model, T5, VAE)", "CLIPTextEncodePixArtAlpha": "CLIPTextEncodePixArtAlpha",
           "LayerMemory": "Layer Memory (background)", "AddLayer": "Add Layer (MQD + BCG)", "DeleteLayer": "Delete Layer",
           "SolidMask": "SolidMask", "MaskComposite": "MaskComposite", "VAEDecode": "VAE Decode",
           "SaveImage": "Save Image", "SaveLayerMemory": "Save Layer Memory", "LoadLayerMemory": "Load Layer Memory",
           "PreviewLayers": "Preview Layers", "ListLayers": "List Layers"}

# ---------------------------------------------------------------- the example
POSITIVE_COLOR = ("#232", "#353")
NEGATIVE_COLOR = ("#322", "#533")
ROW = 540  # canvas height of one step
X_README, X_NOTE, X_TEXT, X_MASK, X_COMPOSITE, X_LAYER, X_DECODE, X_SAVE = -1400, -480, 0, 440, 740, 1060, 1440, 1680
SAVE_SIZE = (360, 420)

SCENE_SIZE = (600, 400)  # PreviewLayers: room for its images


def models_section(title: str) -> str:
    return f"""### {title}
```
ComfyUI/models/
├── diffusion_models/   {UNET}
├── text_encoders/      {T5}
└── vae/                {VAE}
```
- **PixArt-alpha transformer** (`diffusion_models/`): `PixArt-XL-2-1024-MS.pth` from the Hugging Face repository `PixArt-alpha/PixArt-alpha`, the original `.pth` or a `.safetensors` copy of it named `{UNET}`; choose your file in `unet_name`. PixArt-XL-2-512x512 and PixArt-Sigma-XL-2 work too (Sigma wants the SDXL VAE).
- **T5-XXL text encoder** (`text_encoders/`): `{T5}` from `comfyanonymous/flux_text_encoders` (`t5xxl_fp8_e4m3fn.safetensors` needs less memory).
- **VAE** (`vae/`): PixArt-alpha decodes with the Stable Diffusion 1.x VAE, e.g. `{VAE}` from `stabilityai/sd-vae-ft-mse-original`.
"""  # noqa: E501


MEMORY_PATH = MEMORY_FILE.removesuffix(" [output]")
MODELS_NOTE = f"""## Layer memory: a scene built layer by layer

This graph paints a savanna, adds a **cheetah**, a **leopard** and a **lion**, one layer at a time, then **deletes the leopard**. Each step saves an image: 5 in all, in `ComfyUI/output/layered_scene/`. At the end it saves the whole scene as one file, `ComfyUI/output/{MEMORY_PATH}`: the **continue_scene** workflow (Browse Templates, next to this one) loads it and adds a layer without recomputing the scene.

{models_section("Models: put the files here, then press `r` to refresh the lists")}
### How it works
A layer is sampled inside its mask while everything outside follows the stored trajectory of the layers before it (**BCG**), and inside the model each region of the image listens to its own prompt (**MQD**). Change one step and press Queue: ComfyUI re-runs that step and the ones after it, and takes the rest from its cache.
"""  # noqa: E501

NOTES = [
    ("Step 1: the background",
     "**Layer Memory** samples the background from its prompt and starts the memory: it records every "
     "sampling step so that later layers can follow it.\n\n"
     "Size, steps, sampler, scheduler and cfg chosen here hold for every later layer (here the paper's: "
     "1024x1024, 20 steps, dpmpp_2m / karras, cfg 4.5). The negative prompt is reused by later layers "
     "unless they bring their own.\n\n"
     "Seeds are **fixed**: with *randomize*, every Queue would redo every layer."),
    ("Step 2: add the cheetah",
     "**Add Layer** places an object inside a mask, in front of the earlier layers. Outside the mask the image "
     "stays exactly as it was.\n\n"
     "The box mask comes from stock nodes: **SolidMask** 0 at 1024x1024 is the empty canvas, **SolidMask** 1 "
     "has the size of the box, and **MaskComposite** `add` pastes it at **x, y** (pixels from the top left). "
     "Any MASK works: paint one, or use a segmentation node.\n\n"
     "`grow` / `feather` widen or soften the mask (in latent pixels, 8 image pixels each)."),
    ("Step 3: add the leopard",
     "Same as step 2, with its own prompt, box and seed.\n\n"
     "`unblended_fraction` > 0 leaves the last steps unblended so that the edges blend in (the image "
     "outside the box then changes slightly). `use_mqd` off lets the whole image attend to this layer's "
     "prompt."),
    ("Step 4: add the lion",
     "The lion's box overlaps the cheetah's: the newer layer is in front, so the overlap becomes lion.\n\n"
     "The memory now holds four layers: 0 background, 1 cheetah, 2 leopard, 3 lion. Each AddLayer's `name` "
     "labels its layer; a **List Layers** node on any memory output shows the table."),
    ("Step 5: delete a layer",
     "**Delete Layer** removes layer `2`, the leopard (0 is the background; a layer `name` such as `leopard` "
     "works too). Its region is rebuilt from the layers below it over the last 40% of the steps "
     "(`regenerate_fraction`); everything else stays exactly as it was."),
    ("Step 6: save the scene",
     f"**Save Layer Memory** writes the whole memory (background, cheetah, lion) to `ComfyUI/output/{MEMORY_PATH}`: "
     "every layer's prompt embeddings, mask, seed and sampling steps in one `.safetensors` file (no pickle). "
     "A counter is appended as for images, so a run that changes the scene writes `_00002_` and so on.\n\n"
     "`float32 (exact)` gives the memory back bit for bit; `float16 (half size)` halves the file.\n\n"
     "Next: open **continue_scene** (Browse Templates) to load this file and add a layer. To share the scene, "
     "send the file: the receiver puts it into `ComfyUI/input/`.\n\n"
     "**Preview Layers** shows the final picture with every layer's mask outlined and numbered, then the "
     "picture after each layer."),
]

CONTINUE_NOTE = f"""## Continue a saved scene

This graph continues the scene that the **layered_scene** workflow saved. Run that one first: its last step, **Save Layer Memory**, writes `ComfyUI/output/{MEMORY_PATH}`. Here **Load Layer Memory** reads it back (every layer's prompt embeddings, masks, seeds and sampling steps: nothing is recomputed) and **Add Layer** brings back the **leopard** that layered_scene deleted, as a new layer in front of the others. The images go to `ComfyUI/output/continue_scene/`.

### Which file
- `file` lists the memories saved in the output folder with ` [output]` after the name: `{MEMORY_FILE}` is layered_scene's first save. A later run that changes that scene saves `_00002_` and so on: choose the newest (press `r` to refresh the list after a run).
- **A memory file from someone else** (or from another ComfyUI): put the `.safetensors` file into **`ComfyUI/input/`** (subfolders allowed, e.g. `input/layer_memory/`), press `r` and choose it in `file`; files from the input folder are listed without ` [output]`. (The upload button of this ComfyUI takes only images, video and audio.)
- Use the PixArt model the memory was made with: the memory records the model's fingerprint and Add Layer refuses another one.

{models_section("Models: the same files as layered_scene")}
The text encoder is needed for the new prompt only: the loaded layers keep their encoded prompts.
"""  # noqa: E501

CONTINUE_NOTES = [
    ("Step 1: load the saved scene",
     "**Load Layer Memory** reads the file chosen in `file` and checks all of it first (a truncated, corrupt or "
     "foreign file is refused with the reason). A file that does not exist is reported when you press Queue, "
     "before anything runs: run layered_scene first, or put the file into the input folder.\n\n"
     "Its `latent` is the scene as it was saved, decoded here: the same picture as layered_scene's last image. "
     "`layers` is the layer table as text."),
    ("Step 2: add the leopard back",
     "**Add Layer** continues the loaded memory exactly as if the scene had never left ComfyUI: outside its mask "
     "the picture follows the stored steps (BCG), inside it listens to its own prompt (MQD).\n\n"
     "Same prompt and box as layered_scene's leopard, a new seed. It is now the top layer, so where its box "
     "overlaps the lion's, the leopard is in front. Size, steps, sampler and cfg come from the memory, and with "
     "no negative prompt connected the memory's own is used; the prompt and the canvas mask have the scene's "
     "size, 1024x1024."),
    ("Step 3: look at the layers",
     "**List Layers** shows the table: 0 background, 1 cheetah, 2 lion (from the file), 3 leopard (new).\n\n"
     "**Preview Layers** outlines every layer's mask on the final picture and shows the picture after each "
     "layer.\n\n"
     "To keep this version, add a **Save Layer Memory** after Add Layer."),
]


def _row_group(g: Graph, title: str, y: int, x0: int = X_TEXT) -> None:
    g.groups.append(Group(title, (x0 - 20, y - 80, X_SAVE + SAVE_SIZE[0] + 20 - (x0 - 20), ROW - 20)))


def _loader(g: Graph) -> None:
    g.add(Node(1, "LoadPixArt", {"unet_name": UNET, "text_encoder": T5, "vae_name": VAE, "weight_dtype": "default"}, {},
               pos=(X_TEXT, -360), size=(400, 150), properties={"models": MODEL_LINKS}))


def _box_layer(g: Graph, ids, y: int, name: str, box, prompt: str, seed: int, memory: int, canvas: int,
               title: str, save_prefix: str) -> None:
    """Prompt, box mask (SolidMask + MaskComposite on the canvas), AddLayer, decode and save, on one row."""
    text, source, composite, layer, decode, save = ids
    x0, y0, x1, y1 = box_pixels(box)
    g.add(Node(text, "CLIPTextEncodePixArtAlpha", {"width": SIZE, "height": SIZE, "text": prompt}, {"clip": (1, 1)},
               title=f"Prompt: {name}", pos=(X_TEXT, y), size=(400, 200), color=POSITIVE_COLOR))
    g.add(Node(source, "SolidMask", {"value": 1.0, "width": x1 - x0, "height": y1 - y0}, {},
               title=f"Box size: {name}", pos=(X_MASK, y), size=(270, 110)))
    g.add(Node(composite, "MaskComposite", {"x": x0, "y": y0, "operation": "add"},
               {"destination": (canvas, 0), "source": (source, 0)}, title=f"Box mask: {name}",
               pos=(X_COMPOSITE, y), size=(270, 130)))
    g.add(Node(layer, "AddLayer", {"seed": seed, "use_mqd": True, "grow": 0, "feather": 0,
                                   "unblended_fraction": 0.0, "name": name},
               {"memory": (memory, 0), "model": (1, 0), "positive": (text, 0), "mask": (composite, 0)},
               title=title, pos=(X_LAYER, y), size=(340, 290)))
    g.add(Node(decode, "VAEDecode", {}, {"samples": (layer, 1), "vae": (1, 2)}, pos=(X_DECODE, y), size=(200, 50)))
    g.add(Node(save, "SaveImage", {"filename_prefix": save_prefix}, {"images": (decode, 0)},
               pos=(X_SAVE, y), size=SAVE_SIZE))


def build() -> Graph:
    """layered_scene: background, three objects, delete one, save the memory, preview its layers."""
    g = Graph()
    _loader(g)
    g.note(2, MODELS_NOTE, pos=(X_README, -360), size=(880, 760), title="Read me: models and how it works")
    # step 1: background
    y = 0
    g.add(Node(3, "CLIPTextEncodePixArtAlpha", {"width": SIZE, "height": SIZE, "text": BACKGROUND}, {"clip": (1, 1)},
               title="Background prompt", pos=(X_TEXT, y), size=(400, 200), color=POSITIVE_COLOR))
    g.add(Node(4, "CLIPTextEncodePixArtAlpha", {"width": SIZE, "height": SIZE, "text": NEGATIVE}, {"clip": (1, 1)},
               title="Negative prompt", pos=(X_MASK, y), size=(570, 200), color=NEGATIVE_COLOR))
    g.add(Node(5, "LayerMemory", {"width": SIZE, "height": SIZE, "seed": 42, "steps": 20, "cfg": 4.5,
                                  "sampler_name": "dpmpp_2m", "scheduler": "karras", "name": "background"},
               {"model": (1, 0), "positive": (3, 0), "negative": (4, 0)}, pos=(X_LAYER, y), size=(340, 330)))
    g.add(Node(6, "VAEDecode", {}, {"samples": (5, 1), "vae": (1, 2)}, pos=(X_DECODE, y), size=(200, 50)))
    g.add(Node(7, "SaveImage", {"filename_prefix": "layered_scene/1_background"}, {"images": (6, 0)},
               pos=(X_SAVE, y), size=SAVE_SIZE))
    g.note(8, NOTES[0][1], pos=(X_NOTE, y), size=(420, 330), title=NOTES[0][0])
    _row_group(g, "Step 1: background", y)
    # the canvas for every box mask
    g.add(Node(9, "SolidMask", {"value": 0.0, "width": SIZE, "height": SIZE}, {}, title="Canvas (empty mask)",
               pos=(X_MASK, y + 260), size=(270, 110)))
    memory = 5
    next_id = 10
    for k, (name, box, prompt) in enumerate(OBJECTS):
        y = (k + 1) * ROW
        ids = range(next_id, next_id + 6)
        note = next_id + 6
        next_id += 7
        _box_layer(g, ids, y, name, box, prompt, 100 + k + 1, memory, 9, f"Add layer {k + 1}: {name}",
                   f"layered_scene/{k + 2}_{name}")
        g.note(note, NOTES[k + 1][1], pos=(X_NOTE, y), size=(420, 330), title=NOTES[k + 1][0])
        _row_group(g, f"Step {k + 2}: add the {name}", y)
        memory = ids[3]
    # step 5: delete the middle object
    y = (len(OBJECTS) + 1) * ROW
    deleted = OBJECTS[int(DELETE) - 1][0]
    delete, decode, save, note = range(next_id, next_id + 4)
    next_id += 4
    g.add(Node(delete, "DeleteLayer", {"layer": DELETE, "regenerate_fraction": 0.4, "seed": 0, "grow": 2},
               {"memory": (memory, 0), "model": (1, 0)}, title=f"Delete layer {DELETE} ({deleted})",
               pos=(X_LAYER, y), size=(340, 200)))
    g.add(Node(decode, "VAEDecode", {}, {"samples": (delete, 1), "vae": (1, 2)}, pos=(X_DECODE, y), size=(200, 50)))
    g.add(Node(save, "SaveImage", {"filename_prefix": f"layered_scene/{len(OBJECTS) + 2}_without_{deleted}"},
               {"images": (decode, 0)}, pos=(X_SAVE, y), size=SAVE_SIZE))
    g.note(note, NOTES[len(OBJECTS) + 1][1], pos=(X_NOTE, y), size=(420, 250), title=NOTES[len(OBJECTS) + 1][0])
    _row_group(g, f"Step {len(OBJECTS) + 2}: delete the {deleted}", y, x0=X_LAYER)
    # step 6: save the memory for continue_scene, preview its layers
    y = (len(OBJECTS) + 2) * ROW
    keep, preview, note = range(next_id, next_id + 3)
    g.add(Node(keep, "SaveLayerMemory", {"filename_prefix": MEMORY_PREFIX, "trajectory_storage": TRAJECTORY_STORAGE},
               {"memory": (delete, 0)}, title="Save the scene (for continue_scene)", pos=(X_LAYER, y), size=(340, 130)))
    g.add(Node(preview, "PreviewLayers", {"line_width": 0}, {"memory": (delete, 0), "vae": (1, 2)},
               pos=(X_DECODE, y), size=SCENE_SIZE))
    g.note(note, NOTES[-1][1], pos=(X_NOTE, y), size=(420, 420), title=NOTES[-1][0])
    _row_group(g, f"Step {len(OBJECTS) + 3}: save the scene", y, x0=X_LAYER)
    return g


def build_continue() -> Graph:
    """continue_scene: load the memory layered_scene saved, add the deleted object back as a new top layer."""
    g = Graph()
    _loader(g)
    g.note(2, CONTINUE_NOTE, pos=(X_README, -360), size=(880, 880), title="Read me: continue the saved scene")
    # step 1: load
    y = 0
    load, decode, save, note = 3, 4, 5, 6
    g.add(Node(load, "LoadLayerMemory", {"file": MEMORY_FILE}, {}, title="Load the saved scene",
               pos=(X_LAYER, y), size=(340, 130)))
    g.add(Node(decode, "VAEDecode", {}, {"samples": (load, 1), "vae": (1, 2)}, pos=(X_DECODE, y), size=(200, 50)))
    g.add(Node(save, "SaveImage", {"filename_prefix": "continue_scene/1_loaded"}, {"images": (decode, 0)},
               pos=(X_SAVE, y), size=SAVE_SIZE))
    g.note(note, CONTINUE_NOTES[0][1], pos=(X_NOTE, y), size=(420, 330), title=CONTINUE_NOTES[0][0])
    _row_group(g, "Step 1: load the saved scene", y, x0=X_LAYER)
    # step 2: one more layer
    y = ROW
    name, box, prompt = RESTORE
    canvas, note = 7, 14
    g.add(Node(canvas, "SolidMask", {"value": 0.0, "width": SIZE, "height": SIZE}, {}, title="Canvas (empty mask)",
               pos=(X_MASK, y + 260), size=(270, 110)))
    _box_layer(g, range(8, 14), y, name, box, prompt, RESTORE_SEED, load, canvas, f"Add layer: {name} (back, in front)",
               f"continue_scene/2_{name}")
    g.note(note, CONTINUE_NOTES[1][1], pos=(X_NOTE, y), size=(420, 400), title=CONTINUE_NOTES[1][0])
    _row_group(g, f"Step 2: add the {name} back", y)
    # step 3: inspect
    y = 2 * ROW
    table, preview, note = 15, 16, 17
    g.add(Node(table, "ListLayers", {}, {"memory": (11, 0)}, pos=(X_LAYER, y), size=(340, 300)))
    g.add(Node(preview, "PreviewLayers", {"line_width": 0}, {"memory": (11, 0), "vae": (1, 2)},
               pos=(X_DECODE, y), size=SCENE_SIZE))
    g.note(note, CONTINUE_NOTES[2][1], pos=(X_NOTE, y), size=(420, 300), title=CONTINUE_NOTES[2][0])
    _row_group(g, "Step 3: look at the layers", y, x0=X_LAYER)
    return g


WORKFLOW_ID = "5f0c6b52-7a1e-4c1e-9a53-1a7e2c0d4b11"
CONTINUE_ID = "9b3e2d41-5c6f-4a8e-b1d7-2f4a6c8e0d23"
GRAPHS = {"layered_scene": (build, WORKFLOW_ID), "continue_scene": (build_continue, CONTINUE_ID)}
assert tuple(GRAPHS) == RUN_ORDER


def outputs() -> dict[Path, str]:
    dump = lambda d: json.dumps(d, indent=2, ensure_ascii=False) + "\n"  # noqa: E731
    files = {}
    for name, (make, workflow_id) in GRAPHS.items():
        g = make()
        files[WORKFLOWS / f"{name}.json"] = dump(g.ui(workflow_id))
        files[WORKFLOWS / "api" / f"{name}_api.json"] = dump(g.api())
    return files


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--check", action="store_true", help="only compare; exit 1 when a file is missing or differs")
    args = p.parse_args(argv)
    stale = []
    for path, text in outputs().items():
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == text:
            continue
        stale.append(path)
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path.relative_to(REPO)}")
    if args.check and stale:
        print("out of date: " + ", ".join(str(p.relative_to(REPO)) for p in stale) + " (run python tools/build_workflows.py)")
        return 1
    if not stale:
        print("workflows are up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
