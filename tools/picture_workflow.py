"""The edit_picture workflow: a picture from ComfyUI's input folder becomes layer 0 of a memory
(LoadImage -> Upscale Image -> LayerMemoryFromImage), then a giraffe is added in a box and
re-prompted into an elephant (EditLayer with a new positive prompt), and the layers are listed.

The picture is example_inputs/savanna_picture.jpg (drawn by tools/example_picture.py); the
headless runs copy example_inputs/ into the server's input folder.
"""
from __future__ import annotations

from tools.workflow_graph import Graph, Node
from tools.workflow_nodes import NODE_DEFS
from tools.workflow_parts import (
    MODEL,
    NEGATIVE_COLOR,
    PIXART,
    POSITIVE_COLOR,
    ROW,
    SIZE,
    VAE_OUT,
    X_LAYER,
    X_MASK,
    X_NOTE,
    X_README,
    X_TEXT,
    box_layer,
    decode_save,
    edit_layer,
    inspect_row,
    note,
    row_group,
)

PICTURE = "savanna_picture.jpg"
OUT = "edit_picture"
PICTURE_PROMPT = ("A wide savanna under a clear blue sky: golden dry grass, low green hills on the "
                  "horizon, two flat-topped acacia trees and a pale sun.")
ADD = ("giraffe", (0.5, 0.25, 0.75, 0.75),
       "A tall giraffe standing in the grass, its patterned coat lit by the sun, long neck raised.")
REPROMPT = ("elephant", "A grey African elephant standing in the grass, large ears spread, "
            "its trunk hanging down, sunlight on its wrinkled skin.")


def _picture(g: Graph, notes: list) -> None:
    """Step 1: LoadImage (3), Upscale Image (4), note (6)."""
    g.add(Node(3, "LoadImage", {"image": PICTURE}, {}, title="Your picture",
               pos=(X_TEXT, 0), size=(400, 420)))
    g.add(Node(4, "ImageScale", {"upscale_method": "lanczos", "width": SIZE, "height": SIZE,
                                 "crop": "center"}, {"image": (3, 0)},
               title="Scene size (crop and scale)", pos=(X_MASK, 0), size=(270, 170)))
    note(g, 6, notes[1], (X_NOTE, 0), (420, 250))
    row_group(g, "Step 1: your picture", 0)


def _memory(g: Graph, notes: list, negative: str) -> None:
    """Step 2: prompts (7, 8), LayerMemoryFromImage (9), decode and save (10, 11), note (12)."""
    y = ROW
    PIXART.encode(g, 7, PICTURE_PROMPT, "What the picture shows", (X_TEXT, y), 400,
                  POSITIVE_COLOR)
    PIXART.encode(g, 8, negative, "Negative prompt", (X_MASK, y), 570, NEGATIVE_COLOR)
    widgets = {"steps": 20, "cfg": PIXART.cfg, "sampler_name": "dpmpp_2m", "scheduler": "karras",
               "seed": 0, "name": "picture"}
    links = {"model": MODEL, "vae": VAE_OUT, "image": (4, 0), "positive": (7, 0),
             "negative": (8, 0)}
    g.add(Node(9, "LayerMem_LayerMemoryFromImage", widgets, links, pos=(X_LAYER, y), size=(340,
                                                                                           330)))
    decode_save(g, 10, 11, (9, 1), y, f"{OUT}/1_picture")
    note(g, 12, notes[2], (X_NOTE, y), (420, 330))
    row_group(g, "Step 2: the picture becomes layer 0", y)


def _reprompt(g: Graph, notes: list) -> None:
    """Step 4: the new prompt (20), EditLayer (21), decode and save (22, 23), note (24)."""
    y = 3 * ROW
    name, prompt = REPROMPT
    PIXART.encode(g, 20, prompt, f"New prompt: {name}", (X_TEXT, y), 400, POSITIVE_COLOR)
    edit_layer(g, 21, 16, ADD[0], 0, y, f"Re-prompt the {ADD[0]} ({name})",
               {"positive": (20, 0)}, name=name)
    decode_save(g, 22, 23, (21, 1), y, f"{OUT}/3_{name}")
    note(g, 24, notes[4], (X_NOTE, y), (420, 330))
    row_group(g, f"Step 4: re-prompt it ({name})", y)


def build(notes: list[tuple[str, str]], negative: str) -> Graph:
    """edit_picture; `notes` from tools/workflow_notes/edit_picture/."""
    g = Graph(NODE_DEFS)
    PIXART.loader(g)
    note(g, 2, notes[0], (X_README, -360), (880, 760))
    _picture(g, notes)
    _memory(g, notes, negative)
    box_layer(g, PIXART, range(13, 19), 2 * ROW, ADD, 7, 9, f"Add a {ADD[0]}",
              f"{OUT}/2_{ADD[0]}")
    note(g, 19, notes[3], (X_NOTE, 2 * ROW), (420, 300))
    row_group(g, f"Step 3: add a {ADD[0]}", 2 * ROW)
    _reprompt(g, notes)
    y = 4 * ROW
    inspect_row(g, (25, 26, 27), 21, y, notes[5], 260, "Step 5: look at the layers")
    return g
