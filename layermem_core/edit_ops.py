"""Replace a layer in place: reroll it (new seed), re-prompt it, or move / resize it (new mask).

The layer is sampled again at its own level, over the composite below it, and every composite
above is rebuilt over the new one (`stack.recompose`): newer layers stay bit-exact wherever
their masks are fully on. Where the old mask is no longer covered, what lay below comes back
and is healed as in deletion. Replacing layer 0 re-samples the background; every object stays
bit-exact inside its mask.
"""
from __future__ import annotations

import logging
from dataclasses import replace

from . import checks, masks, model_checks, sampling, stack, verb_toolkit
from .bcg import BCGSpec
from .conditioning import Conditioning
from .crop import DEFAULT_MARGIN, WHOLE
from .errors import LayerMemoryError
from .memory import Layer, LayerMemory, check_layer_name

log = logging.getLogger("LayerMemory")


def _new_background(memory: LayerMemory, model, old: Layer, positive, negative, seed: int,
                    name: str) -> Layer:
    spec = BCGSpec(free_mask=None, reference=None)
    trajectory = sampling.run(model, memory.schedule, positive, negative, memory.latent_shape, seed,
                              spec)
    return replace(old, positive=positive, negative=negative, seed=int(seed), trajectory=trajectory,
                   name=name or old.name)


def edit_layer(memory: LayerMemory, model, layer, positive=None, mask=None, seed: int | None = None,
               grow_pixels: int = 0, feather_pixels: int = 0, use_mqd: bool = True, negative=None,
               name: str = "", regenerate_fraction: float = 0.4, heal_grow_pixels: int = 2,
               unblended_fraction: float = 0.0, compute: str = WHOLE,
               context_margin: int = DEFAULT_MARGIN) -> LayerMemory:
    """Layer `layer` sampled again with what is given (prompt, mask, seed); the rest as it was.

    `compute` "around the mask" samples the crop around the old and new mask, and heals the
    crop around the freed region (a re-sampled background is always the whole picture)."""
    checks.check_add(memory, model, mask)
    check_layer_name(name)
    memory = model_checks.require_memory(memory)
    index = memory.resolve(layer, "layer", allow_background=True)
    family = model_checks.require_same_model(memory, model)
    verb_toolkit.check_heal(regenerate_fraction, 0.0)
    area = verb_toolkit.check_area(memory, compute, context_margin)
    old = memory.layers[index]
    pos = (Conditioning.from_comfy(positive, "positive", family, model) if positive is not None
           else old.positive)
    neg = (Conditioning.from_comfy(negative, "negative", family, model) if negative is not None
           else old.negative)
    seed = old.seed if seed is None else int(seed)
    if positive is None and negative is None and mask is None and seed == old.seed:
        log.info("EditLayer: nothing to change for layer %d (same prompt, mask and seed).", index)
        return memory if not name else memory.renamed(index, name)
    layers = list(memory.layers)
    if index == 0:
        if mask is not None:
            raise LayerMemoryError("mask",
                                   "the background (layer 0) always covers the whole picture",
                                   "leave the mask unconnected to re-prompt or reroll the "
                                   "background")
        if area.around:
            log.info("EditLayer: the background covers the whole picture; computing over the "
                     "whole picture.")
        new = _new_background(memory, model, old, pos, neg, seed, name)
        return memory.with_layers(
            tuple([new] + stack.recompose(layers[1:], old.trajectory, new.trajectory)))
    if mask is not None:
        latent_mask, tmask = verb_toolkit.layer_mask(memory, mask, grow_pixels, feather_pixels)
    else:
        latent_mask, tmask = old.latent_mask, old.token_mask
    draft = replace(old, positive=pos, negative=neg, seed=seed, latent_mask=latent_mask,
                    token_mask=tmask, name=name or old.name)
    kept = stack.kept_under(old, layers[index - 1].trajectory)
    composite = verb_toolkit.sample_over(memory, model, layers[:index], draft, use_mqd,
                                         unblended_fraction, "EditLayer", reference=kept,
                                         area=area, changed=masks.support(old.latent_mask))
    # stored as the old composite plus the cells the run changed (its masks' box), so the
    # memory before the edit and the one after share the rest (issue 22)
    composite = stack.shared_with(composite, old.trajectory)
    upper = stack.recompose(layers[index + 1:], old.trajectory, composite)
    new_layers = layers[:index] + [replace(draft, trajectory=composite)] + upper
    new_support = masks.support(latent_mask)
    vacated = masks.support(old.latent_mask) & ~new_support
    region = (verb_toolkit.visible_region(new_layers, index, vacated, heal_grow_pixels)
              & ~new_support)
    if regenerate_fraction > 0.0 and bool(region.any()):
        new_layers = verb_toolkit.heal(memory, model, new_layers, index, region,
                                       regenerate_fraction, 0.0, seed, "EditLayer", area=area)
    return memory.with_layers(tuple(new_layers))
