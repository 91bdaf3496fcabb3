"""Brush strokes in image pixels: the Layer Box's painted mask, rasterised on the server.

Pure module (torch and json only). The widget stores what was painted as JSON text, so a pipeline
posting to /prompt sends the same text and gets the same mask without the frontend:

    [{"tool": "brush", "radius": 24, "points": [[120, 80], [160, 96]]},
     {"tool": "eraser", "radius": 8, "points": [[150, 90]]}]

A stroke covers every pixel whose centre lies within `radius` of the polyline through its points
(a round brush dragged along it; one point is a dot). Strokes apply in order: the brush sets 1,
the eraser sets 0, so an eraser stroke cuts what was painted (or the box) before it.
"""
from __future__ import annotations

import json
import math
from typing import NamedTuple

import torch

from .errors import LayerMemoryError

INPUT = "strokes"
TOOLS = ("brush", "eraser")
MAX_STROKES = 10000
FORMAT = ('a JSON list of strokes, each {"tool": "brush" or "eraser", "radius": pixels > 0, '
          '"points": [[x, y], ...]} in image pixels (the Layer Box widget writes it when you '
          'paint)')


class Stroke(NamedTuple):
    tool: str
    radius: float
    points: tuple[tuple[float, float], ...]


def _refuse(problem: str, fix: str = f"give {FORMAT}, or clear it") -> LayerMemoryError:
    return LayerMemoryError(INPUT, problem, fix)


def _number(value, what: str) -> float:
    """A finite JSON number (bool is not one, though Python says it is an int)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _refuse(f"{what} is {json.dumps(value)}, not a number")
    return float(value)


def _stroke(i: int, item, image_w: int, image_h: int) -> Stroke:
    if not isinstance(item, dict):
        raise _refuse(f"stroke {i} is {type(item).__name__}, not an object")
    unknown = sorted(set(item) - {"tool", "radius", "points"})
    if unknown:
        raise _refuse(f"stroke {i} has unknown keys {unknown}")
    tool = item.get("tool")
    if tool not in TOOLS:
        raise _refuse(f"stroke {i}'s tool is {json.dumps(tool)}", 'use "brush" or "eraser"')
    radius = _number(item.get("radius"), f"stroke {i}'s radius")
    if radius <= 0:
        raise _refuse(f"stroke {i}'s radius is {radius:g}: a brush of no size paints nothing",
                      "use a radius of at least 1 (image pixels)")
    points = item.get("points")
    if not isinstance(points, list) or not points:
        raise _refuse(f"stroke {i} has no points", "give at least one [x, y] point")
    out = []
    for k, p in enumerate(points):
        if not isinstance(p, list) or len(p) != 2:
            raise _refuse(f"stroke {i}'s point {k} is {json.dumps(p)}, not [x, y]")
        x, y = (_number(c, f"stroke {i}'s point {k}") for c in p)
        if not (0 <= x <= image_w and 0 <= y <= image_h):
            raise _refuse(f"stroke {i}'s point {k} ({x:g}, {y:g}) is outside the picture "
                          f"(0..{image_w}, 0..{image_h}; the memory is {image_w}x{image_h})",
                          "paint on the Layer Box's picture (run the workflow once to see it), "
                          "or keep every point inside the picture")
        out.append((x, y))
    return Stroke(tool, radius, tuple(out))


def parse(text: str, image_w: int, image_h: int) -> list[Stroke]:
    """The strokes in `text`, checked against the picture; refuses what cannot be painted."""
    if not isinstance(text, str):
        raise _refuse(f"got {type(text).__name__}, not text")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise _refuse(f"not JSON ({e.msg} at line {e.lineno}, column {e.colno})") from None
    if not isinstance(data, list):
        raise _refuse(f"the JSON is {type(data).__name__}, not a list of strokes")
    if len(data) > MAX_STROKES:
        raise _refuse(f"{len(data)} strokes, more than {MAX_STROKES}",
                      "clear the strokes and paint fewer, longer ones")
    return [_stroke(i, item, image_w, image_h) for i, item in enumerate(data)]


def _segment(mask: torch.Tensor, a, b, radius: float, value: float) -> None:
    """Sets `value` where a pixel's centre is within `radius` of segment a-b (in place)."""
    h, w = mask.shape
    x0 = max(0, math.floor(min(a[0], b[0]) - radius))
    x1 = min(w, math.ceil(max(a[0], b[0]) + radius) + 1)
    y0 = max(0, math.floor(min(a[1], b[1]) - radius))
    y1 = min(h, math.ceil(max(a[1], b[1]) + radius) + 1)
    if x0 >= x1 or y0 >= y1:
        return
    px = torch.arange(x0, x1, dtype=torch.float64)[None, :] + 0.5
    py = torch.arange(y0, y1, dtype=torch.float64)[:, None] + 0.5
    dx, dy = b[0] - a[0], b[1] - a[1]
    length2 = dx * dx + dy * dy
    if length2 > 0:
        t = (((px - a[0]) * dx + (py - a[1]) * dy) / length2).clamp(0.0, 1.0)
    else:
        t = torch.zeros(1, 1, dtype=torch.float64)
    d2 = (px - (a[0] + t * dx)) ** 2 + (py - (a[1] + t * dy)) ** 2
    region = mask[y0:y1, x0:x1]
    region[d2 <= radius * radius] = value


def paint(base: torch.Tensor, strokes: list[Stroke]) -> torch.Tensor:
    """`base` ([1, H, W] float32, not changed) with the strokes painted on it, in order."""
    mask = base[0].clone()
    for s in strokes:
        value = 1.0 if s.tool == "brush" else 0.0
        ends = s.points if len(s.points) > 1 else s.points * 2  # one point: a dot
        pairs = zip(ends[:-1], ends[1:], strict=True)
        for a, b in pairs:
            _segment(mask, a, b, s.radius, value)
    return mask[None]
