"""Look into a memory: outline every layer's mask on the decoded composite, numbered in mask order.

Pure module (torch, numpy, PIL; no ComfyUI import). Images are ComfyUI IMAGEs: float32
[B, H, W, 3] in 0..1. Nothing passed in is written to.
"""
from __future__ import annotations

import colorsys

import numpy as np
import torch
import torch.nn.functional as F

OUTLINE_THRESHOLD = 0.5  # a soft (feathered) mask is outlined where it is at least half on


def palette(n: int) -> list[tuple[int, int, int]]:
    """n well separated, saturated colours (golden-ratio hues), the same for a layer index every
    time."""
    colours = []
    for i in range(n):
        h = (0.02 + i * 0.618033988749895) % 1.0
        r, g, b = colorsys.hsv_to_rgb(h, 0.95, 1.0)
        colours.append((int(r * 255), int(g * 255), int(b * 255)))
    return colours


def region(mask: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """A latent-grid mask [h, w] as a bool region at image size (H, W), nearest neighbour."""
    m = mask.detach().to("cpu", torch.float32)
    big = F.interpolate(m[None, None], size=size, mode="nearest")[0, 0]
    r = big >= OUTLINE_THRESHOLD
    return r if bool(r.any()) else big > 0


def outline(region_mask: torch.Tensor, width: int) -> torch.Tensor:
    """The inner border of a bool region, `width` pixels thick; the image edge counts as outside."""
    m = region_mask.to(torch.float32)[None, None]
    padded = F.pad(m, (width, width, width, width), value=0.0)
    eroded = -F.max_pool2d(-padded, kernel_size=2 * width + 1, stride=1)
    return region_mask & ~(eroded[0, 0] > 0.5)


def default_line_width(height: int, width: int) -> int:
    return max(2, round(min(height, width) / 256))


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except (TypeError, ValueError, OSError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def annotate(image: torch.Tensor, masks: list[torch.Tensor], line_width: int = 0) -> torch.Tensor:
    """One IMAGE [H, W, 3] with masks[k] outlined in palette colour k and labelled k + 1.

    `masks` are the object layers in mask order (layer 1 first); the background has no outline.
    Labels are drawn after all outlines, so a newer outline never hides an older number.
    """
    from PIL import Image, ImageDraw

    h, w = int(image.shape[0]), int(image.shape[1])
    lw = line_width if line_width > 0 else default_line_width(h, w)
    out = image.detach().to("cpu", torch.float32).clamp(0.0, 1.0).clone()
    colours = palette(len(masks))
    regions = [region(m, (h, w)) for m in masks]
    for r, colour in zip(regions, colours, strict=True):
        border = outline(r, lw)
        out[border] = torch.tensor(colour, dtype=torch.float32) / 255.0
    pil = Image.fromarray((out.numpy() * 255.0 + 0.5).astype(np.uint8))
    draw = ImageDraw.Draw(pil)
    size = max(10, round(min(h, w) / 24))
    font = _font(size)
    for k, (r, colour) in enumerate(zip(regions, colours, strict=True)):
        if not bool(r.any()):
            continue
        ys, xs = torch.nonzero(r, as_tuple=True)
        x0, y0 = int(xs.min()) + lw, int(ys.min()) + lw
        text = str(k + 1)
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        pad = max(2, size // 6)
        bw, bh = right - left + 2 * pad, bottom - top + 2 * pad
        x0, y0 = min(x0, max(0, w - bw)), min(y0, max(0, h - bh))
        draw.rectangle((x0, y0, x0 + bw - 1, y0 + bh - 1), fill=colour)
        luminance = 0.299 * colour[0] + 0.587 * colour[1] + 0.114 * colour[2]
        draw.text((x0 + pad - left, y0 + pad - top), text, font=font,
                  fill=(0, 0, 0) if luminance > 140 else (255, 255, 255))
    return torch.from_numpy(np.asarray(pil, dtype=np.float32) / 255.0)

