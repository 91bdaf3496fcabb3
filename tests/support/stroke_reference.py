"""An independent rasteriser of Layer Box strokes (JSON in image pixels), for the tests: every
pixel centre against every segment in float64 numpy, not the pack's torch code."""
from __future__ import annotations

import numpy as np


def reference(strokes: list, base: np.ndarray) -> np.ndarray:
    """An independent rasteriser: every pixel centre, every segment, in float64 numpy."""
    out = base.copy()
    h, w = out.shape
    py, px = np.mgrid[0:h, 0:w] + 0.5
    for s in strokes:
        pts = np.asarray(s["points"], dtype=np.float64)
        segs = list(zip(pts[:-1], pts[1:], strict=True)) if len(pts) > 1 else [(pts[0], pts[0])]
        hit = np.zeros_like(out, dtype=bool)
        for a, b in segs:
            d = b - a
            n = float(d @ d)
            t = np.zeros_like(px) if n == 0 else np.clip(((px - a[0]) * d[0] +
                                                          (py - a[1]) * d[1]) / n, 0, 1)
            hit |= (px - a[0] - t * d[0]) ** 2 + (py - a[1] - t * d[1]) ** 2 <= s["radius"] ** 2
        out[hit] = 1.0 if s["tool"] == "brush" else 0.0
    return out
