"""The example workflows: what each graph holds, where its nodes sit, and its notes.

- `layered_scene`: builds the savanna scene layer by layer, deletes a layer, rerolls one (new
  seed), moves one (new mask), saves the scene as a layer memory file
  (`output/layer_memory/savanna_00001_.safetensors`) and previews its layers;
- `continue_scene`: loads that file and adds one more layer, so it runs after `layered_scene`;
- `edit_picture` (tools/picture_workflow.py): starts from a picture (LoadImage), adds a layer and
  re-prompts it;
- `sdxl_layered_scene`: layered_scene with an SDXL checkpoint (CheckpointLoaderSimple,
  CLIPTextEncodeSDXL);
- `flux_layered_scene`: layered_scene with FLUX.1-dev (UNETLoader, DualCLIPLoader type flux,
  VAELoader, CLIPTextEncodeFlux, FluxGuidance);
- `sd35_layered_scene`: layered_scene with SD3.5 Large (CheckpointLoaderSimple, TripleCLIPLoader,
  CLIPTextEncode);
- `sd15_layered_scene` (tools/sd15_workflow.py): an SD 1.5 checkpoint builds a lawn, a ball, a
  crate and a sign, then deletes the crate: the toy world's scene, which
  `run_workflow --toy-world` runs on the toy model and the README's first picture shows.

`RUN_ORDER` is the order in which they run in one ComfyUI; template file names carry it
(`UI_NAMES`: 1_layered_scene, 2_continue_scene, ...): ComfyUI lists a pack's templates in
file-system order (glob, unsorted) and frontend 1.27 shows them as listed.

The notes on the canvas are the Markdown files in tools/workflow_notes/<workflow>/ (in name order:
00 is the read-me, then one per step; the first line `# ...` is the note's title).
"""
from __future__ import annotations

import json

from tools import picture_workflow, sd15_workflow
from tools.workflow_graph import Graph, Node
from tools.workflow_nodes import (
    FLUX_CLIP_L,
    FLUX_UNET,
    FLUX_VAE,
    NODE_DEFS,
    SD35_CKPT,
    SD35_CLIP_G,
    SDXL_CKPT,
    T5,
)
from tools.workflow_parts import (
    COMPUTE,
    FLUX,
    MODEL,
    NEGATIVE_COLOR,
    NOTES_DIR,
    PIXART,
    POSITIVE_COLOR,
    ROW,
    SCENE_SIZE,
    SD35,
    SDXL,
    SIZE,
    VAE_OUT,
    X_DECODE,
    X_LAYER,
    X_MASK,
    X_NOTE,
    X_README,
    X_TEXT,
    Family,
    box_layer,
    box_mask,
    box_pixels,
    decode_save,
    edit_layer,
    inspect_row,
    models_note,
    note,
    read_notes,
    row_group,
)

# ---------------------------------------------------------------- the scene
# Multi-Edit Bench (dev70) scene "1" (workflow_notes/scene.json): background first, then the objects
# in mask order. Boxes are the bench's normalised [x0, y0, x1, y1] (x right, y down).
SCENE = json.loads((NOTES_DIR / "scene.json").read_text(encoding="utf-8"))
BACKGROUND, NEGATIVE = SCENE["background"], SCENE["negative"]
OBJECTS = tuple((o["name"], tuple(o["box"]), o["prompt"]) for o in SCENE["objects"])
DELETE = "leopard"  # the middle object, by name: its index (2) shifts after a delete, names do not
REROLL, REROLL_SEED = "cheetah", 111  # a new seed for the first object
MOVE, MOVE_SEED, MOVE_BY = "lion", 131, (192, 32)  # the lion's box, moved right and down (px)
# The second workflow puts the deleted object back, as a new top layer (scene 1 has no fourth).
RESTORE = next(o for o in OBJECTS if o[0] == DELETE)
RESTORE_SEED = 202
# SaveLayerMemory appends a counter as SaveImage does; the first save of a prefix is _00001_, and
# the node returns the name LoadLayerMemory lists for a file in the output folder:
# "<path> [output]".
MEMORY_PREFIX = "layer_memory/savanna"
MEMORY_FILE = f"{MEMORY_PREFIX}_00001_.safetensors [output]"
TRAJECTORY_STORAGE = "float32 (exact)"
RUN_ORDER = ("layered_scene", "continue_scene", "edit_picture", "sdxl_layered_scene",
             "flux_layered_scene", "sd35_layered_scene", "sd15_layered_scene")
