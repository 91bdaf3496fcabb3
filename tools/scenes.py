"""Small helpers to build conditioning, masks and fingerprints of memories in tests and
benchmarks."""
from __future__ import annotations

import hashlib

import torch


def cond(seed: int, tokens: int = 6, width: int = 512, height: int = 512,
         micro: bool = True) -> list:
    """A CONDITIONING with a random T5-XXL-shaped embedding (the T5 itself is too large for CPU
    tests)."""
    g = torch.Generator().manual_seed(seed)
    extras = {"width": width, "height": height} if micro else {}
    return [[torch.randn(1, tokens, 4096, generator=g) * 0.5, extras]]


def negative(width: int = 512, height: int = 512, micro: bool = True) -> list:
    return [[torch.zeros(1, 1, 4096), {"width": width, "height": height} if micro else {}]]


def box_mask(size: int, x0: float, y0: float, x1: float, y1: float,
             canvas: int | None = None) -> torch.Tensor:
    """A [1, H, W] MASK with ones in the normalised box [x0, x1) x [y0, y1) (x right, y down)."""
    n = canvas or size
    m = torch.zeros(1, n, n)
    m[:, int(y0 * n):int(y1 * n), int(x0 * n):int(x1 * n)] = 1.0
    return m


def memory_digest(memory) -> str:
    """Hash of every tensor (bytes, shape, dtype) and the metadata of a memory."""
    h = hashlib.sha256()
    for name, t in memory.tensors():
        h.update(name.encode())
        h.update(str((tuple(t.shape), str(t.dtype))).encode())
        data = t.detach().cpu().contiguous()
        h.update(data.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    for layer in memory.layers:
        h.update(repr((layer.name, layer.seed, layer.prompt, layer.positive.extras)).encode())
    return h.hexdigest()
