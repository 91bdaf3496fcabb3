"""Background Consistency Guidance as a SAMPLER_SAMPLE wrapper on a cloned ModelPatcher.

Outside the free mask, every model call's input is replaced by the stored trajectory of the
layer below, the sampler starts from the stored start, and its final latent is replaced by the
stored final latent. Samplers update the latent element by element, so the region outside the
mask is bit-identical to the stored run at every stored point, for deterministic, ancestral
and SDE samplers alike; the model's prediction there is left as it is (storing the stored
run's predictions to force them too would double the memory and change nothing stored).

When the run's model calls do not line up with the stored ones (another schedule, an
adaptive sampler) it falls back to classic latent blending with the memory's final latent,
re-noised to each call's sigma, and says so in the log.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import comfy.model_management
import comfy.patcher_extension
import comfy.samplers
import torch

from .errors import LayerMemoryError
from .trajectory import Trajectory, TrajectoryRecorder

WRAPPER_KEY = "layer_memory_bcg"
log = logging.getLogger("LayerMemory")


# call sigmas depend on the model's outputs: no replay
ADAPTIVE_SAMPLERS = frozenset({"dpm_adaptive"})


@dataclass(frozen=True, eq=False)
class BCGSpec:
    """What one sampling run keeps fixed and what it may change."""

    free_mask: torch.Tensor | None  # [h, w] in 0..1; None: nothing is forced (background run)
    reference: Trajectory | None  # stored run the forced region follows
    schedule_sigmas: torch.Tensor | None = None  # the memory's sigmas, [steps + 1]
    start_step: int = 0  # first step of the stored schedule this run covers
    # [C, h, w] start inside the free region; None: the sampler's noise
    free_init: torch.Tensor | None = None
    unblended_from_step: int | None = None  # from this step on nothing is forced (harmonisation)
    # the memory's sampler: another one makes other calls (no replay)
    sampler_name: str | None = None
    label: str = "BCG"


def _same_sampler(sampler, name: str | None) -> bool:
    """Whether `sampler` (a KSAMPLER) makes the calls the memory's sampler `name` made."""
    if name is None:
        return True
    if name in ADAPTIVE_SAMPLERS:
        return False
    stored = comfy.samplers.sampler_object(name)
    ours, theirs = sampler.sampler_function, getattr(stored, "sampler_function", None)
    same_function = ours is theirs or (
        getattr(ours, "__name__", None) == getattr(theirs, "__name__", None)
        and getattr(ours, "__module__", None) == getattr(theirs, "__module__", None))
    return same_function and (dict(sampler.extra_options)
                              == dict(getattr(stored, "extra_options", {})))


class _Replay:
    """The stored run moved to the sampling device once, and the map from this run's calls to it.

    Whether the run can replay the stored calls is decided once, before sampling, from what is
    known then (the sigmas and the sampler); no call checks anything on the device.
    """

    def __init__(self, spec: BCGSpec, run_sigmas: torch.Tensor, device: torch.device,
                 dtype: torch.dtype, same_sampler: bool = True):
        ref = spec.reference
        expected = (spec.schedule_sigmas[spec.start_step:] if spec.schedule_sigmas is not None
                    else None)
        run = run_sigmas.detach().to("cpu", torch.float32)
        self.exact = same_sampler and expected is not None and expected.shape == run.shape and \
            bool(torch.allclose(run, expected, rtol=1e-6, atol=1e-7))
        self.offset = call_at_step(ref, spec.schedule_sigmas, spec.start_step) if self.exact else 0
        self.stored_calls = ref.calls
        self.ref = ref.to(device, dtype)
        self.mask = spec.free_mask.to(device, dtype)[None, None]

    def call(self, k: int) -> int | None:
        """Stored call index for this run's k-th call, or None once past the stored calls."""
        c = self.offset + k
        if self.exact and c >= self.stored_calls:
            self.exact = False
        return c if self.exact else None


