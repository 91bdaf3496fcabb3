"""One sampling run through ComfyUI's own guider and sampler, with BCG and the family's MQD
scoped to a clone of the caller's ModelPatcher."""
from __future__ import annotations

import weakref
from collections.abc import Sequence

import comfy.sample
import comfy.samplers
import comfy.utils
import latent_preview
import torch

from . import bcg, time_axis
from .conditioning import Conditioning
from .families import AttentionRun
from .memory import Schedule
from .trajectory import Trajectory

_KNOWN: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model_sampling -> {key: sigmas}


def _key(schedule: Schedule) -> tuple:
    return (schedule.sampler_name, schedule.scheduler, schedule.steps)


def remember_sigmas(model, schedule: Schedule) -> None:
    """Keep `schedule`'s sigmas as what `model`'s sampling gives for its sampler, scheduler and
    steps (ComfyUI's ModelSampling nodes put a new model_sampling object on a clone)."""
    _KNOWN.setdefault(model.get_model_object("model_sampling"), {})[_key(schedule)] = \
        schedule.sigmas


def known_sigmas(model, schedule: Schedule) -> torch.Tensor | None:
    """The sigmas this process computed for `model`'s sampling and `schedule`'s key, if any."""
    return _KNOWN.get(model.get_model_object("model_sampling"), {}).get(_key(schedule))


def make_schedule(model, sampler_name: str, scheduler: str, steps: int, cfg: float) -> Schedule:
    """Sigmas exactly as ComfyUI's KSampler computes them (penultimate-sigma rules included)."""
    ks = comfy.samplers.KSampler(model, steps=steps, device="cpu", sampler=sampler_name,
                                 scheduler=scheduler, denoise=1.0)
    schedule = Schedule(ks.sigmas.detach().to("cpu", torch.float32).clone(), sampler_name,
                        scheduler, steps, float(cfg))
    remember_sigmas(model, schedule)
    return schedule


def run(model, schedule: Schedule, positive: Conditioning, negative: Conditioning,
        latent_shape: tuple[int, int, int], seed: int, spec: bcg.BCGSpec,
        mqd_run: AttentionRun | None = None, window: tuple[int, int, int, int] | None = None,
        patches: Sequence = ()) -> Trajectory:
    """Sample from `spec.start_step` to the end of the schedule; returns the recorded trajectory.

    `window` (top, left, height, width in latent cells) samples only that crop of the latent,
    from the crop of the noise the whole picture would start from (`spec` is the crop's);
    `patches` (objects with `install(patcher) -> keys`) go on the clone with MQD.
    The caller's `model` is never changed: patches go on a clone, and the clone's object
    patches are taken off the shared module again when the run ends, raises or is interrupted.
    """
    patcher = model.clone()
    wrapper = bcg.install(patcher, spec)
    patched_keys = mqd_run.install(patcher) if mqd_run is not None else []
    for patch in (*time_axis.patches_for(model), *patches):  # the time axis: Qwen-Image
        patched_keys += patch.install(patcher)
    sigmas = schedule.sigmas[spec.start_step:].clone()
    guider = comfy.samplers.CFGGuider(patcher)
    guider.set_conds(positive.to_comfy(), negative.to_comfy())
    guider.set_cfg(schedule.cfg)
    latent = torch.zeros((1,) + tuple(latent_shape), dtype=torch.float32)
    noise = comfy.sample.prepare_noise(latent, seed)
    if window is not None:
        top, left, h, w = window
        noise = noise[..., top:top + h, left:left + w].contiguous()
        latent = torch.zeros_like(noise)
    sampler = comfy.samplers.sampler_object(schedule.sampler_name)
    callback = time_axis.preview_callback(
        model, latent_preview.prepare_callback(patcher, len(sigmas) - 1))
    try:
        guider.sample(noise, latent, sampler, sigmas, callback=callback,
                      disable_pbar=not comfy.utils.PROGRESS_BAR_ENABLED, seed=seed)
    finally:
        if patched_keys and patcher.object_patches:
            # ComfyUI restores object patches only at the next load; do it now so the shared
            # diffusion model is stock again whatever happened inside the run.
            patcher.unpatch_model(unpatch_weights=False)
    if wrapper.last_trajectory is None:
        raise RuntimeError("the sampler finished without a recorded trajectory")
    return wrapper.last_trajectory
