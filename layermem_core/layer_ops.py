"""The verbs that change a memory: start, add or insert, delete, edit (reroll, re-prompt, move).

Each is one use of the same mechanism: sample a region of the stack at some level (BCG keeps
everything outside it on the stored composite, MQD routes its tokens), then rebuild every
composite above that level (`stack.recompose`) so no removed content survives anywhere, and
optionally heal a freed region by regenerating the end of the schedule there.

Every function validates all inputs before it samples and returns a new LayerMemory; the one
passed in is never touched.
"""
from __future__ import annotations

import logging
from dataclasses import replace

import torch

from . import checks, families, masks, model_checks, sampling, stack
from .bcg import ADAPTIVE_SAMPLERS, BCGSpec
from .conditioning import Conditioning
from .errors import LayerMemoryError
from .memory import Layer, LayerMemory, check_layer_name
from .trajectory import Trajectory

log = logging.getLogger("LayerMemory")


def fixed_step_samplers() -> list[str]:
    """ComfyUI's samplers whose model calls are fixed by `steps`: the ones a memory can use."""
    import comfy.samplers

    return [s for s in comfy.samplers.SAMPLER_NAMES if s not in ADAPTIVE_SAMPLERS]


def check_sampler(sampler_name: str) -> None:
    """A known sampler whose number of model calls `steps` bounds (no adaptive step size)."""
    import comfy.samplers

    usable = ", ".join(fixed_step_samplers())
    if sampler_name not in comfy.samplers.SAMPLER_NAMES:
        raise LayerMemoryError("sampler_name", f"unknown sampler {sampler_name!r}",
                               f"pick one of ComfyUI's samplers that work here: {usable}")
    if sampler_name in ADAPTIVE_SAMPLERS:
        raise LayerMemoryError("sampler_name",
                               f"{sampler_name} picks its own step sizes, so its number of model "
                               "calls is not fixed by steps: the memory estimate and the stored "
                               "trajectory would have no bound",
                               f"pick a fixed-step sampler: {usable}")


def check_schedule(steps: int, sampler_name: str, scheduler: str) -> None:
    """Steps, sampler and scheduler of a new memory; runs before any encode or model call."""
    import comfy.samplers

    if steps < 1:
        raise LayerMemoryError("steps", "needs at least one step", "use 1 or more steps")
    check_sampler(sampler_name)
    if scheduler not in comfy.samplers.SCHEDULER_NAMES:
        raise LayerMemoryError("scheduler", f"unknown scheduler {scheduler!r}",
                               "pick one of ComfyUI's schedulers, e.g. karras or normal")


def _check_fraction(name: str, value: float, low_open: bool, fix: str) -> None:
    ok = (0.0 < value <= 1.0) if low_open else (0.0 <= value < 1.0)
    if not ok:
        interval = "(0, 1]" if low_open else "[0, 1)"
        raise LayerMemoryError(name, f"{value} is outside {interval}", fix)


