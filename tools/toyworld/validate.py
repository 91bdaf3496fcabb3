"""The oracle on rendered ground truth: pixel classes and per-box objects (why: it must be exact
on truth before its readings of decoded pictures mean anything)."""
from __future__ import annotations

import numpy as np

from . import oracle, world


def validate(n_scenes: int = 200, seed: int = 0, decode=None) -> dict[str, float]:
    """Pixel accuracy and the top object's (colour, shape) accuracy on `n_scenes` seeded scenes.

    `decode(image) -> image` (e.g. a VAE round trip) is applied before reading, when given. The
    top object is never occluded, so its box must read as its colour and shape."""
    rng = np.random.default_rng(seed)
    pixel_hits = pixels = obj_hits = objs = clear_hits = clear = 0
    for _ in range(n_scenes):
        scene = world.random_scene(rng, min_objects=1, max_objects=4)
        image, truth = world.render(scene)
        if decode is not None:
            image = decode(image)
        lab = oracle.labels(image)
        pixel_hits += int((lab == truth).sum())
        pixels += truth.size
        top = scene.objects[-1]
        reading = oracle.read_box(lab, top.box)
        hit = int(reading.object == (top.colour, top.shape))
        obj_hits += hit
        objs += 1
        if not any(o.colour == top.colour and _overlap(o.box, top.box) for o in scene.objects[:-1]):
            clear_hits += hit  # no same-colour object touches its box: nothing to merge with
            clear += 1
    return {"pixel_accuracy": pixel_hits / pixels, "object_accuracy": obj_hits / objs,
            "object_accuracy_distinct_colours": clear_hits / max(1, clear), "scenes": n_scenes}


def _overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]
