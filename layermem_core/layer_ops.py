"""The three things that change a memory: start it, add a layer, delete a layer.

Every function validates all inputs before it samples, and returns a new LayerMemory; the
one passed in is never touched.
"""
from __future__ import annotations

import logging
from dataclasses import replace

import torch

from . import checks, masks, model_checks, sampling
from .bcg import BCGSpec
from .errors import LayerMemoryError
from .memory import Conditioning, Layer, LayerMemory
from .mqd import MQDRun
from .routing import RoutingPlan, token_owners
from .trajectory import Trajectory

log = logging.getLogger("LayerMemory")


def _require_batch_one(width: int, height: int) -> None:
    for name, value in (("width", width), ("height", height)):
        if value % 16:
            raise LayerMemoryError(name, f"{value} is not a multiple of 16 (PixArt's latent patches are 2x2 at /8)",
                                   "use a size divisible by 16, e.g. 512 or 1024")
    if width < 512 or height < 512:
        raise LayerMemoryError("width/height", f"{width}x{height} is below 512 px; ComfyUI's PixArt divides by zero there",
                               "use 512 px or more on each side")


def start_memory(model, positive, negative, width: int, height: int, seed: int, steps: int, cfg: float,
                 sampler_name: str, scheduler: str, name: str = "background", prompt: str = "") -> LayerMemory:
    """Sample the background and record its trajectory as layer 0 (mask all ones)."""
    checks.check_start(model, width, height, steps, cfg)
    model_checks.require_pixart(model)
    _require_batch_one(width, height)
    pos = Conditioning.from_comfy(positive, "positive")
    neg = Conditioning.from_comfy(negative, "negative")
    if steps < 1:
        raise LayerMemoryError("steps", "needs at least one step", "use 1 or more steps")
    import comfy.samplers

    if sampler_name not in comfy.samplers.SAMPLER_NAMES:
        raise LayerMemoryError("sampler_name", f"unknown sampler {sampler_name!r}",
                               "pick one of ComfyUI's samplers, e.g. dpmpp_2m or euler")
    if scheduler not in comfy.samplers.SCHEDULER_NAMES:
        raise LayerMemoryError("scheduler", f"unknown scheduler {scheduler!r}", "pick one of ComfyUI's schedulers, e.g. karras or normal")
    fp = model_checks.fingerprint(model)
    latent_shape = (fp.latent_channels, height // 8, width // 8)
    schedule = sampling.make_schedule(model, sampler_name, scheduler, steps, cfg)
    trajectory = sampling.run(model, schedule, pos, neg, latent_shape, seed, BCGSpec(free_mask=None, reference=None))
    h, w = latent_shape[1:]
    layer = Layer(name=name or "background", positive=pos, negative=neg, seed=int(seed),
                  latent_mask=torch.ones(h, w), token_mask=torch.ones(h // 2, w // 2, dtype=torch.bool),
                  trajectory=trajectory, prompt=prompt)
    scale = float(model.model.latent_format.scale_factor)
    return LayerMemory(fingerprint=fp, schedule=schedule, latent_shape=latent_shape, latent_scale=scale, layers=(layer,))


def _routing(layers: list[Layer]) -> tuple[RoutingPlan, list[torch.Tensor]]:
    """Owner 0 is the background (layers[0]); owner i is layers[i]; newest mask wins."""
    owners = token_owners([layer.token_mask for layer in layers[1:]]) if len(layers) > 1 else \
        torch.zeros(layers[0].token_mask.numel(), dtype=torch.long)
    return RoutingPlan.from_owners(owners), [layer.positive.embedding for layer in layers]


def add_layer(memory: LayerMemory, model, positive, mask, seed: int, grow_pixels: int = 0, feather_pixels: int = 0,
              use_mqd: bool = True, unblended_fraction: float = 0.0, negative=None, name: str = "",
              prompt: str = "") -> LayerMemory:
    """Sample a new object inside `mask`; outside it the composite follows the top layer's trajectory."""
    checks.check_add(memory, model, mask)
    memory = model_checks.require_memory(memory)
    model_checks.require_same_model(memory, model)
    pos = Conditioning.from_comfy(positive, "positive")
    neg = Conditioning.from_comfy(negative, "negative") if negative is not None else memory.top.negative
    if not 0.0 <= unblended_fraction < 1.0:
        raise LayerMemoryError("unblended_fraction", f"{unblended_fraction} is outside [0, 1)",
                               "use 0 for an exact background, or a small fraction such as 0.1")
    latent_mask = masks.prepare_layer_mask(mask, memory.latent_hw, grow_pixels, feather_pixels)
    tmask = masks.token_mask(latent_mask)
    if not bool(tmask.any()):
        log.warning("AddLayer: the mask covers no whole token (2x2 latent pixels at >= %.0f%%); MQD routes nothing "
                    "to the new prompt.", masks.TOKEN_THRESHOLD * 100)
    layer_name = name or f"layer {len(memory.layers)}"
    steps = memory.schedule.steps
    unblended_from = steps - int(round(unblended_fraction * steps)) if unblended_fraction > 0 else None
    spec = BCGSpec(free_mask=latent_mask, reference=memory.top.trajectory, schedule_sigmas=memory.schedule.sigmas,
                   unblended_from_step=unblended_from, label="AddLayer")
    draft = Layer(name=layer_name, positive=pos, negative=neg, seed=int(seed), latent_mask=latent_mask,
                  token_mask=tmask, trajectory=memory.top.trajectory, prompt=prompt)
    mqd_run = MQDRun(*_routing(list(memory.layers) + [draft])) if use_mqd else None
    trajectory = sampling.run(model, memory.schedule, pos, neg, memory.latent_shape, seed, spec, mqd_run)
    return memory.with_layer(replace(draft, trajectory=trajectory))


def deletion_region(memory: LayerMemory, index: int, grow_pixels: int) -> torch.Tensor:
    """Layer `index`'s visible part (its mask minus every newer mask), grown, never into newer masks."""
    newer = torch.zeros(memory.latent_hw, dtype=torch.bool)
    for layer in memory.layers[index + 1:]:
        newer |= masks.support(layer.latent_mask)
    visible = masks.support(memory.layers[index].latent_mask) & ~newer
    return (masks.grow(visible.float(), grow_pixels) > 0) & ~newer


def _prefix(trajectory: Trajectory, calls: int, region: torch.Tensor, below: Trajectory) -> torch.Tensor:
    """The first `calls` stored model inputs, taken from `below` in `region`."""
    return torch.where(region.to(torch.bool), below.x[:calls], trajectory.x[:calls])


def delete_layer(memory: LayerMemory, model, layer, regenerate_fraction: float = 0.4, seed: int = 0,
                 grow_pixels: int = 2) -> LayerMemory:
    """Remove a layer: restore what was below it in its visible region and finish denoising there."""
    memory = model_checks.require_memory(memory)
    index = memory.resolve(layer, "layer")
    model_checks.require_same_model(memory, model)
    if not 0.0 < regenerate_fraction <= 1.0:
        raise LayerMemoryError("regenerate_fraction", f"{regenerate_fraction} is outside (0, 1]",
                               "use the fraction of final steps to regenerate, e.g. 0.4 (the paper's 8 of 20)")
    remaining = list(memory.layers[:index]) + list(memory.layers[index + 1:])
    if index == len(memory.layers) - 1:
        return memory.with_layers(tuple(remaining))  # the layer below is exactly the memory before it
    region = deletion_region(memory, index, grow_pixels)
    if not bool(region.any()):
        log.info("DeleteLayer: layer %d is hidden behind newer layers everywhere; removed without sampling.", index)
        return memory.with_layers(tuple(remaining))
    steps = memory.schedule.steps
    start_step = min(steps - 1, max(0, steps - int(round(regenerate_fraction * steps))))
    top, below = memory.top.trajectory, memory.layers[index - 1].trajectory
    c0 = top.call_starting_at(float(memory.schedule.sigmas[start_step]))
    spec = BCGSpec(free_mask=region.float(), reference=top, schedule_sigmas=memory.schedule.sigmas,
                   start_step=start_step, free_init=below.x[c0], label="DeleteLayer")
    mqd_run = MQDRun(*_routing(remaining))
    tail = sampling.run(model, memory.schedule, memory.top.positive, memory.top.negative, memory.latent_shape,
                        seed, spec, mqd_run)
    if tail.calls != top.calls - c0:
        raise RuntimeError(f"deletion made {tail.calls} model calls, the stored schedule has {top.calls - c0}")
    regenerated = Trajectory(top.sigmas, top.steps, torch.cat([_prefix(top, c0, region, below), tail.x]), tail.final)
    updated = remaining[:index] + [replace(layer, trajectory=layer.trajectory.replaced_in(region, regenerated))
                                   for layer in remaining[index:]]
    return memory.with_layers(tuple(updated))
