"""The verbs that start, grow and shrink a memory: start, add or insert, delete (edit_ops edits a
layer in place; picture starts from a picture).

Each is one use of the same mechanism (verb_toolkit): sample a region of the stack at some level
(BCG keeps everything outside it on the stored composite, MQD routes its tokens), then rebuild
every composite above that level (`stack.recompose`) so no removed content survives anywhere,
and optionally heal a freed region by regenerating the end of the schedule there.

Every function validates all inputs before it samples and returns a new LayerMemory; the one
passed in is never touched.
"""
from __future__ import annotations

import logging
from dataclasses import replace

import torch

from . import checks, families, masks, model_checks, sampling, stack
from .bcg import BCGSpec
from .conditioning import Conditioning
from .crop import DEFAULT_MARGIN, WHOLE
from .errors import LayerMemoryError
from .memory import Layer, LayerMemory, check_layer_name
from .verb_toolkit import (
    background_memory,
    check_area,
    check_fraction,
    check_heal,
    check_schedule,
    heal,
    latent_shift,
    layer_mask,
    sample_over,
    visible_region,
)

log = logging.getLogger("LayerMemory")


def start_memory(model, positive, negative, width: int, height: int, seed: int, steps: int,
                 cfg: float, sampler_name: str, scheduler: str, name: str = "background",
                 prompt: str = "") -> LayerMemory:
    """Sample the background and record its trajectory as layer 0 (mask all ones)."""
    checks.check_start(model, width, height, steps, cfg)
    check_schedule(steps, sampler_name, scheduler)
    check_layer_name(name)
    family = model_checks.require_supported(model)
    families.require_size(family, width, height)
    pos = Conditioning.from_comfy(positive, "positive", family, model)
    neg = Conditioning.from_comfy(negative, "negative", family, model)
    fp = model_checks.fingerprint(model)
    latent_shape = (fp.latent_channels, height // 8, width // 8)
    schedule = sampling.make_schedule(model, sampler_name, scheduler, steps, cfg)
    trajectory = sampling.run(model, schedule, pos, neg, latent_shape, seed,
                              BCGSpec(free_mask=None, reference=None))
    return background_memory(fp, schedule, latent_shape,
                             float(model.model.latent_format.scale_factor), pos, neg, seed,
                             trajectory, name or "background", prompt,
                             latent_shift(model))


def _position(memory: LayerMemory, position: int) -> int:
    """Stack index a new layer goes to: -1 (or len) is the top; 1 is right above the background."""
    n = len(memory.layers)
    index = n if position in (-1, n) else position
    if not 1 <= index <= n:
        raise LayerMemoryError("position", f"{position} is not a place in this stack of {n} layers "
                                           "(0 is the background)",
                               f"use 1 to {n}, or -1 to put the layer on top")
    return index


def add_layer(memory: LayerMemory, model, positive, mask, seed: int, grow_pixels: int = 0,
              feather_pixels: int = 0, use_mqd: bool = True, unblended_fraction: float = 0.0,
              negative=None, name: str = "", prompt: str = "", position: int = -1,
              compute: str = WHOLE, context_margin: int = DEFAULT_MARGIN) -> LayerMemory:
    """Sample a new object inside `mask` at `position` in the stack (default: on top).

    Outside the mask the new composite follows the one below; newer layers stay in front of it,
    bit-exact wherever their masks are fully on. `compute` "around the mask" runs the model on
    the crop around the mask with `context_margin` px of context only (crop_run).
    """
    checks.check_add(memory, model, mask)
    check_layer_name(name)
    memory = model_checks.require_memory(memory)
    family = model_checks.require_same_model(memory, model)
    area = check_area(memory, compute, context_margin)
    index = _position(memory, position)
    pos = Conditioning.from_comfy(positive, "positive", family, model)
    neg = (Conditioning.from_comfy(negative, "negative", family, model) if negative is not None
           else memory.top.negative)
    check_fraction("unblended_fraction", unblended_fraction, False,
                   "use 0 for an exact background, or a small fraction such as 0.1")
    latent_mask, tmask = layer_mask(memory, mask, grow_pixels, feather_pixels)
    below = list(memory.layers[:index])
    draft = Layer(name=name or f"layer {len(memory.layers)}", positive=pos, negative=neg,
                  seed=int(seed), latent_mask=latent_mask, token_mask=tmask,
                  trajectory=below[-1].trajectory, prompt=prompt)
    composite = sample_over(memory, model, below, draft, use_mqd, unblended_fraction, "AddLayer",
                            area=area)
    # stored as the composite below plus the cells the run changed (issue 22): an AddLayer
    # adds memory in proportion to its mask's box, not a whole trajectory
    composite = stack.shared_with(composite, below[-1].trajectory)
    upper = stack.recompose(list(memory.layers[index:]), below[-1].trajectory, composite)
    return memory.with_layers(tuple(below + [replace(draft, trajectory=composite)] + upper))


def deletion_region(memory: LayerMemory, index: int, heal_grow_pixels: int) -> torch.Tensor:
    """Layer `index`'s visible part (its mask minus every newer mask), grown by
    `heal_grow_pixels` latent cells, never into newer masks: the region a delete heals."""
    layers = list(memory.layers)
    return visible_region(layers, index, masks.support(layers[index].latent_mask),
                          heal_grow_pixels)


def delete_layer(memory: LayerMemory, model, layer, regenerate_fraction: float = 0.4, seed: int = 0,
                 heal_grow_pixels: int = 2, unblended_fraction: float = 0.0,
                 compute: str = WHOLE, context_margin: int = DEFAULT_MARGIN) -> LayerMemory:
    """Remove a layer from every composite, then heal its visible region grown by
    `heal_grow_pixels` latent cells (see module doc; DeleteLayer's `grow`); `compute` "around the
    mask" heals on the crop around the region only."""
    checks.check_add(memory, model, None)
    memory = model_checks.require_memory(memory)
    index = memory.resolve(layer, "layer")
    model_checks.require_same_model(memory, model)
    check_heal(regenerate_fraction, unblended_fraction)
    area = check_area(memory, compute, context_margin)
    layers = list(memory.layers)
    upper = stack.recompose(layers[index + 1:], layers[index].trajectory,
                            layers[index - 1].trajectory)
    remaining = layers[:index] + upper
    if index == len(layers) - 1:
        # the layer below is exactly the memory before it
        return memory.with_layers(tuple(remaining))
    region = deletion_region(memory, index, heal_grow_pixels)
    if regenerate_fraction == 0.0:
        return memory.with_layers(tuple(remaining))  # exactly what was below, nothing regenerated
    if not bool(region.any()):
        log.info("DeleteLayer: layer %d is hidden behind newer layers everywhere; removed without "
                 "sampling.", index)
        return memory.with_layers(tuple(remaining))
    healed = heal(memory, model, remaining, index, region, regenerate_fraction, unblended_fraction,
                  seed, "DeleteLayer", area=area)
    return memory.with_layers(tuple(healed))
