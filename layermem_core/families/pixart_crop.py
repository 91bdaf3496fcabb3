"""PixArt on a crop at its true place: the full picture's positional embedding for its tokens.

ComfyUI's PixArtMS.forward_orig computes the positional embedding inline from the input's
H, W (`x = x_embedder(x) + pos_embed(H, W)`), so a crop sampled as it is would be embedded as
a whole picture of its own size. `CropPositionEmbed` replaces `diffusion_model.x_embedder` (an
object patch on the run's clone, restored after the run) by a module returning
stock(x) + (full picture's embedding at the crop's tokens - the embedding forward_orig adds for
the crop's size): the sum is the full picture's embedding at the crop's tokens, up to rounding.
The difference is computed once per run (and device/dtype), with forward_orig's own formula
(pe_interpolation, base_size from c_res); the crop is at least 512 px a side (the family's
min_size), so round(c_res / 64) >= 1 and neither embedding divides by zero.
"""
from __future__ import annotations

import torch
from comfy.ldm.pixart.pixartms import get_2d_sincos_pos_embed_torch

KEY = "diffusion_model.x_embedder"


def pos_embed(dm, h: int, w: int, device, dtype) -> torch.Tensor:
    """[h/p * w/p, D]: the embedding PixArtMS.forward_orig adds for a latent of h x w."""
    c_res = (h + w) // 2
    pe_interpolation = dm.pe_interpolation
    if pe_interpolation is None or dm.pe_precision is not None:
        pe_interpolation = round(c_res / (512 / 8.0), dm.pe_precision or 0)
    base_size = (round(c_res / 64) * 64) // dm.patch_size
    if base_size < 1 or not pe_interpolation:
        raise ValueError(f"PixArt cannot embed a {w * 8}x{h * 8} px latent (base size 0)")
    return get_2d_sincos_pos_embed_torch(dm.hidden_size, h=h // dm.patch_size,
                                         w=w // dm.patch_size, pe_interpolation=pe_interpolation,
                                         base_size=base_size, device=device, dtype=dtype)


class CropPositionEmbed(torch.nn.Module):
    """The stock x_embedder plus the crop's positional correction (see module doc)."""

    def __init__(self, stock: torch.nn.Module, dm, full_hw: tuple[int, int],
                 box: tuple[int, int, int, int]):
        super().__init__()
        self.stock = stock  # the same module: weight patches and casting apply unchanged
        self.patch_size = stock.patch_size  # PixArtMS.unpatchify reads x_embedder.patch_size
        self.params = (dm.hidden_size, dm.pe_interpolation, dm.pe_precision, int(dm.patch_size))
        self.full_hw, self.box = full_hw, box
        self._delta: dict[tuple, torch.Tensor] = {}

    def delta(self, device, dtype) -> torch.Tensor:
        key = (str(device), dtype)
        if key not in self._delta:
            hidden, pe_interpolation, pe_precision, p = self.params
            dm = _Dims(hidden, pe_interpolation, pe_precision, p)
            (fh, fw), (top, left, h, w) = self.full_hw, self.box
            full = pos_embed(dm, fh, fw, "cpu", torch.float32).view(fh // p, fw // p, hidden)
            window = full[top // p:(top + h) // p, left // p:(left + w) // p].reshape(-1, hidden)
            own = pos_embed(dm, h, w, "cpu", torch.float32)
            self._delta[key] = (window - own).to(device=device, dtype=dtype)[None]
        return self._delta[key]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.stock(x)
        return out + self.delta(out.device, out.dtype)


class _Dims:
    """The attributes of PixArtMS that `pos_embed` reads (the module holds no model)."""

    def __init__(self, hidden_size, pe_interpolation, pe_precision, patch_size):
        self.hidden_size, self.pe_interpolation = hidden_size, pe_interpolation
        self.pe_precision, self.patch_size = pe_precision, patch_size


class CropPosition:
    """The crop's patch for one run: install it on the run's clone."""

    def __init__(self, full_hw: tuple[int, int], box: tuple[int, int, int, int]):
        self.full_hw, self.box = full_hw, box

    def install(self, patcher) -> list[str]:
        dm = patcher.get_model_object("diffusion_model")
        stock = patcher.get_model_object(KEY)
        if isinstance(stock, CropPositionEmbed):
            raise RuntimeError(f"{KEY} is already crop-patched")
        patcher.add_object_patch(KEY, CropPositionEmbed(stock, dm, self.full_hw, self.box))
        return [KEY]
