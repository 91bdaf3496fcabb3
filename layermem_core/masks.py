"""Mask maths at latent and token resolution.

A user's MASK may be any size with the image's aspect ratio; everything downstream works
on the latent grid (image / 8) or PixArt's token grid (latent / 2, patch size 2).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .errors import LayerMemoryError

# A token belongs to a layer when at least half of its 2x2 latent pixels are covered.
TOKEN_THRESHOLD = 0.5
PATCH = 2
ASPECT_TOLERANCE = 0.02
# Resized values below this are noise (anti-aliasing, a stray brush pixel): they become 0, so BCG
# keeps those latent pixels exact and a mask made only of them counts as empty.
NEGLIGIBLE = 1e-3


def to_latent_mask(mask: torch.Tensor, latent_hw: tuple[int, int],
                   input_name: str = "mask") -> torch.Tensor:
    """Resize a ComfyUI MASK ([H, W] or [1, H, W], values 0..1) to the latent grid as float32
    [h, w]."""
    if not isinstance(mask, torch.Tensor):
        raise LayerMemoryError(input_name, f"expected a MASK tensor, got {type(mask).__name__}",
                               "connect a MASK output")
    if mask.dim() == 3:
        if mask.shape[0] != 1:
            raise LayerMemoryError(input_name, f"got a batch of {mask.shape[0]} masks",
                                   "pass one mask (batch size 1)")
        mask = mask[0]
    if mask.dim() != 2 or mask.shape[0] < 1 or mask.shape[1] < 1:
        raise LayerMemoryError(input_name,
                               f"expected a [H, W] mask, got shape {tuple(mask.shape)}",
                               "connect a MASK output")
    h, w = latent_hw
    mh, mw = mask.shape
    if abs((mw / mh) / (w / h) - 1.0) > ASPECT_TOLERANCE:
        raise LayerMemoryError(
            input_name,
            f"mask is {mw}x{mh} (w x h) but the memory's image is {w * 8}x{h * 8}, another aspect "
            "ratio",
            f"draw the mask on a {w * 8}x{h * 8} canvas (any size with that aspect ratio is "
            "resized)",
        )
    m = mask.detach().to(device="cpu", dtype=torch.float32).clamp(0.0, 1.0)[None, None]
    if (mh, mw) != (h, w):
        mode = "area" if mh >= h and mw >= w else "bilinear"
        m = F.interpolate(m, size=(h, w), mode=mode,
                          **({} if mode == "area" else {"align_corners": False}))
    m = m[0, 0].clamp(0.0, 1.0)
    return torch.where(m < NEGLIGIBLE, torch.zeros_like(m), m).contiguous()


def grow(mask: torch.Tensor, pixels: int) -> torch.Tensor:
    """Dilate a [h, w] mask by `pixels` latent pixels (square structuring element)."""
    if pixels <= 0:
        return mask
    k = 2 * pixels + 1
    return F.max_pool2d(mask[None, None], kernel_size=k, stride=1, padding=pixels)[0, 0]


def feather(mask: torch.Tensor, pixels: int) -> torch.Tensor:
    """Soften the edge over about `pixels` latent pixels (separable box blur, applied twice)."""
    if pixels <= 0:
        return mask
    k = 2 * pixels + 1
    m = mask[None, None]
    kernel_h = torch.full((1, 1, 1, k), 1.0 / k)
    kernel_v = torch.full((1, 1, k, 1), 1.0 / k)
    for _ in range(2):
        m = F.conv2d(F.pad(m, (pixels, pixels, 0, 0), mode="replicate"), kernel_h)
        m = F.conv2d(F.pad(m, (0, 0, pixels, pixels), mode="replicate"), kernel_v)
    # Never shrink the hard core of the mask: feathering only adds a soft rim.
    return torch.maximum(m[0, 0], (mask >= 1.0).to(mask.dtype)).clamp(0.0, 1.0)


def token_mask(latent_mask: torch.Tensor, threshold: float = TOKEN_THRESHOLD) -> torch.Tensor:
    """Pool a [h, w] latent mask to PixArt's [h/2, w/2] token grid; bool, True where covered."""
    pooled = F.avg_pool2d(latent_mask[None, None].float(), kernel_size=PATCH, stride=PATCH)[0, 0]
    return pooled >= threshold


def support(mask: torch.Tensor) -> torch.Tensor:
    """Where a mask has any influence at all (bool)."""
    return mask > 0


def require_not_empty(mask: torch.Tensor, input_name: str = "mask") -> None:
    """A layer with an empty mask would change nothing: refuse it with the reason."""
    if not bool((mask > 0).any()):
        raise LayerMemoryError(
            input_name,
            "the mask is empty at latent resolution (all zeros after resizing to the image / 8 "
            "grid), so the layer would change nothing",
            "paint the region where the object goes (an all-ones mask replaces the whole picture)",
        )


def prepare_layer_mask(mask: torch.Tensor, latent_hw: tuple[int, int], grow_pixels: int,
                       feather_pixels: int, input_name: str = "mask") -> torch.Tensor:
    """User MASK -> latent mask used by BCG: resized, grown, feathered, checked for emptiness."""
    m = to_latent_mask(mask, latent_hw, input_name)
    m = grow(m, grow_pixels)
    m = feather(m, feather_pixels)
    require_not_empty(m, input_name)
    return m.contiguous()
