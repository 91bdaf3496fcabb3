"""A memory whose background is a given picture, so users can edit their own images layer by layer.

No model call is made. The background's trajectory is what the memory's own sampler does on the
memory's fixed schedule when the model predicts the picture's latent at every call: a valid
noisy path to the picture, with the same calls (one or two a step, ancestral noise and all) that
later layers replay. Its final latent is set to the picture's latent itself, so outside all
masks the final composite is the encoded picture, bit for bit.
"""
from __future__ import annotations

import comfy.patcher_extension
import comfy.sample
import comfy.samplers
import torch

from . import checks, families, limits, model_checks, time_axis, verb_toolkit
from .conditioning import Conditioning
from .errors import LayerMemoryError
from .families import Family
from .memory import LayerMemory, check_layer_name
from .sampling import make_schedule
from .trajectory import Trajectory, TrajectoryRecorder

WRAPPER_KEY = "layer_memory_picture"


class _PictureDenoiser(comfy.samplers.KSamplerX0Inpaint):
    """The sampler's model: records each call's input and predicts the picture."""

    def __init__(self, model_wrap, sigmas, picture: torch.Tensor, recorder: TrajectoryRecorder):
        super().__init__(model_wrap, sigmas)
        self.picture = picture
        self.recorder = recorder

    def __call__(self, x, sigma, denoise_mask=None, model_options={}, seed=None):
        self.recorder.record(sigma, x)
        return self.picture.expand_as(x).clone()


class _PictureRun:
    """SAMPLER_SAMPLE wrapper: the KSAMPLER's own sampler function around a _PictureDenoiser."""

    def __init__(self, picture: torch.Tensor):
        self.picture = picture  # [1, C, h, w], model-internal latent space
        self.trajectory: Trajectory | None = None

    def __call__(self, executor, guider, sigmas, extra_args, callback, noise, latent_image,
                 denoise_mask, disable_pbar):
        sampler = executor.class_obj
        if not isinstance(sampler, comfy.samplers.KSAMPLER):
            raise LayerMemoryError("sampler_name",
                                   f"{type(sampler).__name__} is not a k-diffusion sampler",
                                   "pick one of ComfyUI's KSampler samplers, e.g. dpmpp_2m")
        picture = self.picture.to(noise.device, noise.dtype)
        recorder = TrajectoryRecorder()
        model_k = _PictureDenoiser(guider, sigmas, picture, recorder)
        model_sampling = guider.inner_model.model_sampling
        x = model_sampling.noise_scaling(sigmas[0], noise, picture,
                                         sampler.max_denoise(guider, sigmas))

        def k_callback(d):
            recorder.step_done(d["i"])

        sampler.sampler_function(model_k, x, sigmas, extra_args=extra_args, callback=k_callback,
                                 disable=True, **sampler.extra_options)
        self.trajectory = recorder.finish(picture)  # the final latent is the picture itself
        return picture


