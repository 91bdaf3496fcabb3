"""The sd15_layered_scene workflow: an SD 1.5 checkpoint (stock CheckpointLoaderSimple and
CLIPTextEncode) builds a lawn, a red ball, a blue crate and a yellow sign one layer at a time,
then deletes the crate (the middle layer) and shows the layers.

Why this scene: it is the toy world's scene (tools/toyworld/picture.py) at 512 px, so
`tools/run_workflow.py --toy-world` runs this very graph on the toy model (128 px, the toy
world's words) and the README's first picture is this template in the real frontend. Its boxes
are the toy picture's, times four: on the 8 px grid at both sizes.
"""
from __future__ import annotations

from tools.workflow_graph import Graph, Node
from tools.workflow_nodes import NODE_DEFS, SD15_CKPT
from tools.workflow_parts import (
    COMPUTE,
    MODEL,
    NEGATIVE_COLOR,
    POSITIVE_COLOR,
    ROW,
    SCENE_SIZE,
    SD15,
    VAE_OUT,
    X_DECODE,
    X_LAYER,
    X_MASK,
    X_NOTE,
    X_README,
    X_TEXT,
    box_layer,
    decode_save,
    note,
    read_notes,
    row_group,
)

NAME = "sd15_layered_scene"
SIZE = 512  # SD 1.5's own size
BACKGROUND = ("a wide lawn of short green grass seen from above, flat even light, "
              "photograph")
NEGATIVE = "blurry, low quality, text, watermark"
# (name, normalised box [x0, y0, x1, y1], prompt): the toy picture's boxes / 128
OBJECTS = (("ball", (16 / 128, 24 / 128, 64 / 128, 72 / 128),
            "a red rubber ball lying on the grass, photograph"),
           ("crate", (48 / 128, 40 / 128, 96 / 128, 88 / 128),
            "a blue wooden crate standing on the grass, photograph"),
           ("sign", (72 / 128, 16 / 128, 120 / 128, 64 / 128),
            "a yellow triangular warning sign on the grass, photograph"))
BACKGROUND_SEED, DELETE_SEED = 3, 77  # tools/toyworld/picture.py's
OBJECT_SEEDS = (41, 40, 40)  # python3 -m tools.toyworld.pick_seeds (its rule, in its text)
DELETE = "crate"  # the middle layer, by name


def _fill() -> dict:
    return {"ckpt": SD15_CKPT, "out": NAME}


def _background(g: Graph, notes: list) -> None:
    """Step 1: prompts (3, 4), Layer Memory (5), decode and save (6, 7), note (8)."""
    SD15.encode(g, 3, BACKGROUND, "Background prompt", (X_TEXT, 0), 400, POSITIVE_COLOR)
    SD15.encode(g, 4, NEGATIVE, "Negative prompt", (X_MASK, 0), 570, NEGATIVE_COLOR)
    widgets = {"width": SIZE, "height": SIZE, "seed": BACKGROUND_SEED, "steps": 20,
               "cfg": SD15.cfg, "sampler_name": SD15.sampler, "scheduler": SD15.scheduler,
               "name": "lawn"}
    g.add(Node(5, "LayerMem_LayerMemory", widgets, {"model": MODEL, "positive": (3, 0),
                                                    "negative": (4, 0)},
               pos=(X_LAYER, 0), size=(340, 330)))
    decode_save(g, 6, 7, (5, 1), 0, f"{NAME}/1_lawn")
    note(g, 8, notes[1], (X_NOTE, 0), (420, 330))
    row_group(g, "Step 1: the lawn", 0)


def _delete(g: Graph, notes: list, memory: int, y: int) -> int:
    """Step 5: List Layers before the delete (31), Delete Layer (32), decode and save (33, 34),
    note (35); returns Delete Layer's id."""
    # at the left: the Layer Box above grows past its row once it shows its picture
    g.add(Node(31, "LayerMem_ListLayers", {}, {"memory": (memory, 0)},
               title="Layers before the delete", pos=(X_TEXT, y), size=(400, 200)))
    g.add(Node(32, "LayerMem_DeleteLayer", {"layer": DELETE, "regenerate_fraction": 0.4,
                                            "seed": DELETE_SEED, "grow": 2,
                                            "unblended_fraction": 0.0, **COMPUTE},
               {"memory": (memory, 0), "model": MODEL}, title=f"Delete the {DELETE}",
               pos=(X_LAYER, y), size=(340, 230)))
    decode_save(g, 33, 34, (32, 1), y, f"{NAME}/5_without_{DELETE}")
    note(g, 35, notes[5], (X_NOTE, y), (420, 250))
    row_group(g, f"Step 5: delete the {DELETE}", y)
    return 32


def _look(g: Graph, notes: list, memory: int, y: int) -> None:
    """Step 6: List Layers (36), Preview Layers (37), note (38)."""
    g.add(Node(36, "LayerMem_ListLayers", {}, {"memory": (memory, 0)}, title="Layers at the end",
               pos=(X_MASK, y), size=(560, 200)))
    g.add(Node(37, "LayerMem_PreviewLayers", {"line_width": 0},
               {"memory": (memory, 0), "vae": VAE_OUT}, pos=(X_DECODE, y), size=SCENE_SIZE))
    note(g, 38, notes[6], (X_NOTE, y), (420, 300))
    row_group(g, "Step 6: look at the layers", y, x0=X_MASK)


def build() -> Graph:
    notes = read_notes(NAME, _fill())
    g = Graph(NODE_DEFS)
    SD15.loader(g)
    note(g, 2, notes[0], (X_README, -360), (880, 760))
    _background(g, notes)
    memory, next_id = 5, 10
    for k, obj in enumerate(OBJECTS):
        y = (k + 1) * ROW
        ids = range(next_id, next_id + 6)
        box_layer(g, SD15, ids, y, obj, OBJECT_SEEDS[k], memory, f"Add the {obj[0]}",
                  f"{NAME}/{k + 2}_{obj[0]}", size=SIZE)
        note(g, next_id + 6, notes[k + 2], (X_NOTE, y), (420, 330))
        row_group(g, f"Step {k + 2}: add the {obj[0]}", y)
        memory, next_id = ids[3], next_id + 7
    deleted = _delete(g, notes, memory, 4 * ROW)
    _look(g, notes, deleted, 5 * ROW)
    return g
