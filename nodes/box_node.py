"""Layer Box: draw a box on the memory's picture in the graph; outputs the MASK for AddLayer or
EditLayer.

The box is four INT inputs in image pixels, so an API prompt sets it with numbers and gets the
same mask as SolidMask + MaskComposite; brush strokes are JSON text the node rasterises
(layermem_core/strokes.py), and `shape` picks the box, a dragged layer's own shape moved into the
box, the strokes, or both. After a run the node sends the memory's composite with every layer
outlined and numbered (web/layer_box.js draws it in the node and turns mouse drags into these
inputs).
"""
from __future__ import annotations

import torch
from comfy_api.latest import io, ui

from ..layermem_core import boxes, preview
from ..layermem_core import strokes as brush
from ..layermem_core.errors import LayerMemoryError
from ..layermem_core.model_checks import require_memory
from .history_nodes import decode
from .layer_choices import choices_ui
from .types import CATEGORY, memory_input

UI_KEY = "layer_box"  # the ui output key web/layer_memory.js reads (not "images": the frontend
# would also draw the picture under the node)
NO_PICTURE_GREY = 0.35  # the picture without a VAE: outlines on grey
MAX_SIDE = 16384
BOX, SHAPE, STROKES, BOX_STROKES = "box", "layer's shape", "strokes", "box + strokes"
SHAPES = (BOX, SHAPE, STROKES, BOX_STROKES)  # BOX first: the default, what older workflows did


def _box_input(name: str, default: int, tooltip: str, optional: bool = False) -> io.Input:
    """min 0, so a zero-size box reaches the node's own refusal, which says what to do."""
    return io.Int.Input(name, default=default, min=0, max=MAX_SIDE, step=1, tooltip=tooltip,
                        optional=optional)


def picture(memory, vae) -> torch.Tensor:
    """The composite the widget shows, [H, W, 3] at the memory's image size, layers outlined."""
    _, h, w = memory.latent_shape
    size = (h * boxes.LATENT_PIXELS, w * boxes.LATENT_PIXELS)
    image = None
    if vae is not None:
        image = decode(vae, memory.composite_latent()["samples"])[0]
        if tuple(image.shape[:2]) != size:  # another family's VAE: outlines would not line up
            image = None
    if image is None:
        image = torch.full((*size, 3), NO_PICTURE_GREY, dtype=torch.float32)
    return preview.annotate(image, [layer.latent_mask for layer in memory.layers[1:]])


def layer_outlines(memory) -> list[dict]:
    """Each object layer's bounding box in image pixels (the widget's handles to move layers)."""
    found = []
    for i, layer in enumerate(memory.layers[1:], start=1):
        box = boxes.latent_box(layer.latent_mask)
        if box is not None:
            found.append({"index": i, "name": layer.name, "box": list(box)})
    return found


def check_moved_layer(memory, layer: str) -> int | None:
    """A layer to move must be in this memory and not the background (EditLayer takes no mask for
    layer 0): refused here, before EditLayer samples anything. Returns its index (None: empty)."""
    if not layer.strip():
        return None
    index = memory.resolve(layer, "layer", allow_background=True)
    if index == 0:
        raise LayerMemoryError("layer", f"{layer!r} is layer 0, the background, which has no "
                                        "outline to move",
                               "drag an object's outline, or clear `layer` to draw a new box")
    return index


def make_mask(memory, shape: str, box: boxes.Box, stroke_text: str, layer: int | None,
              image_w: int, image_h: int) -> torch.Tensor:
    """The MASK `shape` asks for (every input it uses checked; unused ones are ignored)."""
    if shape not in SHAPES:
        raise LayerMemoryError("shape", f"{shape!r} is not a shape",
                               f"use one of {', '.join(repr(s) for s in SHAPES)}")
    if shape == SHAPE:
        if layer is None:
            raise LayerMemoryError("layer", f"shape is {SHAPE!r} but no layer is given",
                                   "drag a layer's outline on the picture (or type its index "
                                   "or name), or set shape to 'box'")
        return boxes.shape_in_box(memory.layers[layer].latent_mask, box, image_w, image_h)
    if shape == BOX:
        return boxes.box_mask(box, image_w, image_h)
    painted = brush.parse(stroke_text, image_w, image_h) if stroke_text.strip() else []
    if shape == STROKES:
        if not painted:
            raise LayerMemoryError("strokes", f"shape is {STROKES!r} but nothing is painted",
                                   "pick Brush on the Layer Box's picture and paint, or set "
                                   "shape to 'box'")
        base = torch.zeros((1, image_h, image_w), dtype=torch.float32)
    else:
        base = boxes.box_mask(box, image_w, image_h)
    mask = brush.paint(base, painted)
    if not bool((mask > 0).any()):
        raise LayerMemoryError("strokes", "the eraser removed everything: the mask is empty",
                               "paint with the brush again, or clear the strokes")
    return mask