def start_memory(model, positive, negative, width: int, height: int, seed: int, steps: int,
                 cfg: float, sampler_name: str, scheduler: str, name: str = "background",
                 prompt: str = "") -> LayerMemory:
    """Sample the background and record its trajectory as layer 0 (mask all ones)."""
    checks.check_start(model, width, height, steps, cfg)
    check_schedule(steps, sampler_name, scheduler)
    check_layer_name(name)
    family = model_checks.require_supported(model)
    families.require_size(family, width, height)
    pos = Conditioning.from_comfy(positive, "positive", family)
    neg = Conditioning.from_comfy(negative, "negative", family)
    fp = model_checks.fingerprint(model)
    latent_shape = (fp.latent_channels, height // 8, width // 8)
    schedule = sampling.make_schedule(model, sampler_name, scheduler, steps, cfg)
    trajectory = sampling.run(model, schedule, pos, neg, latent_shape, seed,
                              BCGSpec(free_mask=None, reference=None))
    h, w = latent_shape[1:]
    layer = Layer(name=name or "background", positive=pos, negative=neg, seed=int(seed),
                  latent_mask=torch.ones(h, w),
                  token_mask=torch.ones(h // 2, w // 2, dtype=torch.bool), trajectory=trajectory,
                  prompt=prompt)
    scale = float(model.model.latent_format.scale_factor)
    return LayerMemory(fingerprint=fp, schedule=schedule, latent_shape=latent_shape,
                       latent_scale=scale, layers=(layer,))


def _unblended_from(steps: int, fraction: float) -> int | None:
    """First unforced step for a fraction of final steps; None when it rounds to no step."""
    free_steps = int(round(fraction * steps))
    return steps - free_steps if free_steps > 0 else None


def sample_over(memory: LayerMemory, model, below: list[Layer], draft: Layer, use_mqd: bool,
                 unblended_fraction: float, label: str,
                 reference: Trajectory | None = None) -> Trajectory:
    """Sample `draft` in its mask over the composite of `below` (or over `reference`, which
    shows the same layers); returns the new layer's composite."""
    s = memory.schedule
    reference = below[-1].trajectory if reference is None else reference
    spec = BCGSpec(free_mask=draft.latent_mask, reference=reference,
                   schedule_sigmas=s.sigmas,
                   unblended_from_step=_unblended_from(s.steps, unblended_fraction),
                   sampler_name=s.sampler_name, label=label)
    mqd_run = families.make_mqd_run(memory.fingerprint.family, below + [draft]) if use_mqd else None
    return sampling.run(model, s, draft.positive, draft.negative, memory.latent_shape, draft.seed,
                        spec, mqd_run)


def layer_mask(memory: LayerMemory, mask, grow_pixels: int,
               feather_pixels: int) -> tuple[torch.Tensor, torch.Tensor]:
    latent_mask = masks.prepare_layer_mask(mask, memory.latent_hw, grow_pixels, feather_pixels)
    tmask = masks.token_mask(latent_mask)
    if not bool(tmask.any()):
        log.warning("the mask covers no whole token (2x2 latent pixels at >= %.0f%%); MQD routes "
                    "nothing to the layer's prompt.", masks.TOKEN_THRESHOLD * 100)
    return latent_mask, tmask


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
              negative=None, name: str = "", prompt: str = "", position: int = -1) -> LayerMemory:
    """Sample a new object inside `mask` at `position` in the stack (default: on top).

    Outside the mask the new composite follows the one below; newer layers stay in front of it,
    bit-exact wherever their masks are fully on.
    """
    checks.check_add(memory, model, mask)
    check_layer_name(name)
    memory = model_checks.require_memory(memory)
    family = model_checks.require_same_model(memory, model)
    index = _position(memory, position)
    pos = Conditioning.from_comfy(positive, "positive", family)
    neg = (Conditioning.from_comfy(negative, "negative", family) if negative is not None
           else memory.top.negative)
    _check_fraction("unblended_fraction", unblended_fraction, False,
                    "use 0 for an exact background, or a small fraction such as 0.1")
    latent_mask, tmask = layer_mask(memory, mask, grow_pixels, feather_pixels)
    below = list(memory.layers[:index])
    draft = Layer(name=name or f"layer {len(memory.layers)}", positive=pos, negative=neg,
                  seed=int(seed), latent_mask=latent_mask, token_mask=tmask,
                  trajectory=below[-1].trajectory, prompt=prompt)
    composite = sample_over(memory, model, below, draft, use_mqd, unblended_fraction, "AddLayer")
    upper = stack.recompose(list(memory.layers[index:]), below[-1].trajectory, composite)
    return memory.with_layers(tuple(below + [replace(draft, trajectory=composite)] + upper))


def visible_region(layers: list[Layer], index: int, support: torch.Tensor,
                   grow_pixels: int) -> torch.Tensor:
    """`support` minus every mask newer than `index`,
    grown by `grow_pixels`, never into a newer mask."""
    newer = torch.zeros_like(support, dtype=torch.bool)
    for layer in layers[index + 1:]:
        newer |= masks.support(layer.latent_mask)
    visible = support & ~newer
    return (masks.grow(visible.float(), grow_pixels) > 0) & ~newer


def deletion_region(memory: LayerMemory, index: int, grow_pixels: int) -> torch.Tensor:
    """Layer `index`'s visible part (its mask minus
    every newer mask), grown, never into newer masks."""
    layers = list(memory.layers)
    return visible_region(layers, index, masks.support(layers[index].latent_mask), grow_pixels)


def heal(memory: LayerMemory, model, layers: list[Layer], level: int, region: torch.Tensor,
         regenerate_fraction: float, unblended_fraction: float, seed: int,
         label: str) -> list[Layer]:
    """Regenerate the end of the schedule in `region`, freed at stack index `level`.

    The region starts from the composite below `level` at the start step and is denoised with
    everything else following the top composite and MQD routing the live layers. The result is
    written where the stack keeps heals (`stack.write_tail`): at each pixel into the composite
    of the newest layer that shows there and every one above, so no later rebuild loses it; an
    unforced tail goes there everywhere, not only in the region.
    """
    s = memory.schedule
    start_step = min(s.steps - 1, max(0, s.steps - int(round(regenerate_fraction * s.steps))))
    top, below = layers[-1].trajectory, layers[level - 1].trajectory
    c0 = top.call_starting_at(float(s.sigmas[start_step]))
    unblended_from = _unblended_from(s.steps, unblended_fraction)
    spec = BCGSpec(free_mask=region.float(), reference=top, schedule_sigmas=s.sigmas,
                   start_step=start_step, free_init=below.x[c0], unblended_from_step=unblended_from,
                   sampler_name=s.sampler_name, label=label)
    tail = sampling.run(model, s, layers[-1].positive, layers[-1].negative, memory.latent_shape,
                        seed, spec, families.make_mqd_run(memory.fingerprint.family, layers))
    if tail.calls != top.calls - c0:
        raise RuntimeError(f"{label} made {tail.calls} model calls, the stored schedule has "
                           f"{top.calls - c0}")
    return stack.write_tail(layers, region, c0, tail, whole_picture=unblended_from is not None)


def check_heal(regenerate_fraction: float, unblended_fraction: float) -> None:
    if not 0.0 <= regenerate_fraction <= 1.0:
        raise LayerMemoryError("regenerate_fraction", f"{regenerate_fraction} is outside [0, 1]",
                               "use the fraction of final steps to regenerate, e.g. 0.4 (the "
                               "paper's 8 of 20), or 0 to show exactly what was below")
    _check_fraction("unblended_fraction", unblended_fraction, False,
                    "use 0 to keep everything outside the region exact, or e.g. 0.2 (the paper's "
                    "tau/2)")
    if unblended_fraction > regenerate_fraction:
        raise LayerMemoryError("unblended_fraction", f"{unblended_fraction} is more than "
                                                     f"regenerate_fraction {regenerate_fraction}",
                               "leave unblended at most the steps that are regenerated")


def delete_layer(memory: LayerMemory, model, layer, regenerate_fraction: float = 0.4, seed: int = 0,
                 grow_pixels: int = 2, unblended_fraction: float = 0.0) -> LayerMemory:
    """Remove a layer from every composite, then heal its visible region (see module doc)."""
    checks.check_add(memory, model, None)
    memory = model_checks.require_memory(memory)
    index = memory.resolve(layer, "layer")
    model_checks.require_same_model(memory, model)
    check_heal(regenerate_fraction, unblended_fraction)
    layers = list(memory.layers)
    upper = stack.recompose(layers[index + 1:], layers[index].trajectory,
                            layers[index - 1].trajectory)
    remaining = layers[:index] + upper
    if index == len(layers) - 1:
        # the layer below is exactly the memory before it
        return memory.with_layers(tuple(remaining))
    region = deletion_region(memory, index, grow_pixels)
    if regenerate_fraction == 0.0:
        return memory.with_layers(tuple(remaining))  # exactly what was below, nothing regenerated
    if not bool(region.any()):
        log.info("DeleteLayer: layer %d is hidden behind newer layers everywhere; removed without "
                 "sampling.", index)
        return memory.with_layers(tuple(remaining))
    healed = heal(memory, model, remaining, index, region, regenerate_fraction, unblended_fraction,
                  seed, "DeleteLayer")
    return memory.with_layers(tuple(healed))
