"""The example workflows: what each graph holds, where its nodes sit, and its notes.

- `layered_scene`: builds the savanna scene layer by layer, deletes a layer, saves the scene as a
  layer memory file (`output/layer_memory/savanna_00001_.safetensors`) and previews its layers;
- `continue_scene`: loads that file and adds one more layer, so it runs after `layered_scene`
  (`RUN_ORDER`). Template file names carry the order (`UI_NAMES`: 1_layered_scene,
  2_continue_scene): ComfyUI lists a pack's templates in file-system order (glob, unsorted)
  and frontend 1.27 shows them as listed, so the names say which comes first.

The notes on the canvas are the Markdown files in tools/workflow_notes/<workflow>/ (in name order:
00 is the read-me, then one per step; the first line `# ...` is the note's title), with
{placeholders} filled from this module.
"""
from __future__ import annotations

import json
from pathlib import Path

from workflow_graph import Graph, Group, Node
from workflow_nodes import MODEL_LINKS, NODE_DEFS, T5, UNET, VAE

NOTES_DIR = Path(__file__).resolve().parent / "workflow_notes"

# ---------------------------------------------------------------- the scene
# Multi-Edit Bench (dev70) scene "1" (workflow_notes/scene.json): background first, then the objects
# in mask order. Boxes are the bench's normalised [x0, y0, x1, y1] (x right, y down) times 1024,
# rounded to multiples of 16 so that they stay on the latent grid at 1024 px and at 512 px.
SCENE = json.loads((NOTES_DIR / "scene.json").read_text(encoding="utf-8"))
SIZE = 1024
BACKGROUND, NEGATIVE = SCENE["background"], SCENE["negative"]
OBJECTS = tuple((o["name"], tuple(o["box"]), o["prompt"]) for o in SCENE["objects"])
DELETE = "2"  # the middle object (leopard); 0 is the background
# The second workflow puts the deleted object back, as a new top layer (scene 1 has no fourth).
RESTORE = OBJECTS[int(DELETE) - 1]
RESTORE_SEED = 202
# SaveLayerMemory appends a counter as SaveImage does; the first save of a prefix is _00001_, and
# the node returns the name LoadLayerMemory lists for a file in the output folder:
# "<path> [output]".
MEMORY_PREFIX = "layer_memory/savanna"
MEMORY_FILE = f"{MEMORY_PREFIX}_00001_.safetensors [output]"
MEMORY_PATH = MEMORY_FILE.removesuffix(" [output]")
TRAJECTORY_STORAGE = "float32 (exact)"
# The order in which the workflows must run in one ComfyUI: continue_scene loads what
# layered_scene saves. The template files carry it in their names.
RUN_ORDER = ("layered_scene", "continue_scene")
UI_NAMES = {name: f"{i + 1}_{name}" for i, name in enumerate(RUN_ORDER)}


def box_pixels(box, size: int = SIZE, grid: int = 16) -> tuple[int, int, int, int]:
    return tuple(int(round(c * size / grid)) * grid for c in box)


# ---------------------------------------------------------------- the layout
POSITIVE_COLOR = ("#232", "#353")
NEGATIVE_COLOR = ("#322", "#533")
ROW = 540  # canvas height of one step
X_README, X_NOTE, X_TEXT, X_MASK, X_COMPOSITE = -1400, -480, 0, 440, 740
X_LAYER, X_DECODE, X_SAVE = 1060, 1440, 1680
SAVE_SIZE = (360, 420)
SCENE_SIZE = (600, 400)  # PreviewLayers: room for its images
CLIP, MODEL, VAE_OUT = (1, 1), (1, 0), (1, 2)  # LoadPixArt's outputs


def _fill(text: str) -> str:
    return text.format(memory_file=MEMORY_FILE, memory_path=MEMORY_PATH, unet=UNET, t5=T5, vae=VAE)


def notes(workflow: str, models_title: str) -> list[tuple[str, str]]:
    """(title, Markdown text) of each note of a workflow, the read-me first."""
    models = (NOTES_DIR / "models.md").read_text(encoding="utf-8")
    models = _fill(models.replace("{title}", models_title))
    found = []
    for path in sorted((NOTES_DIR / workflow).glob("*.md")):
        first, _, body = path.read_text(encoding="utf-8").partition("\n")
        assert first.startswith("# "), f"{path}: the first line must be '# <note title>'"
        text = _fill(body.strip("\n").replace("{models}", "{{models}}")).replace("{models}", models)
        found.append((first[2:].strip(), text))
    return found


LAYERED_NOTES = notes("layered_scene",
                      "Models: put the files here, then press `r` to refresh the lists")