UI_NAMES = {name: f"{i + 1}_{name}" for i, name in enumerate(RUN_ORDER)}


def _fill(memory_prefix: str) -> dict:
    memory_file = f"{memory_prefix}_00001_.safetensors [output]"
    return {"memory_file": memory_file, "memory_path": memory_file.removesuffix(" [output]"),
            "ckpt": SDXL_CKPT, "picture": picture_workflow.PICTURE, "unet": FLUX_UNET,
            "clip_l": FLUX_CLIP_L, "t5": T5, "vae": FLUX_VAE, "sd35_ckpt": SD35_CKPT,
            "clip_g": SD35_CLIP_G}


def _for_sdxl(text: str, out: str, cfg: float) -> str:
    """A layered_scene note for the SDXL graph: its output folder and cfg."""
    return (text.replace("layered_scene/", f"{out}/").replace("the paper's: ", "")
            .replace("cfg 4.5", f"cfg {cfg}"))


def _for_flux(text: str, out: str) -> str:
    """A layered_scene note for the FLUX graph: its output folder, sampler and cfg."""
    return (text.replace("layered_scene/", f"{out}/")
            .replace("the paper's: 1024x1024, 20 steps, dpmpp_2m / karras, cfg 4.5",
                     f"1024x1024, 20 steps, {FLUX.sampler} / {FLUX.scheduler}, cfg {FLUX.cfg}: "
                     "FLUX.1-dev is guidance-distilled, its guidance is in the prompts"))


def _for_sd35(text: str, out: str) -> str:
    """A layered_scene note for the SD3.5 graph: its output folder, sampler and cfg."""
    return (text.replace("layered_scene/", f"{out}/")
            .replace("the paper's: 1024x1024, 20 steps, dpmpp_2m / karras, cfg 4.5",
                     f"1024x1024, 20 steps, {SD35.sampler} / {SD35.scheduler}, cfg {SD35.cfg}"))


def _background(g: Graph, fam: Family, notes: list, out: str) -> None:
    """Step 1 of layered_scene: nodes 3 to 8."""
    fam.encode(g, 3, BACKGROUND, "Background prompt", (X_TEXT, 0), 400, POSITIVE_COLOR)
    fam.encode(g, 4, NEGATIVE, "Negative prompt", (X_MASK, 0), 570, NEGATIVE_COLOR)
    widgets = {"width": SIZE, "height": SIZE, "seed": 42, "steps": 20, "cfg": fam.cfg,
               "sampler_name": fam.sampler, "scheduler": fam.scheduler, "name": "background"}
    links = {"model": MODEL, "positive": (3, 0), "negative": (4, 0)}
    g.add(Node(5, "LayerMem_LayerMemory", widgets, links, pos=(X_LAYER, 0), size=(340, 330)))
    decode_save(g, 6, 7, (5, 1), 0, f"{out}/1_background")
    note(g, 8, notes[1], (X_NOTE, 0), (420, 330))
    row_group(g, "Step 1: background", 0)


