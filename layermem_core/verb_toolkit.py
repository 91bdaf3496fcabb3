"""The toolkit every verb is built from: the input checks, the layer mask, the regions, one
BCG/MQD sampling run over the stack, the heal of a freed region, and the background builder.

The verbs (layer_ops: start, add, delete; edit_ops: reroll, re-prompt, move; picture: a memory
from a picture) are thin on top: each checks every input first (with these checks), then
samples, then rebuilds the composites above (stack.recompose).
"""
from __future__ import annotations

import logging

import torch

from . import crop as crops
from . import crop_run, families, masks, stack
from .bcg import ADAPTIVE_SAMPLERS, BCGSpec, call_at_step
from .conditioning import Conditioning
from .errors import LayerMemoryError
from .families import AttentionRun
from .memory import Layer, LayerMemory, ModelFingerprint, Schedule
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


def check_fraction(name: str, value: float, low_open: bool, fix: str) -> None:
    ok = (0.0 < value <= 1.0) if low_open else (0.0 <= value < 1.0)
    if not ok:
        interval = "(0, 1]" if low_open else "[0, 1)"
        raise LayerMemoryError(name, f"{value} is outside {interval}", fix)


def unblended_from(steps: int, fraction: float) -> int | None:
    """First unforced step for a fraction of final steps; None when it rounds to no step."""
    free_steps = int(round(fraction * steps))
    return steps - free_steps if free_steps > 0 else None


def check_area(memory: LayerMemory, compute: object, context_margin: object) -> crops.Area:
    """The `compute` / `context_margin` choice for this memory's family, before any work."""
    family = families.get(memory.fingerprint.family)
    return crops.check_area(compute, context_margin, family.crop_cells, family.label,
                            family.crop_why_not)


def sample_over(memory: LayerMemory, model, below: list[Layer], draft: Layer, use_mqd: bool,
                 unblended_fraction: float, label: str,
                 reference: Trajectory | None = None, area: crops.Area | None = None,
                 changed: torch.Tensor | None = None) -> Trajectory:
    """Sample `draft` in its mask over the composite of `below` (or over `reference`, which
    shows the same layers); returns the new layer's composite. Around the mask (`area`), the
    crop covers the draft's mask and `changed` (a move's old mask)."""
    s = memory.schedule
    reference = below[-1].trajectory if reference is None else reference
    spec = BCGSpec(free_mask=draft.latent_mask, reference=reference,
                   schedule_sigmas=s.sigmas,
                   unblended_from_step=unblended_from(s.steps, unblended_fraction),
                   sampler_name=s.sampler_name, label=label)
    crop = None
    if area is not None and area.around:  # the default path computes nothing more than before
        region = masks.support(draft.latent_mask)
        if changed is not None:
            region = region | changed.to(torch.bool)
        crop = crop_run.plan(memory, area, region, label)
    return crop_run.run(memory, model, draft.positive, draft.negative, draft.seed, spec,
                        below + [draft] if use_mqd else None, crop)


