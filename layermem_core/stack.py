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

Proportional to what changed (issue 22): the recurrence runs on the bounding-box crop of the
changed region only, the box shrinking layer by layer to where the composite below still
changed, and each rebuilt composite is stored as the one it replaces plus a patch of the cells
whose bits changed (`Trajectory.with_patch`), so an edit adds memory in proportion to its region.
The per-layer mask maps (1 - m, m == 1, m == 0) are computed for all layers above in one batch;
the recurrence itself stays sequential over the layers, since a cumulative product of (1 - m)
rounds differently from it and the stack invariant is bit for bit.

Pure module (torch only).
"""
from __future__ import annotations

from dataclasses import replace

import torch

from .trajectory import COMPACT_AREA, Box, Trajectory, bounding_box


def _sl(box: Box, origin: Box | None = None) -> tuple[slice, slice]:
    """Slices of `box`, in a crop that starts at `origin`'s corner (the picture by default)."""
    oy, ox = (origin[0], origin[2]) if origin is not None else (0, 0)
    return slice(box[0] - oy, box[1] - oy), slice(box[2] - ox, box[3] - ox)


def _any_cell(diff: torch.Tensor) -> torch.Tensor:
    """[P, C, h, w] bool -> [h, w]: cells that differ at any stored point or channel."""
    return diff.flatten(0, 1).any(dim=0)