def _edits(g: Graph, notes: list, memory: int, first: int, out: str) -> int:
    """Steps 5 to 7: delete the leopard, reroll the cheetah, move the lion; returns the last
    memory's node id."""
    step = len(OBJECTS) + 2
    y = (step - 1) * ROW
    deleted = DELETE
    delete, decode, save, note_id = range(first, first + 4)
    g.add(Node(delete, "LayerMem_DeleteLayer", {"layer": DELETE, "regenerate_fraction": 0.4,
                                                "seed": 0,
                                       "grow": 2, "unblended_fraction": 0.0, **COMPUTE},
               {"memory": (memory, 0), "model": MODEL}, title=f"Delete the {deleted}",
               pos=(X_LAYER, y), size=(340, 230)))
    # which layer is which before the delete: indices shift after it, so the graph names layers
    g.add(Node(first + 8, "LayerMem_ListLayers", {}, {"memory": (memory, 0)},
               title="Layers before the delete", pos=(X_MASK, y), size=(560, 200)))
    decode_save(g, decode, save, (delete, 1), y, f"{out}/{step}_without_{deleted}")
    note(g, note_id, notes[step], (X_NOTE, y), (420, 250))
    row_group(g, f"Step {step}: delete the {deleted}", y, x0=X_MASK)

    step, y = step + 1, y + ROW
    reroll, decode, save, note_id = range(first + 4, first + 8)
    edit_layer(g, reroll, delete, REROLL, REROLL_SEED, y, f"Reroll the {REROLL} (new seed)")
    decode_save(g, decode, save, (reroll, 1), y, f"{out}/{step}_{REROLL}_rerolled")
    note(g, note_id, notes[step], (X_NOTE, y), (420, 330))
    row_group(g, f"Step {step}: reroll the {REROLL}", y, x0=X_LAYER)

    step, y = step + 1, y + ROW
    composite, move, decode, save, note_id = range(first + 9, first + 14)
    index = next(k for k, o in enumerate(OBJECTS) if o[0] == MOVE)
    x0, y0, x1, y1 = box_pixels(OBJECTS[index][1])
    # the same box size, a new place: the Layer Box on the memory being edited, its layer set as
    # a drag of the lion's outline sets it
    moved = (x0 + MOVE_BY[0], y0 + MOVE_BY[1], x1 + MOVE_BY[0], y1 + MOVE_BY[1])
    box_mask(g, composite, MOVE, moved, reroll, y, layer=MOVE,
             title=f"Box: {MOVE}, moved (drag its outline)")
    edit_layer(g, move, reroll, MOVE, MOVE_SEED, y, f"Move the {MOVE} (new mask)",
               {"mask": (composite, 0), "layer": (composite, 1)})
    decode_save(g, decode, save, (move, 1), y, f"{out}/{step}_{MOVE}_moved")
    note(g, note_id, notes[step], (X_NOTE, y), (420, 250))
    row_group(g, f"Step {step}: move the {MOVE}", y, x0=X_MASK)
    return move


def _save(g: Graph, notes: list, memory: int, first: int, prefix: str) -> None:
    """The last step of layered_scene: save the memory for continue_scene, preview its layers."""
    step = len(OBJECTS) + 5
    y = (step - 1) * ROW
    keep, preview, note_id, table = range(first, first + 4)
    g.add(Node(keep, "LayerMem_SaveLayerMemory",
               {"filename_prefix": prefix, "trajectory_storage": TRAJECTORY_STORAGE},
               {"memory": (memory, 0)}, title="Save the scene (for continue_scene)",
               pos=(X_LAYER, y), size=(340, 130)))
    g.add(Node(preview, "LayerMem_PreviewLayers", {"line_width": 0},
               {"memory": (memory, 0), "vae": VAE_OUT}, pos=(X_DECODE, y), size=SCENE_SIZE))
    g.add(Node(table, "LayerMem_ListLayers", {}, {"memory": (memory, 0)}, title="Layers saved",
               pos=(X_MASK, y), size=(560, 200)))
    note(g, note_id, notes[-1], (X_NOTE, y), (420, 420))
    row_group(g, f"Step {step}: save the scene", y, x0=X_MASK)


