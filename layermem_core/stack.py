"""Keeping every stored composite of a layer stack consistent after an edit.

A memory stores, per layer k, the composite trajectory T_k: the picture made of layers 0..k
(model inputs at every call and the final latent). BCG built T_k from the layer below as
T_k = lerp(T_{k-1}, S_k, m_k) at every stored point, where S_k is what the sampler made of layer
k and m_k its mask. An edit changes some composite; every composite above it must then be
rebuilt from the new one below, or a removed object lives on in them (hidden under newer
layers, or as (1 - m) of it in a newer layer's soft rim).

`recompose` rebuilds them without sampling, exactly where possible:
  m_k == 1          T'_k = T_k               (the newer layer hides everything below)
  m_k == 0          T'_k = T'_{k-1}          (nothing of layer k there)
  0 < m_k < 1       T'_k = T_k + (1 - m_k) (T'_{k-1} - T_{k-1})
the last being lerp(T'_{k-1}, S_k, m_k) with S_k eliminated. Only the region where the new
composite below differs from the old one is touched, so everything else keeps its bits.

Pure module (torch only).
"""
from __future__ import annotations

from dataclasses import replace

import torch

from .trajectory import Trajectory


def _points(t: Trajectory) -> torch.Tensor:
    """Every stored point of a trajectory as one [calls + 1, C, h, w] tensor (the final last)."""
    return torch.cat([t.x, t.final[None]])


def _from_points(t: Trajectory, points: torch.Tensor) -> Trajectory:
    return Trajectory(t.sigmas, t.steps, points[:-1].contiguous(), points[-1].contiguous())


def changed_region(old: Trajectory, new: Trajectory) -> torch.Tensor:
    """[h, w] bool: where two trajectories of one schedule differ at any stored point."""
    return (_points(old) != _points(new)).flatten(0, 1).any(dim=0)


def reblend(composite: Trajectory, old_below: Trajectory, new_below: Trajectory, mask: torch.Tensor,
            region: torch.Tensor) -> Trajectory:
    """Layer composite `composite` (made over `old_below`)
    rebuilt over `new_below` inside `region`."""
    t, o, b = _points(composite), _points(old_below), _points(new_below)
    m = mask.to(t.dtype)
    soft = t + (1.0 - m) * (b - o)
    rebuilt = torch.where(m >= 1.0, t, torch.where(m <= 0.0, b, soft))
    return _from_points(composite, torch.where(region.to(torch.bool), rebuilt, t))


def recompose(upper: list, old_below: Trajectory, new_below: Trajectory) -> list:
    """The layers `upper` (oldest first) with their composites rebuilt over a changed layer below.

    `old_below` is the composite they were made over, `new_below` the one that replaces it.
    Returns new Layer values; the ones passed in are not changed.
    """
    rebuilt = []
    for layer in upper:
        region = changed_region(old_below, new_below)
        if not bool(region.any()):
            rebuilt.extend(upper[len(rebuilt):])
            break
        new_t = reblend(layer.trajectory, old_below, new_below, layer.latent_mask, region)
        rebuilt.append(replace(layer, trajectory=new_t))
        old_below, new_below = layer.trajectory, new_t
    return rebuilt


def owners(layers: list) -> torch.Tensor:
    """[h, w] int64: per latent pixel, the newest layer whose mask is above 0 there.

    That layer's composite is the lowest one that shows the pixel as the top of the stack shows
    it: every newer composite equals it there (their masks are 0), every older one lacks it.
    """
    owner = torch.zeros(layers[0].latent_mask.shape, dtype=torch.int64)
    for k, layer in enumerate(layers[1:], start=1):
        owner = torch.where(layer.latent_mask > 0, torch.full_like(owner, k), owner)
    return owner


def write_tail(layers: list, region: torch.Tensor, first_call: int, tail: Trajectory,
               whole_picture: bool = False) -> list:
    """The whole stack `layers` with `tail` (calls from `first_call` on, and the final) written
    into `region` (everywhere with `whole_picture`, an unforced tail).

    Where a heal or tail lives: at each pixel, in the composite of the pixel's owner (`owners`)
    and every composite above it. So a later verb that rebuilds any composite from the one below
    keeps it, unless that verb's own region covers the pixel (then its owner is re-made); and
    history at a level shows what the stack shows there. Composites below the owner are left
    as they were: they never showed that pixel on top.
    """
    r = torch.ones_like(region, dtype=torch.bool) if whole_picture else region.to(torch.bool)
    owner = owners(layers)
    out = []
    for k, layer in enumerate(layers):
        where = r & (owner <= k)
        if not bool(where.any()):
            out.append(layer)
            continue
        t = layer.trajectory
        x = t.x.clone()
        x[first_call:] = torch.where(where, tail.x, t.x[first_call:])
        final = torch.where(where, tail.final, t.final)
        out.append(replace(layer, trajectory=Trajectory(t.sigmas, t.steps, x, final)))
    return out


def kept_under(layer, below: Trajectory) -> Trajectory:
    """What a re-sampled `layer` must follow outside its mask: its own composite, with `below`
    where its (old) mask is above 0.

    Outside its mask a layer's composite equals the one below, except for what lives there with
    it: its own unblended tail. A reroll, re-prompt or move keeps that, bit for bit.
    """
    inside = layer.latent_mask > 0
    t = layer.trajectory
    return Trajectory(t.sigmas, t.steps, torch.where(inside, below.x, t.x),
                      torch.where(inside, below.final, t.final))
