"""One BCG/MQD run over the whole picture or around the mask (issue 25).

Around the mask the run samples only the crop (`crop.Crop`): BCG works inside it as on the
whole picture, against the crop of the stored reference; MQD routes the crop's tokens with the
layers' masks cropped the same way (layers with no mask in the crop get no keys); the family
places the crop at its true offset (`Family.crop_patches`, `Family.crop_extras`). The recorded
crop is pasted into the full reference, so the stored composite is a full picture that is the
reference, bit for bit, outside the crop.
"""
from __future__ import annotations

from dataclasses import replace

import torch

from . import crop as crops
from . import families, masks, sampling
from .bcg import BCGSpec
from .conditioning import Conditioning
from .memory import Layer, LayerMemory
from .trajectory import Trajectory


def plan(memory: LayerMemory, area: crops.Area | None, region: torch.Tensor,
         label: str) -> crops.Crop | None:
    """The crop for a run that may change `region` ([h, w] bool); None: the whole picture."""
    if area is None or not area.around:
        return None
    family = families.get(memory.fingerprint.family)
    return crops.plan(region.to(torch.bool), area.margin_px, family.crop_cells, family.min_size,
                      label)


def layers_in(crop: crops.Crop, layers: list[Layer]) -> list[Layer]:
    """The layers as MQD sees the crop: masks cropped; a layer with no mask in the crop is left
    out (it owns no token there), except the background and the newest (its negative is the
    run's)."""
    kept = []
    for i, layer in enumerate(layers):
        m = crop.of(layer.latent_mask)
        if 0 < i < len(layers) - 1 and not bool((m > 0).any()):
            continue
        kept.append(replace(layer, latent_mask=m, token_mask=masks.token_mask(m)))
    return kept


def _conditioning(memory: LayerMemory, c: Conditioning, crop: crops.Crop) -> Conditioning:
    hook = families.get(memory.fingerprint.family).crop_extras
    if hook is None:
        return c
    px = (8 * crop.left, 8 * crop.top, 8 * crop.width, 8 * crop.height)
    return replace(c, extras=hook(c.extras, px, memory.image_size))


def run(memory: LayerMemory, model, positive: Conditioning, negative: Conditioning, seed: int,
        spec: BCGSpec, mqd_layers: list[Layer] | None,
        crop: crops.Crop | None = None) -> Trajectory:
    """Sample `spec` (over the whole picture) with MQD over `mqd_layers` (None: no MQD), in
    `crop` when given; returns the full trajectory."""
    family = families.get(memory.fingerprint.family)
    s = memory.schedule
    if crop is None:
        mqd = family.attention_run(mqd_layers) if mqd_layers is not None else None
        return sampling.run(model, s, positive, negative, memory.latent_shape, seed, spec, mqd)
    if spec.free_mask is not None and bool(((spec.free_mask > 0) & ~crop.mask(memory.latent_hw))
                                           .any()):
        raise RuntimeError(f"{spec.label}: the crop does not cover the region the run may change")
    local = replace(spec, free_mask=crop.of(spec.free_mask),
                    reference=crop.trajectory(spec.reference),
                    free_init=None if spec.free_init is None else crop.of(spec.free_init))
    mqd = (family.attention_run(layers_in(crop, mqd_layers)) if mqd_layers is not None else None)
    patches = family.crop_patches(memory.latent_hw, crop.box) if family.crop_patches else ()
    traj = sampling.run(model, s, _conditioning(memory, positive, crop),
                        _conditioning(memory, negative, crop), memory.latent_shape, seed, local,
                        mqd, window=crop.box, patches=patches)
    return crop.paste(spec.reference, traj)