class BCGDenoiser(comfy.samplers.KSamplerX0Inpaint):
    """The sampler's model: forces the stored model inputs outside the free mask and records the
    run."""

    def __init__(self, model_wrap, sigmas, replay: _Replay | None, recorder: TrajectoryRecorder,
                 noise: torch.Tensor, latent_image: torch.Tensor | None = None,
                 unblended_from: int | None = None, reset_call: int | None = None):
        super().__init__(model_wrap, sigmas)
        self.replay = replay
        self.recorder = recorder
        self.noise = noise
        self.latent_image = latent_image
        self.unblended_from = unblended_from
        self.reset_call = reset_call
        self.calls = 0
        self._reset_done = False

    def forced(self, k: int, x: torch.Tensor,
               sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(model input, denoised or None) that the forced region takes at this run's k-th call.

        On the stored path only the input is forced. Off it (latent blending), the prediction is
        forced to the memory's final latent as well, as ComfyUI's own inpainting does.
        """
        c = self.replay.call(k)
        ref = self.replay.ref
        if c is not None:
            return ref.x[c][None], None
        final = ref.final[None]
        return self.inner_model.inner_model.scale_latent_inpaint(x=x, sigma=sigma, noise=self.noise,
                                                                 latent_image=final), final

    def _blend_mode(self, k: int) -> str:
        """'force', 'reset' (the first call of the first unblended step) or 'free'.

        On the stored path that call is known up front (`reset_call`, a stored call index): the
        step's first call, which takes the sampler's own state. Counting sampler callbacks
        instead would put it one call early for samplers that report a step after its first
        call (heun, dpm_2), on a temporary the sampler then drops.
        """
        if self.replay is None:
            return "free"
        if self.reset_call is not None and self.replay.exact:  # set only for a stored tail
            c = self.replay.offset + k
            return "force" if c < self.reset_call else ("reset" if c == self.reset_call
                                                        else "free")
        if self.unblended_from is None or self.recorder.step < self.unblended_from:
            return "force"
        if not self._reset_done and self.recorder.step == self.unblended_from:
            self._reset_done = True
            return "reset"
        return "free"

    def __call__(self, x, sigma, denoise_mask=None, model_options={}, seed=None):
        # /interrupt between model calls, not only at a step's progress report: a two-call step
        # at a large size is long, and nothing of the run is stored until it ends
        comfy.model_management.throw_exception_if_processing_interrupted()
        k = self.calls
        self.calls += 1
        mode = self._blend_mode(k)
        d_ref = None
        if mode != "free":
            x_ref, d_ref = self.forced(k, x, sigma)
            blended = torch.lerp(x_ref, x, self.replay.mask)
            if mode == "reset":
                # The unblended tail starts from the stored latent outside the mask: write it into
                # the sampler's own state (the tensor it passed in), not only into the model input.
                x.copy_(blended)
            x = blended
        out = self.inner_model(x, sigma, model_options=model_options, seed=seed)
        if mode == "force" and d_ref is not None:
            out = torch.lerp(d_ref, out, self.replay.mask)
        self.recorder.record(sigma, x)
        return out


def _reset_call(spec: BCGSpec, replay: _Replay | None) -> int | None:
    """Stored call at which an unblended tail starts: the first call of its first step."""
    if replay is None or not replay.exact or spec.unblended_from_step is None:
        return None
    return call_at_step(spec.reference, spec.schedule_sigmas, spec.unblended_from_step)


def call_at_step(ref: Trajectory, sigmas: torch.Tensor, step: int) -> int:
    """The stored call a run over `sigmas[step:]` lines up with.

    A run from the schedule's very first sigma lines up with call 0 whatever sigma that call
    was made at: on flow models (CONST sampling) samplers such as dpmpp_2m_sde move a first
    sigma of 1 to just below it before their first call (`offset_first_sigma_for_snr`), so
    sigma 1 itself is never recorded.
    """
    if step == 0:
        return 0
    return ref.call_starting_at(float(sigmas[step]))


class BCGSamplerWrapper:
    """SAMPLER_SAMPLE wrapper: runs the KSAMPLER's own sampler function around a BCGDenoiser."""

    def __init__(self, spec: BCGSpec):
        self.spec = spec
        self.last_trajectory: Trajectory | None = None

    def __call__(self, executor, guider, sigmas, extra_args, callback, noise, latent_image,
                 denoise_mask, disable_pbar):
        self._check_latent(noise)
        sampler = executor.class_obj
        if not isinstance(sampler, comfy.samplers.KSAMPLER):
            return self._fallback_custom_sampler(executor, guider, sigmas, extra_args, callback,
                                                 noise, latent_image, disable_pbar)
        spec = self.spec
        model_sampling = guider.inner_model.model_sampling
        extra_args["denoise_mask"] = None
        replay = None
        if spec.reference is not None:
            replay = _Replay(spec, sigmas, noise.device, noise.dtype,
                             _same_sampler(sampler, spec.sampler_name))
        if replay is not None and not replay.exact:
            log.warning("%s: the sampler or its sigmas are not the memory's schedule (%s); falling "
                        "back to latent blending with the memory's final latent re-noised at each "
                        "sigma: outside the mask the model inputs are not the stored ones (so the "
                        "mask's inside sees another context), but the returned latent is the "
                        "memory's final latent there, bit for bit%s.", spec.label,
                        spec.sampler_name,
                        "" if spec.unblended_from_step is None else
                        " (not with an unblended tail: that part is free)")
        initially_exact = replay is not None and replay.exact
        recorder = TrajectoryRecorder(first_step=spec.start_step)
        model_k = BCGDenoiser(guider, sigmas, replay, recorder, noise, latent_image,
                              spec.unblended_from_step, _reset_call(spec, replay))

        x = model_sampling.noise_scaling(sigmas[0], noise, latent_image,
                                         sampler.max_denoise(guider, sigmas))
        if spec.free_init is not None:
            x = spec.free_init.to(x.device, x.dtype)[None].expand_as(x).clone()
        if replay is not None:
            x = torch.lerp(model_k.forced(0, x, sigmas[0:1])[0], x, replay.mask)

        total_steps = len(sigmas) - 1

        def k_callback(d):
            recorder.step_done(d["i"])
            if callback is not None:
                callback(d["i"], d["denoised"], d["x"], total_steps)

        samples = sampler.sampler_function(model_k, x, sigmas, extra_args=extra_args,
                                           callback=k_callback, disable=disable_pbar,
                                           **sampler.extra_options)
        samples = model_sampling.inverse_noise_scaling(sigmas[-1], samples)
        if replay is not None and spec.unblended_from_step is None:
            samples = torch.lerp(replay.ref.final[None], samples, replay.mask)
            if initially_exact and not replay.exact:
                log.warning("%s: the run made more model calls than the stored trajectory; the "
                            "rest of the run used latent blending (not exact outside the mask).",
                            spec.label)
        self.last_trajectory = recorder.finish(samples)
        return samples

    def _check_latent(self, noise: torch.Tensor) -> None:
        mask = self.spec.free_mask
        if mask is None:
            return
        if noise.shape[0] != 1:
            raise LayerMemoryError("latent_image",
                                   f"batch size {noise.shape[0]}; a layer memory holds one image",
                                   "sample a latent of batch size 1")
        if tuple(noise.shape[-2:]) != tuple(mask.shape):
            h, w = mask.shape
            raise LayerMemoryError("latent_image", "the latent is "
                                                   f"{noise.shape[-1] * 8}x{noise.shape[-2] * 8} "
                                                   f"px but the memory is {w * 8}x{h * 8}",
                                   f"use an empty latent of {w * 8}x{h * 8}")

    def _fallback_custom_sampler(self, executor, guider, sigmas, extra_args, callback, noise,
                                 latent_image, disable_pbar):
        """A non-KSAMPLER sampler: let ComfyUI's own inpainting blend with the memory's final
        latent."""
        spec = self.spec
        if spec.reference is None:
            return executor(guider, sigmas, extra_args, callback, noise, latent_image, None,
                            disable_pbar)
        log.warning("%s: sampler %s is not a KSAMPLER; using ComfyUI's latent blending with the "
                    "memory's final latent (not exact outside the mask).", spec.label,
                    type(executor.class_obj).__name__)
        mask = spec.free_mask.to(noise.device, noise.dtype)[None, None].expand_as(noise)
        final = spec.reference.final.to(noise.device, noise.dtype)[None]
        return executor(guider, sigmas, extra_args, callback, noise, final, mask, disable_pbar)


def install(patcher, spec: BCGSpec) -> BCGSamplerWrapper:
    """Add the BCG wrapper to `patcher` (a clone the caller owns) and return it."""
    wrapper = BCGSamplerWrapper(spec)
    patcher.remove_wrappers_with_key(comfy.patcher_extension.WrappersMP.SAMPLER_SAMPLE, WRAPPER_KEY)
    patcher.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.SAMPLER_SAMPLE, WRAPPER_KEY,
                                 wrapper)
    return wrapper
