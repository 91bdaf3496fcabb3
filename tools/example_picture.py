"""Draws example_inputs/savanna_picture.jpg, the picture the edit_picture workflow starts from.

A procedural savanna (sky, sun, hills, grass, two acacias) so that the repository ships no
third-party photo; drawn once, committed, and redrawn only when this script changes.

    python3 -m tools.example_picture
"""
from __future__ import annotations

import random
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

OUT = Path(__file__).resolve().parents[1] / "example_inputs" / "savanna_picture.jpg"
W, H, HORIZON = 768, 512, 300


def _sky(draw: ImageDraw.ImageDraw) -> None:
    for y in range(HORIZON):
        t = y / HORIZON
        draw.line([(0, y), (W, y)], fill=(int(90 + 150 * t), int(150 + 80 * t), int(220 - 40 * t)))
    draw.ellipse([560, 60, 640, 140], fill=(255, 236, 170))


def _ground(draw: ImageDraw.ImageDraw, rng: random.Random) -> None:
    draw.polygon([(0, HORIZON), (150, 270), (330, 290), (520, 262), (768, 285), (W, H), (0, H)],
                 fill=(120, 130, 90))
    for y in range(HORIZON - 10, H):
        t = (y - HORIZON + 10) / (H - HORIZON + 10)
        for _ in range(18):
            x = rng.randrange(W)
            tone = rng.randrange(-25, 25)
            colour = (int(190 - 40 * t + tone), int(160 - 30 * t + tone), int(80 - 20 * t))
            draw.line([(x, y), (x + rng.randrange(-3, 4), y - rng.randrange(3, 10))], fill=colour)


def _acacia(draw: ImageDraw.ImageDraw, x: int, y: int, s: float) -> None:
    dark = (55, 50, 35)
    draw.line([(x, y), (x + 4 * s, y - 60 * s)], fill=dark, width=max(2, int(6 * s)))
    branch = max(1, int(3 * s))
    draw.line([(x + 4 * s, y - 60 * s), (x - 30 * s, y - 85 * s)], fill=dark, width=branch)
    draw.line([(x + 4 * s, y - 60 * s), (x + 40 * s, y - 88 * s)], fill=dark, width=branch)
    draw.ellipse([x - 75 * s, y - 110 * s, x + 85 * s, y - 78 * s], fill=(70, 85, 45))


def draw() -> Image.Image:
    rng = random.Random(7)
    img = Image.new("RGB", (W, H))
    d = ImageDraw.Draw(img)
    _sky(d)
    _ground(d, rng)
    _acacia(d, 230, 300, 1.0)  # inside the centre square that Upscale Image keeps
    _acacia(d, 560, 288, 0.6)
    return img.filter(ImageFilter.GaussianBlur(0.8))


if __name__ == "__main__":
    OUT.parent.mkdir(exist_ok=True)
    draw().save(OUT, quality=85)
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")