class LayerBox(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="LayerMem_LayerMemoryBox",
            display_name="Layer Box (draw a mask)",
            category=CATEGORY,
            description="Draw where a layer goes on the picture itself: after a run the node shows "
                        "the memory's composite with every layer outlined and numbered; drag a "
                        "box on it (or drag a layer's outline to move it) and the box becomes "
                        "x, y, width, height; or paint a rough mask with Brush and Eraser (kept "
                        "as JSON text in `strokes`). Outputs a MASK at the memory's size, for "
                        "AddLayer's or EditLayer's mask (`shape` 'box': the same mask as "
                        "SolidMask + MaskComposite).",
            inputs=[
                memory_input("The memory the box is drawn on: its size is the mask's, its "
                             "composite is the picture shown."),
                _box_input("x", 0, "Left edge of the box in image pixels (0 = left)."),
                _box_input("y", 0, "Top edge of the box in image pixels (0 = top)."),
                _box_input("width", 256, "Box width in image pixels (the drag snaps to 8 px, "
                                         "one latent pixel); 0 is refused."),
                _box_input("height", 256, "Box height in image pixels."),
                io.Vae.Input("vae", optional=True,
                             tooltip="Decodes the composite for the picture; unconnected: the "
                                     "outlines on grey."),
                _box_input("picture_width", 0, "Width of the picture the box was drawn on (the "
                                               "widget sets it); another memory size is refused. "
                                               "0: not checked.", optional=True),
                _box_input("picture_height", 0, "Height of the picture the box was drawn on; 0: "
                                                "not checked.", optional=True),
                io.String.Input("layer", default="", optional=True,
                                tooltip="The layer whose outline you dragged (the widget sets it; "
                                        "empty for a new box). Passed on as the `layer` output: "
                                        "link it and the mask to EditLayer to move that layer "
                                        "(see shape)."),
                io.Combo.Input("shape", options=list(SHAPES), default=BOX, optional=True,
                               tooltip="What the mask is. 'box': 1 inside x, y, width, height. "
                                       "\"layer's shape\": the `layer`'s own mask moved (and "
                                       "scaled) from its outline's box into x, y, width, height, "
                                       "so EditLayer moves the object's shape, not a rectangle "
                                       "(a drag of an outline sets it). 'strokes': only what was "
                                       "painted with the brush and eraser (the box is ignored). "
                                       "'box + strokes': the box, then the strokes painted and "
                                       "erased on it in order."),
                io.String.Input("strokes", default="", optional=True,
                                tooltip="What the brush and eraser painted, as JSON text in image "
                                        "pixels: [{\"tool\": \"brush\" or \"eraser\", "
                                        "\"radius\": 24, \"points\": [[x, y], ...]}, ...] (the "
                                        "widget writes it). Each stroke covers the pixels within "
                                        "radius of its line; the eraser sets 0. Used by shape "
                                        "'strokes' and 'box + strokes'."),
            ],
            outputs=[io.Mask.Output(display_name="mask",
                                    tooltip="The mask `shape` says (1 inside the box by default), "
                                            "at the memory's image size: connect it to AddLayer's "
                                            "or EditLayer's mask."),
                     io.String.Output(display_name="layer",
                                      tooltip="The `layer` input as is: link it to EditLayer's "
                                              "layer with the mask to move the dragged layer.")],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, memory, x: int, y: int, width: int, height: int, vae=None,
                picture_width: int = 0, picture_height: int = 0, layer: str = "",
                shape: str = BOX, strokes: str = "") -> io.NodeOutput:
        memory = require_memory(memory)
        _, h, w = memory.latent_shape
        image_w, image_h = w * boxes.LATENT_PIXELS, h * boxes.LATENT_PIXELS
        boxes.check_drawn_on(int(picture_width), int(picture_height), image_w, image_h)
        index = check_moved_layer(memory, str(layer))
        box = boxes.Box(int(x), int(y), int(width), int(height))
        mask = make_mask(memory, str(shape), box, str(strokes), index, image_w, image_h)
        saved = ui.ImageSaveHelper.save_images(picture(memory, vae)[None], "LayerBox_temp",
                                               io.FolderType.temp, cls=None, compress_level=1)
        shown = {UI_KEY: [{**saved[0], "width": image_w, "height": image_h,
                           "layers": layer_outlines(memory)}]}
        return io.NodeOutput(mask, str(layer), ui={**shown, **choices_ui(memory)})
