"""The three ways of putting an object into a toy scene that the tests and the bench compare,
each run through ComfyUI's nodes as a graph would: stock inpainting (SetLatentNoiseMask +
KSampler), AddLayer with MQD off (BCG only), AddLayer as shipped (BCG + MQD); and the reading
of a result (decode through the VAE, oracle).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from . import nodes as toy
from . import oracle, world


@dataclass(frozen=True)
class Settings:
    """Sampling settings shared by every method (one choice, stated in docs/toyworld.md)."""

    steps: int = 12
    cfg: float = 5.0
    sampler: str = "dpmpp_2m"
    scheduler: str = "karras"
    size: int = world.SIZE


def box_mask(box: tuple[int, int, int, int], size: int = world.SIZE) -> torch.Tensor:
    """[1, H, W] MASK, ones in the pixel box (x0, y0, x1, y1), x1/y1 exclusive."""
    x0, y0, x1, y1 = box
    m = torch.zeros(1, size, size)
    m[:, y0:y1, x0:x1] = 1.0
    return m


@torch.no_grad()
def decode(latent: dict) -> np.ndarray:
    """[H, W, 3] in [0, 1]: the latent through the toy VAE (ComfyUI's VAE.decode)."""
    return toy.vae_model().decode(latent["samples"])[0].float().cpu().numpy()


def node(host, name: str):
    return host.nodes.NODE_CLASS_MAPPINGS[name]


def background(host, prompt: str, seed: int, s: Settings):
    """LayerMemory node: (memory, latent)."""
    out = node(host, "LayerMem_LayerMemory").execute(toy.model(), toy.encode(prompt),
                                                     toy.encode(""),
                                            s.size, s.size, seed, s.steps, s.cfg, s.sampler,
                                            s.scheduler)
    return out.result[0], out.result[1]


def add_layer(host, memory, prompt: str, box, seed: int, use_mqd: bool = True):
    """AddLayer node with a box mask: (memory, latent)."""
    out = node(host, "LayerMem_AddLayer").execute(memory, toy.model(), toy.encode(prompt),
                                                  box_mask(box),
                                         seed, use_mqd=use_mqd)
    return out.result[0], out.result[1]


def delete_layer(host, memory, layer: int, seed: int, regenerate_fraction: float = 0.4):
    out = node(host, "LayerMem_DeleteLayer").execute(memory, toy.model(), str(layer),
                                                     regenerate_fraction,
                                            seed)
    return out.result[0], out.result[1]


def stock_inpaint(host, latent: dict, prompt: str, mask: torch.Tensor, seed: int, s: Settings):
    """ComfyUI's stock inpainting: SetLatentNoiseMask, then KSampler at denoise 1.0."""
    masked = host.nodes.SetLatentNoiseMask().set_mask(latent, mask)[0]
    return host.nodes.common_ksampler(toy.model(), seed, s.steps, s.cfg, s.sampler, s.scheduler,
                                      toy.encode(prompt), toy.encode(""), masked, denoise=1.0)[0]


def outside_latent_equal(before: dict, after: dict, box, size: int = world.SIZE) -> bool:
    """Bit-exact equality of the latents outside the box (boxes on the 8 px latent grid)."""
    x0, y0, x1, y1 = (v // 8 for v in box)
    keep = torch.ones(size // 8, size // 8, dtype=torch.bool)
    keep[y0:y1, x0:x1] = False
    a, b = before["samples"][0], after["samples"][0]
    return bool(torch.equal(a[:, keep], b[:, keep]))


def outside_change(before: np.ndarray, after: np.ndarray,
                   region: np.ndarray) -> tuple[float, float]:
    """(share of pixels outside `region` whose oracle class changed, PSNR there in dB)."""
    outside = ~region
    changed = (oracle.labels(before) != oracle.labels(after))[outside].mean()
    mse = float(((before - after) ** 2)[outside].mean())
    psnr = float("inf") if mse == 0 else 10.0 * np.log10(1.0 / mse)
    return float(changed), psnr


def box_region(box, size: int = world.SIZE) -> np.ndarray:
    m = np.zeros((size, size), dtype=bool)
    x0, y0, x1, y1 = box
    m[y0:y1, x0:x1] = True
    return m