CONTINUE_NOTES = notes("continue_scene", "Models: the same files as layered_scene")


def _note(g: Graph, id: int, note: tuple[str, str], pos, size) -> None:
    g.note(id, note[1], pos=pos, size=size, title=note[0])


def _row_group(g: Graph, title: str, y: int, x0: int = X_TEXT) -> None:
    width = X_SAVE + SAVE_SIZE[0] + 20 - (x0 - 20)
    g.groups.append(Group(title, (x0 - 20, y - 80, width, ROW - 20)))


def _loader(g: Graph) -> None:
    models = {"unet_name": UNET, "text_encoder": T5, "vae_name": VAE, "weight_dtype": "default"}
    g.add(Node(1, "LoadPixArt", models, {}, pos=(X_TEXT, -360), size=(400, 150),
               properties={"models": MODEL_LINKS}))


def _encode(g: Graph, id: int, text: str, title: str, x: int, y: int, width: int, color) -> None:
    g.add(Node(id, "CLIPTextEncodePixArtAlpha", {"width": SIZE, "height": SIZE, "text": text},
               {"clip": CLIP}, title=title, pos=(x, y), size=(width, 200), color=color))


def _decode_save(g: Graph, decode: int, save: int, latent: tuple, y: int, prefix: str) -> None:
    g.add(Node(decode, "VAEDecode", {}, {"samples": latent, "vae": VAE_OUT}, pos=(X_DECODE, y),
               size=(200, 50)))
    g.add(Node(save, "SaveImage", {"filename_prefix": prefix}, {"images": (decode, 0)},
               pos=(X_SAVE, y), size=SAVE_SIZE))


def _canvas(g: Graph, id: int, y: int) -> None:
    """The empty mask every box mask is pasted on."""
    g.add(Node(id, "SolidMask", {"value": 0.0, "width": SIZE, "height": SIZE}, {},
               title="Canvas (empty mask)", pos=(X_MASK, y + 260), size=(270, 110)))


def _box_layer(g: Graph, ids, y: int, obj: tuple, seed: int, memory: int, canvas: int,
               title: str, save_prefix: str) -> None:
    """Prompt, box mask (SolidMask + MaskComposite on the canvas), AddLayer, decode and save."""
    name, box, prompt = obj
    text, source, composite, layer, decode, save = ids
    x0, y0, x1, y1 = box_pixels(box)
    _encode(g, text, prompt, f"Prompt: {name}", X_TEXT, y, 400, POSITIVE_COLOR)
    g.add(Node(source, "SolidMask", {"value": 1.0, "width": x1 - x0, "height": y1 - y0}, {},
               title=f"Box size: {name}", pos=(X_MASK, y), size=(270, 110)))
    g.add(Node(composite, "MaskComposite", {"x": x0, "y": y0, "operation": "add"},
               {"destination": (canvas, 0), "source": (source, 0)}, title=f"Box mask: {name}",
               pos=(X_COMPOSITE, y), size=(270, 130)))
    widgets = {"seed": seed, "use_mqd": True, "grow": 0, "feather": 0, "unblended_fraction": 0.0,
               "name": name}
    links = {"memory": (memory, 0), "model": MODEL, "positive": (text, 0), "mask": (composite, 0)}
    g.add(Node(layer, "AddLayer", widgets, links, title=title, pos=(X_LAYER, y), size=(340, 290)))
    _decode_save(g, decode, save, (layer, 1), y, save_prefix)


def _background(g: Graph) -> None:
    """Step 1 of layered_scene: nodes 3 to 9 (9: the canvas of every box mask)."""
    _encode(g, 3, BACKGROUND, "Background prompt", X_TEXT, 0, 400, POSITIVE_COLOR)
    _encode(g, 4, NEGATIVE, "Negative prompt", X_MASK, 0, 570, NEGATIVE_COLOR)
    widgets = {"width": SIZE, "height": SIZE, "seed": 42, "steps": 20, "cfg": 4.5,
               "sampler_name": "dpmpp_2m", "scheduler": "karras", "name": "background"}
    links = {"model": MODEL, "positive": (3, 0), "negative": (4, 0)}
    g.add(Node(5, "LayerMemory", widgets, links, pos=(X_LAYER, 0), size=(340, 330)))
    _decode_save(g, 6, 7, (5, 1), 0, "layered_scene/1_background")
    _note(g, 8, LAYERED_NOTES[1], (X_NOTE, 0), (420, 330))
    _row_group(g, "Step 1: background", 0)
    _canvas(g, 9, 0)