def _bits_differ(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Cells whose bits differ (also -0.0 against 0.0, which `!=` calls equal)."""
    as_int = {2: torch.int16, 4: torch.int32, 8: torch.int64}[a.element_size()]
    return _any_cell(a.view(as_int) != b.view(as_int))


def changed_region(old: Trajectory, new: Trajectory) -> torch.Tensor:
    """[h, w] bool: where two trajectories of one schedule differ at any stored point.

    Two trajectories on one base can only differ inside their patches: only those boxes are
    read."""
    h, w = old.shape[1:]
    region = torch.zeros(h, w, dtype=torch.bool)
    if old._x is new._x and old._final is new._final:
        boxes = [p.box for p in old.patches + new.patches]
        if not boxes:
            return region
        box = (min(b[0] for b in boxes), max(b[1] for b in boxes),
               min(b[2] for b in boxes), max(b[3] for b in boxes))
        region[_sl(box)] = _any_cell(old.crop(box) != new.crop(box))
        return region
    return (_any_cell(old.x != new.x)) | (old.final != new.final).any(dim=0)


def _boxes(cells: list[torch.Tensor], origin: Box) -> list[Box | None]:
    """Per [h, w] bool map (of a crop starting at `origin`), the bounding box of its True cells
    in picture coordinates, or None: computed for all maps at once (one host read)."""
    maps = torch.stack(cells)
    rows, cols = maps.any(dim=2), maps.any(dim=1)
    flags = torch.cat([rows, cols], dim=1).tolist()
    bh = rows.shape[1]
    out: list[Box | None] = []
    for f in flags:
        ys = [i for i, v in enumerate(f[:bh]) if v]
        xs = [i for i, v in enumerate(f[bh:]) if v]
        out.append(None if not ys else (origin[0] + ys[0], origin[0] + ys[-1] + 1,
                                        origin[2] + xs[0], origin[2] + xs[-1] + 1))
    return out


def recompose(upper: list, old_below: Trajectory, new_below: Trajectory) -> list:
    """The layers `upper` (oldest first) with their composites rebuilt over a changed layer below.

    `old_below` is the composite they were made over, `new_below` the one that replaces it.
    Returns new Layer values (a layer whose bits did not change is passed on as it is); the ones
    passed in are not changed.

    Works on the bounding-box crop of the changed region: the mask maps of all layers in one
    batch, then the recurrence layer by layer (it stops where nothing changed any more), then
    every layer's patch box in one batch; each layer keeps its base and gains a patch of the
    cells whose bits changed.
    """
    region = changed_region(old_below, new_below)
    box = bounding_box(region)
    if box is None or not upper:
        return list(upper)
    ys, xs = _sl(box)
    o, b, r = old_below.crop(box), new_below.crop(box), region[ys, xs]
    m = torch.stack([layer.latent_mask[ys, xs] for layer in upper]).to(o.dtype)
    keep, take_below, weight = m >= 1.0, m <= 0.0, 1.0 - m
    news, changed = [], []
    for i, layer in enumerate(upper):
        t = layer.trajectory.crop(box)
        soft = t + weight[i] * (b - o)
        new = torch.where(r, torch.where(keep[i], t, torch.where(take_below[i], b, soft)), t)
        news.append(new)
        changed.append(_bits_differ(new, t))
        r = _any_cell(new != t)
        if not bool(r.any()):  # hidden under this layer everywhere: nothing above changes
            break
        o, b = t, new
    rebuilt = []
    for layer, new, patch in zip(upper, news, _boxes(changed, box), strict=False):
        if patch is None:
            rebuilt.append(layer)
            continue
        py, px = _sl(patch, box)
        rebuilt.append(replace(layer, trajectory=layer.trajectory.with_patch(
            patch, new[:, :, py, px])))
    return rebuilt + list(upper[len(news):])


def shared_with(new: Trajectory, old: Trajectory) -> Trajectory:
    """`new` stored as `old` plus a patch of the cells whose bits differ, where those cover at
    most `COMPACT_AREA` of the picture (a re-sampled layer over its old composite); else `new`."""
    if new.calls != old.calls:
        return new
    bits = _bits_differ(new.x, old.x) | _bits_differ(new.final[None], old.final[None])
    box = bounding_box(bits)
    if box is None:
        return old
    h, w = old.shape[1:]
    if (box[1] - box[0]) * (box[3] - box[2]) > COMPACT_AREA * h * w:
        return new
    return old.with_patch(box, new.crop(box))


def owners(layers: list) -> torch.Tensor:
    """[h, w] int64: per latent pixel, the newest layer whose mask is above 0 there.

    That layer's composite is the lowest one that shows the pixel as the top of the stack shows
    it: every newer composite equals it there (their masks are 0), every older one lacks it.
    """
    if len(layers) == 1:
        return torch.zeros(layers[0].latent_mask.shape, dtype=torch.int64)
    on = torch.stack([layer.latent_mask for layer in layers[1:]]) > 0
    index = torch.arange(1, len(layers), dtype=torch.int64)[:, None, None]
    return (on * index).amax(dim=0)


def write_tail(layers: list, region: torch.Tensor, first_call: int, tail: Trajectory,
               whole_picture: bool = False) -> list:
    """The whole stack `layers` with `tail` (calls from `first_call` on, and the final) written
    into `region` (everywhere with `whole_picture`, an unforced tail).

    Where a heal or tail lives: at each pixel, in the composite of the pixel's owner (`owners`)
    and every composite above it. So a later verb that rebuilds any composite from the one below
    keeps it, unless that verb's own region covers the pixel (then its owner is re-made); and
    history at a level shows what the stack shows there. Composites below the owner are left
    as they were: they never showed that pixel on top. Each composite written gets a patch of
    the box it is written in (the whole picture compacts into plain tensors); the maps and
    boxes of all layers are found in one batch.
    """
    r = torch.ones_like(region, dtype=torch.bool) if whole_picture else region.to(torch.bool)
    box = bounding_box(r)
    if box is None:
        return list(layers)
    ys, xs = _sl(box)
    levels = torch.arange(len(layers), dtype=torch.int64)[:, None, None]
    wheres = r[ys, xs] & (owners(layers)[ys, xs] <= levels)  # [layers, bh, bw]
    out = []
    tail_crops: dict[Box, torch.Tensor] = {}
    for k, (layer, lbox) in enumerate(zip(layers, _boxes(list(wheres), box), strict=True)):
        if lbox is None:
            out.append(layer)
            continue
        if lbox not in tail_crops:
            tail_crops[lbox] = tail.crop(lbox)
        t = layer.trajectory
        crop = t.crop(lbox)
        wy, wx = _sl(lbox, box)
        crop[first_call:] = torch.where(wheres[k, wy, wx], tail_crops[lbox], crop[first_call:])
        out.append(replace(layer, trajectory=t.with_patch(lbox, crop)))
    return out


def kept_under(layer, below: Trajectory) -> Trajectory:
    """What a re-sampled `layer` must follow outside its mask: its own composite, with `below`
    where its (old) mask is above 0.

    Outside its mask a layer's composite equals the one below, except for what lives there with
    it: its own unblended tail. A reroll, re-prompt or move keeps that, bit for bit.
    """
    return layer.trajectory.replaced_in(layer.latent_mask > 0, below)