def build(fam: Family = PIXART) -> Graph:
    """layered_scene: background, three objects, delete one, reroll one, move one, save the
    memory, preview it. With SDXL: sdxl_layered_scene, with FLUX: flux_layered_scene, with SD3.5:
    sd35_layered_scene (the same graph, other loader/encoder)."""
    sdxl, flux, sd35 = fam.name == "sdxl", fam.name == "flux", fam.name == "sd35"
    out = f"{fam.name}_layered_scene" if sdxl or flux or sd35 else "layered_scene"
    prefix = f"{MEMORY_PREFIX}_{fam.name}" if sdxl or flux or sd35 else MEMORY_PREFIX
    steps = read_notes("layered_scene", _fill(prefix))
    if sdxl:
        readme = read_notes("sdxl_layered_scene", _fill(prefix))[0]
        steps = [readme] + [(t, _for_sdxl(x, out, fam.cfg)) for t, x in steps[1:]]
    elif flux:
        readme = read_notes("flux_layered_scene", _fill(prefix))[0]
        steps = [readme] + [(t, _for_flux(x, out)) for t, x in steps[1:]]
    elif sd35:
        readme = read_notes("sd35_layered_scene", _fill(prefix))[0]
        steps = [readme] + [(t, _for_sd35(x, out)) for t, x in steps[1:]]
    else:
        steps[0] = read_notes("layered_scene", _fill(prefix), models_note(
            "Models: put the files here, then press `r` to refresh the lists"))[0]
    g = Graph(NODE_DEFS)
    fam.loader(g)
    note(g, 2, steps[0], (X_README, -360), (880, 760))
    _background(g, fam, steps, out)
    memory, next_id = 5, 10
    for k, obj in enumerate(OBJECTS):
        y = (k + 1) * ROW
        ids = range(next_id, next_id + 6)
        box_layer(g, fam, ids, y, obj, 100 + k + 1, memory, f"Add the {obj[0]}",
                  f"{out}/{k + 2}_{obj[0]}")
        note(g, next_id + 6, steps[k + 2], (X_NOTE, y), (420, 330))
        row_group(g, f"Step {k + 2}: add the {obj[0]}", y)
        memory, next_id = ids[3], next_id + 7
    memory = _edits(g, steps, memory, next_id, out)
    _save(g, steps, memory, next_id + 14, prefix)
    fam.relink(g)
    return g


def build_sdxl() -> Graph:
    return build(SDXL)


def build_flux() -> Graph:
    return build(FLUX)


def build_sd35() -> Graph:
    return build(SD35)


def build_continue() -> Graph:
    """continue_scene: load the memory layered_scene saved, add the deleted object back on top."""
    notes = read_notes("continue_scene", _fill(MEMORY_PREFIX),
                       models_note("Models: the same files as layered_scene"))
    g = Graph(NODE_DEFS)
    PIXART.loader(g)
    note(g, 2, notes[0], (X_README, -360), (880, 880))
    # step 1: load
    g.add(Node(3, "LayerMem_LoadLayerMemory", {"file": MEMORY_FILE}, {},
               title="Load the saved scene",
               pos=(X_LAYER, 0), size=(340, 130)))
    decode_save(g, 4, 5, (3, 1), 0, "continue_scene/1_loaded")
    note(g, 6, notes[1], (X_NOTE, 0), (420, 330))
    row_group(g, "Step 1: load the saved scene", 0, x0=X_LAYER)
    # step 2: one more layer
    name = RESTORE[0]
    box_layer(g, PIXART, range(8, 14), ROW, RESTORE, RESTORE_SEED, 3,
              f"Add the {name} back (on top)", f"continue_scene/2_{name}")
    note(g, 14, notes[2], (X_NOTE, ROW), (420, 400))
    row_group(g, f"Step 2: add the {name} back", ROW)
    # step 3: inspect
    y = 2 * ROW
    inspect_row(g, (15, 16, 17), 11, y, notes[3], 300, "Step 3: look at the layers")
    return g


def build_picture() -> Graph:
    notes = read_notes("edit_picture", _fill(MEMORY_PREFIX),
                       models_note("Models: the same files as layered_scene"))
    return picture_workflow.build(notes, NEGATIVE)


GRAPHS = {"layered_scene": build, "continue_scene": build_continue,
          "edit_picture": build_picture, "sdxl_layered_scene": build_sdxl,
          "flux_layered_scene": build_flux, "sd35_layered_scene": build_sd35,
          "sd15_layered_scene": sd15_workflow.build}
assert tuple(GRAPHS) == RUN_ORDER