def _delete_and_save(g: Graph, memory: int, next_id: int) -> None:
    """The last two steps of layered_scene: delete the middle object, save the memory for
    continue_scene and preview its layers."""
    y = (len(OBJECTS) + 1) * ROW
    deleted = OBJECTS[int(DELETE) - 1][0]
    delete, decode, save, note, keep, preview, note2 = range(next_id, next_id + 7)
    g.add(Node(delete, "DeleteLayer", {"layer": DELETE, "regenerate_fraction": 0.4, "seed": 0,
                                       "grow": 2},
               {"memory": (memory, 0), "model": MODEL}, title=f"Delete layer {DELETE} ({deleted})",
               pos=(X_LAYER, y), size=(340, 200)))
    _decode_save(g, decode, save, (delete, 1), y,
                 f"layered_scene/{len(OBJECTS) + 2}_without_{deleted}")
    _note(g, note, LAYERED_NOTES[len(OBJECTS) + 2], (X_NOTE, y), (420, 250))
    _row_group(g, f"Step {len(OBJECTS) + 2}: delete the {deleted}", y, x0=X_LAYER)
    y += ROW
    g.add(Node(keep, "SaveLayerMemory",
               {"filename_prefix": MEMORY_PREFIX, "trajectory_storage": TRAJECTORY_STORAGE},
               {"memory": (delete, 0)}, title="Save the scene (for continue_scene)",
               pos=(X_LAYER, y), size=(340, 130)))
    g.add(Node(preview, "PreviewLayers", {"line_width": 0}, {"memory": (delete, 0), "vae": VAE_OUT},
               pos=(X_DECODE, y), size=SCENE_SIZE))
    _note(g, note2, LAYERED_NOTES[-1], (X_NOTE, y), (420, 420))
    _row_group(g, f"Step {len(OBJECTS) + 3}: save the scene", y, x0=X_LAYER)


def build() -> Graph:
    """layered_scene: background, three objects, delete one, save the memory, preview it."""
    g = Graph(NODE_DEFS)
    _loader(g)
    _note(g, 2, LAYERED_NOTES[0], (X_README, -360), (880, 760))
    _background(g)
    memory, next_id = 5, 10
    for k, obj in enumerate(OBJECTS):
        y = (k + 1) * ROW
        ids = range(next_id, next_id + 6)
        _box_layer(g, ids, y, obj, 100 + k + 1, memory, 9, f"Add layer {k + 1}: {obj[0]}",
                   f"layered_scene/{k + 2}_{obj[0]}")
        _note(g, next_id + 6, LAYERED_NOTES[k + 2], (X_NOTE, y), (420, 330))
        _row_group(g, f"Step {k + 2}: add the {obj[0]}", y)
        memory, next_id = ids[3], next_id + 7
    _delete_and_save(g, memory, next_id)
    return g


def build_continue() -> Graph:
    """continue_scene: load the memory layered_scene saved, add the deleted object back on top."""
    g = Graph(NODE_DEFS)
    _loader(g)
    _note(g, 2, CONTINUE_NOTES[0], (X_README, -360), (880, 880))
    # step 1: load
    g.add(Node(3, "LoadLayerMemory", {"file": MEMORY_FILE}, {}, title="Load the saved scene",
               pos=(X_LAYER, 0), size=(340, 130)))
    _decode_save(g, 4, 5, (3, 1), 0, "continue_scene/1_loaded")
    _note(g, 6, CONTINUE_NOTES[1], (X_NOTE, 0), (420, 330))
    _row_group(g, "Step 1: load the saved scene", 0, x0=X_LAYER)
    # step 2: one more layer
    name = RESTORE[0]
    _canvas(g, 7, ROW)
    _box_layer(g, range(8, 14), ROW, RESTORE, RESTORE_SEED, 3, 7,
               f"Add layer: {name} (back, in front)", f"continue_scene/2_{name}")
    _note(g, 14, CONTINUE_NOTES[2], (X_NOTE, ROW), (420, 400))
    _row_group(g, f"Step 2: add the {name} back", ROW)
    # step 3: inspect
    y = 2 * ROW
    g.add(Node(15, "ListLayers", {}, {"memory": (11, 0)}, pos=(X_LAYER, y), size=(340, 300)))
    g.add(Node(16, "PreviewLayers", {"line_width": 0}, {"memory": (11, 0), "vae": VAE_OUT},
               pos=(X_DECODE, y), size=SCENE_SIZE))
    _note(g, 17, CONTINUE_NOTES[3], (X_NOTE, y), (420, 300))
    _row_group(g, "Step 3: look at the layers", y, x0=X_LAYER)
    return g
