"""Reads a decoded picture: per pixel the nearest palette class, per box the object there.

Why nearest-palette and shape templates instead of a learned classifier: the world has a known
palette and four known shapes, so a fixed rule can be validated on rendered truth (it must be
exact there) and cannot be tuned toward a result.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import world

MIN_OBJECT_SHARE = 0.12  # of the box's pixels: less than this of one object colour = no object
MIN_OBJECT_PIXELS = 24


@dataclass(frozen=True)
class Reading:
    """What the oracle sees in a box: an object (colour, shape) or only a background."""

    colour: str | None  # None: no object colour covers enough of the box
    shape: str | None
    background: str  # the most common background class in the box (or the picture)
    share: float  # the object colour's share of the box's pixels
    iou: float  # the best shape template's overlap with the object's pixels

    @property
    def object(self) -> tuple[str, str] | None:
        return (self.colour, self.shape) if self.colour is not None else None


def labels(image: np.ndarray) -> np.ndarray:
    """[H, W] int64: each pixel's nearest palette class (image [H, W, 3] in [0, 1])."""
    pal = world.palette()
    d = ((image[:, :, None, :].astype(np.float32) - pal[None, None]) ** 2).sum(-1)
    return d.argmin(-1)


def _best_shape(mask: np.ndarray) -> tuple[str, float]:
    """The shape whose template, fitted to the mask's bounding box, overlaps the mask most."""
    ys, xs = np.nonzero(mask)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    crop = mask[y0:y1, x0:x1]
    best, best_iou = world.SHAPES[0], -1.0
    for shape in world.SHAPES:
        t = world.shape_mask(shape, x1 - x0, y1 - y0)
        iou = float((t & crop).sum()) / float((t | crop).sum())
        if iou > best_iou:
            best, best_iou = shape, iou
    return best, best_iou


def read_box(label_map: np.ndarray, box: tuple[int, int, int, int],
             min_share: float = MIN_OBJECT_SHARE) -> Reading:
    """The object in `box` and its background: among object colours covering enough of the box,
    the one whose pixels best fill a shape template fitted to them (a clipped neighbour fits
    badly), so an object in front reads as itself even where another colour covers more."""
    x0, y0, x1, y1 = box
    region = label_map[y0:y1, x0:x1]
    n_bg = len(world.BG_NAMES)
    counts = np.bincount(region.ravel(), minlength=world.N_CLASSES)
    background = world.BG_NAMES[int(counts[:n_bg].argmax())]
    best: Reading | None = None
    best_score = -1.0
    for c in np.argsort(-counts[n_bg:]):  # object colours, most common first
        pixels = int(counts[n_bg + c])
        share = pixels / region.size
        if pixels < MIN_OBJECT_PIXELS or share < min_share:
            break
        shape, iou = _best_shape(region == n_bg + c)
        score = share * iou * iou  # a whole shape fitted to the box beats a clipped neighbour
        if score > best_score:
            best, best_score = Reading(world.COLOUR_NAMES[c], shape, background, share, iou), score
    return best if best is not None else Reading(None, None, background, 0.0, 0.0)


def read_picture_box(image: np.ndarray, box: tuple[int, int, int, int],
                     min_share: float = MIN_OBJECT_SHARE) -> Reading:
    return read_box(labels(image), box, min_share)


def visible_mask(scene: world.Scene, index: int, size: int = world.SIZE) -> np.ndarray:
    """[H, W] bool: the pixels of object `index` that no later object covers (its visible part)."""
    masks = []
    for obj in scene.objects:
        m = np.zeros((size, size), dtype=bool)
        x0, y0, x1, y1 = obj.box
        m[y0:y1, x0:x1] = world.shape_mask(obj.shape, x1 - x0, y1 - y0)
        masks.append(m)
    visible = masks[index].copy()
    for later in masks[index + 1:]:
        visible &= ~later
    return visible
