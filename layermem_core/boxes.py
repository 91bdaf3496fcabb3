"""Boxes in image pixels: the Layer Box node's mask and the layer outlines its widget draws on.

Pure module (torch only). A box is (x, y, width, height) in the memory's image pixels, x right and
y down, as SolidMask + MaskComposite take it; the mask is the same tensor those two nodes make,
so a pipeline can use either and get the same layer.
"""
from __future__ import annotations

from typing import NamedTuple

import torch

from .errors import LayerMemoryError

LATENT_PIXELS = 8  # image pixels per latent pixel: the grid a box snaps to in the widget


class Box(NamedTuple):
    x: int
    y: int
    width: int
    height: int


def check_box(box: Box, image_w: int, image_h: int) -> Box:
    """Refuses a box that has no area or leaves the picture (MaskComposite would crop it silently,
    making a smaller layer than the numbers say)."""
    draw = "drag a box on the Layer Box's picture (run the workflow once to see it)"
    for name in ("width", "height"):
        size = getattr(box, name)
        if size <= 0:
            raise LayerMemoryError(name, f"the box's {name} is {size}: a box of zero size makes "
                                         "an empty mask",
                                   f"{draw}, or type a {name} of at least 1")
    for name, value in (("x", box.x), ("y", box.y)):
        if value < 0:
            raise LayerMemoryError(name, f"{name} is {value}: the box starts outside the picture",
                                   f"use {name} >= 0 (0 = the picture's "
                                   f"{'left' if name == 'x' else 'top'} edge)")
    for name, start, size, side, limit in (("width", box.x, box.width, "x", image_w),
                                           ("height", box.y, box.height, "y", image_h)):
        if start + size > limit:
            raise LayerMemoryError(
                name, f"{side} + {name} = {start} + {size} = {start + size} is past the picture's "
                      f"{'right' if side == 'x' else 'bottom'} edge ({limit} px; the memory is "
                      f"{image_w}x{image_h})",
                f"use {side} + {name} <= {limit}, or {draw}")
    return box


def check_drawn_on(picture_w: int, picture_h: int, image_w: int, image_h: int) -> None:
    """The widget records the size of the picture the box was drawn on; a memory of another size
    would place the box somewhere else than where it was drawn."""
    if (picture_w, picture_h) == (0, 0) or (picture_w, picture_h) == (image_w, image_h):
        return
    raise LayerMemoryError(
        "picture_width", f"the box was drawn on a {picture_w}x{picture_h} picture but this memory "
                         f"is {image_w}x{image_h}",
        "run the workflow once so the Layer Box shows this memory's picture and drag the box "
        "again (or set picture_width and picture_height to 0 to use the numbers as they are)")


def box_mask(box: Box, image_w: int, image_h: int) -> torch.Tensor:
    """A ComfyUI MASK [1, H, W] float32: 1 inside the box, 0 elsewhere (checked first)."""
    check_box(box, image_w, image_h)
    mask = torch.zeros((1, image_h, image_w), dtype=torch.float32)
    mask[:, box.y:box.y + box.height, box.x:box.x + box.width] = 1.0
    return mask


def latent_box(latent_mask: torch.Tensor) -> Box | None:
    """The image-pixel bounding box of a layer's latent mask (where it is > 0); None if empty."""
    ys, xs = torch.nonzero(latent_mask > 0, as_tuple=True)
    if ys.numel() == 0:
        return None
    x0, y0 = int(xs.min()), int(ys.min())
    x1, y1 = int(xs.max()) + 1, int(ys.max()) + 1
    s = LATENT_PIXELS
    return Box(x0 * s, y0 * s, (x1 - x0) * s, (y1 - y0) * s)


def shape_in_box(latent_mask: torch.Tensor, box: Box, image_w: int, image_h: int) -> torch.Tensor:
    """A layer's own mask moved into `box`: its image-pixel bounding box is mapped onto the box
    (nearest pixel), so a drag of the outline moves the object's shape, not a rectangle. A box of
    the bounding box's size on the 8 px grid moves it exactly (EditLayer gets the same latent mask,
    shifted). A MASK [1, H, W] float32 (the box checked first; an empty layer is refused)."""
    check_box(box, image_w, image_h)
    found = latent_box(latent_mask)
    if found is None:
        raise LayerMemoryError("layer", "the layer's mask is empty: it has no shape to move",
                               "set shape to 'box' to draw its new place as a box")
    s = LATENT_PIXELS
    pixels = latent_mask.detach().to("cpu", torch.float32)
    pixels = pixels.repeat_interleave(s, 0).repeat_interleave(s, 1)
    crop = pixels[found.y:found.y + found.height, found.x:found.x + found.width]
    if (box.height, box.width) != tuple(crop.shape):
        crop = torch.nn.functional.interpolate(crop[None, None], size=(box.height, box.width),
                                               mode="nearest-exact")[0, 0]
    mask = torch.zeros((1, image_h, image_w), dtype=torch.float32)
    mask[0, box.y:box.y + box.height, box.x:box.x + box.width] = crop
    return mask