def size_fix(family: Family, width: int, height: int) -> str:
    """A fix that works for a picture of a size the family does not take: an upscale when a side
    is below the minimum (no crop can grow it), else a crop to the multiples below."""
    step, low = family.size_multiple, family.min_size
    if min(width, height) < low:
        up_w, up_h = (max(low, -(-v // step) * step) for v in (width, height))
        return (f"upscale it first: 'Upscale Image' to {up_w}x{up_h} (at least {low} px a side, "
                f"multiples of {step}), or 'Pad Image for Outpainting' up to that size")
    return (f"crop it first, e.g. ImageCrop to {width - width % step}x{height - height % step} "
            f"(multiples of {step}), or 'Upscale Image' to the next multiples of {step}")


def check_picture(image: torch.Tensor, family: Family, input_name: str = "image") -> None:
    """One finite picture of a size the model's family takes."""
    if not isinstance(image, torch.Tensor) or image.dim() != 4 or image.shape[-1] < 3:
        raise LayerMemoryError(input_name, "expected an IMAGE ([batch, height, width, channels])",
                               "connect a LoadImage (or any IMAGE) output")
    if image.shape[0] != 1:
        raise LayerMemoryError(input_name,
                               f"got a batch of {image.shape[0]} pictures; a memory holds one",
                               "pick one picture (e.g. ImageFromBatch with length 1)")
    height, width = int(image.shape[1]), int(image.shape[2])
    try:
        families.require_size(family, width, height)
    except LayerMemoryError as e:
        raise LayerMemoryError(input_name, f"the picture is {width}x{height}: {e.problem}",
                               size_fix(family, width, height)) from None
    if not bool(torch.isfinite(image).all()):
        raise LayerMemoryError(input_name, "the picture has NaN or infinite values",
                               "load the picture again")


def _check_start(model, positive, negative, width: int, height: int, steps: int, cfg: float,
                 sampler_name: str, scheduler: str, name: str
                 ) -> tuple[Family, Conditioning, Conditioning]:
    """Every input of a picture memory but the picture: before any encode or model call."""
    check_layer_name(name)
    verb_toolkit.check_schedule(steps, sampler_name, scheduler)
    family = model_checks.require_supported(model)
    pos = Conditioning.from_comfy(positive, "positive", family, model)
    neg = Conditioning.from_comfy(negative, "negative", family, model)
    checks.check_start(model, width, height, steps, cfg)
    return family, pos, neg


def picture_memory(model, vae, image: torch.Tensor, positive, negative, steps: int, cfg: float,
                   sampler_name: str, scheduler: str, seed: int,
                   name: str = "picture") -> LayerMemory:
    """A one-layer memory whose background is `image` (an IMAGE) encoded with `vae`; every input
    is checked before the VAE encodes anything."""
    family = model_checks.require_supported(model)
    check_picture(image, family)
    height, width = int(image.shape[1]), int(image.shape[2])
    family, pos, neg = _check_start(model, positive, negative, width, height, steps, cfg,
                                    sampler_name, scheduler, name)
    if vae is None:
        raise LayerMemoryError("vae", "no VAE is connected",
                               "connect the VAE output of the model's loader, or a VAELoader")
    channels = getattr(vae, "latent_channels", None)
    if isinstance(channels, int) and channels != family.latent_channels:
        raise _channels_refused(channels, family.latent_channels)
    limits.require_encode_fits(vae, tuple(image.shape))  # the encode itself
    latent = vae.encode(image[:, :, :, :3])
    return _build(model, family, latent, pos, neg, steps, cfg, sampler_name, scheduler, seed, name)


def memory_from_latent(model, latent: torch.Tensor, positive, negative, steps: int, cfg: float,
                       sampler_name: str, scheduler: str, seed: int,
                       name: str = "picture") -> LayerMemory:
    """A one-layer memory whose background is `latent` ([1, C, h, w], ComfyUI's user latent
    space)."""
    _, h, w = (int(v) for v in time_axis.squeeze(latent).shape[1:])
    family, pos, neg = _check_start(model, positive, negative, w * 8, h * 8, steps, cfg,
                                    sampler_name, scheduler, name)
    return _build(model, family, latent, pos, neg, steps, cfg, sampler_name, scheduler, seed, name)


def _channels_refused(got: int, takes: int) -> LayerMemoryError:
    return LayerMemoryError("vae", f"the picture's latent has {got} channels, the model takes "
                                   f"{takes}", "use the VAE that belongs to this model")


def _build(model, family: Family, latent: torch.Tensor, pos: Conditioning, neg: Conditioning,
           steps: int, cfg: float, sampler_name: str, scheduler: str, seed: int,
           name: str) -> LayerMemory:
    """The memory of a checked picture latent: its trajectory on the memory's schedule."""
    latent = time_axis.squeeze(latent)  # Qwen-Image's [1, C, 1, h, w]: one frame
    c, h, w = (int(v) for v in latent.shape[1:])
    fp = model_checks.fingerprint(model, family)
    if c != fp.latent_channels:
        raise _channels_refused(c, fp.latent_channels)
    picture = time_axis.squeeze(model.model.process_latent_in(
        time_axis.model_shaped(model, latent.to(torch.float32)))).to("cpu", torch.float32)
    schedule = make_schedule(model, sampler_name, scheduler, steps, cfg)
    patcher = model.clone()
    run = _PictureRun(picture)
    patcher.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.SAMPLER_SAMPLE, WRAPPER_KEY,
                                 run)
    for patch in time_axis.patches_for(model):
        patch.install(patcher)
    guider = comfy.samplers.CFGGuider(patcher)
    guider.set_conds(pos.to_comfy(), neg.to_comfy())
    guider.set_cfg(schedule.cfg)
    noise = comfy.sample.prepare_noise(torch.zeros(1, c, h, w), seed)
    guider.sample(noise, torch.zeros(1, c, h, w), comfy.samplers.sampler_object(sampler_name),
                  schedule.sigmas.clone(), disable_pbar=True, seed=seed)
    scale = float(model.model.latent_format.scale_factor)
    return verb_toolkit.background_memory(fp, schedule, (c, h, w), scale, pos, neg, seed,
                                          run.trajectory, name or "picture",
                                          latent_shift=verb_toolkit.latent_shift(model))