def layer_mask(memory: LayerMemory, mask, grow_pixels: int,
               feather_pixels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The layer's latent mask (grown, feathered) and its stored token mask; says so when MQD
    would route no token to the layer (the family's own token rule)."""
    latent_mask = masks.prepare_layer_mask(mask, memory.latent_hw, grow_pixels, feather_pixels)
    family = families.get(memory.fingerprint.family)
    if not family.owns_tokens(latent_mask):
        log.warning("the mask covers no token of %s's grid (%s); MQD routes nothing to the "
                    "layer's prompt.", family.label, family.token_grid)
    return latent_mask, masks.token_mask(latent_mask)


def visible_region(layers: list[Layer], index: int, support: torch.Tensor,
                   heal_grow_pixels: int) -> torch.Tensor:
    """`support` minus every mask newer than `index`, grown by `heal_grow_pixels` latent cells,
    never into a newer mask: a region a verb heals."""
    newer = torch.zeros_like(support, dtype=torch.bool)
    for layer in layers[index + 1:]:
        newer |= masks.support(layer.latent_mask)
    visible = support & ~newer
    return (masks.grow(visible.float(), heal_grow_pixels) > 0) & ~newer


def heal(memory: LayerMemory, model, layers: list[Layer], level: int, region: torch.Tensor,
         regenerate_fraction: float, unblended_fraction: float, seed: int,
         label: str, area: crops.Area | None = None) -> list[Layer]:
    """Regenerate the end of the schedule in `region`, freed at stack index `level`.

    The region starts from the composite below `level` at the start step and is denoised with
    everything else following the top composite and MQD routing the live layers. The result is
    written where the stack keeps heals (`stack.write_tail`): at each pixel into the composite
    of the newest layer that shows there and every one above, so no later rebuild loses it; an
    unforced tail goes there everywhere, not only in the region (around the mask: everywhere
    in the crop, the only place it changed anything).
    """
    s = memory.schedule
    start_step = min(s.steps - 1, max(0, s.steps - int(round(regenerate_fraction * s.steps))))
    top, below = layers[-1].trajectory, layers[level - 1].trajectory
    c0 = call_at_step(top, s.sigmas, start_step)
    free_from = unblended_from(s.steps, unblended_fraction)
    spec = BCGSpec(free_mask=region.float(), reference=top, schedule_sigmas=s.sigmas,
                   start_step=start_step, free_init=below.x[c0], unblended_from_step=free_from,
                   sampler_name=s.sampler_name, label=label)
    crop = crop_run.plan(memory, area, region, label)
    tail = crop_run.run(memory, model, layers[-1].positive, layers[-1].negative, seed, spec,
                        layers, crop)
    if tail.calls != top.calls - c0:
        raise RuntimeError(f"{label} made {tail.calls} model calls, the stored schedule has "
                           f"{top.calls - c0}")
    unforced = free_from is not None
    if unforced and crop is not None:
        region, unforced = crop.mask(memory.latent_hw), False
    return stack.write_tail(layers, region, c0, tail, whole_picture=unforced)


def check_heal(regenerate_fraction: float, unblended_fraction: float) -> None:
    if not 0.0 <= regenerate_fraction <= 1.0:
        raise LayerMemoryError("regenerate_fraction", f"{regenerate_fraction} is outside [0, 1]",
                               "use the fraction of final steps to regenerate, e.g. 0.4 (the "
                               "paper's 8 of 20), or 0 to show exactly what was below")
    check_fraction("unblended_fraction", unblended_fraction, False,
                    "use 0 to keep everything outside the region exact, or e.g. 0.2 (the paper's "
                    "tau/2)")
    if unblended_fraction > regenerate_fraction:
        raise LayerMemoryError("unblended_fraction", f"{unblended_fraction} is more than "
                                                     f"regenerate_fraction {regenerate_fraction}",
                               "leave unblended at most the steps that are regenerated")


def attention_run(memory: LayerMemory, layers: list[Layer]) -> AttentionRun:
    """MQD over `layers` (background first) for the memory's model family."""
    return families.get(memory.fingerprint.family).attention_run(layers)


def latent_shift(model) -> float:
    """The model's latent shift (FLUX's 0.1159; 0 for the SD-style formats that only scale)."""
    return float(getattr(model.model.latent_format, "shift_factor", 0.0) or 0.0)


def background_memory(fingerprint: ModelFingerprint, schedule: Schedule,
                      latent_shape: tuple[int, int, int], latent_scale: float,
                      positive: Conditioning, negative: Conditioning, seed: int,
                      trajectory: Trajectory, name: str, prompt: str = "",
                      latent_shift: float = 0.0) -> LayerMemory:
    """A one-layer memory: the background (mask all ones) with its recorded trajectory. Shared by
    a generated background (LayerMemory) and a picture (LayerMemoryFromImage)."""
    _, h, w = latent_shape
    layer = Layer(name=name, positive=positive, negative=negative, seed=int(seed),
                  latent_mask=torch.ones(h, w),
                  token_mask=torch.ones(h // 2, w // 2, dtype=torch.bool), trajectory=trajectory,
                  prompt=prompt)
    return LayerMemory(fingerprint=fingerprint, schedule=schedule, latent_shape=latent_shape,
                       latent_scale=latent_scale, layers=(layer,), latent_shift=latent_shift)
