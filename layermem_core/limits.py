"""Refuse an image size that cannot fit before sampling starts.

A model call cannot be interrupted: at 16384 x 16384 the first call grew past 16 GB and the
kernel killed the server. So the pack estimates what one run needs at a size and compares it
with what ComfyUI says is free on the sampling device (system RAM on the CPU).

A family with its own estimate (`Family.run_bytes`: PixArt's, from its token count and the
attention ComfyUI picked) uses it; the others use ComfyUI's own estimate for the model
(`BaseModel.memory_required`) for the CFG batch, plus the trajectory. On a GPU, the model's
weights that are not loaded yet count too.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import torch

from . import families
from .errors import LayerMemoryError

CFG_BATCH = 2
MAX_CALLS_PER_STEP = 3  # heun/dpm_2/SDE samplers call the model twice a step, some three times
LATENT_CHANNELS = 4
MIN_SIDE = 512  # the smallest side named in a picture's refusal (a smaller one is not worth it)


def _attention_mode() -> str:
    try:
        from comfy.ldm.modules import attention
    except ImportError:
        return "blocked"
    fn = attention.optimized_attention
    if fn is attention.attention_basic:
        return "full"
    return "split" if fn is getattr(attention, "attention_split", None) else "blocked"


def _device_and_itemsize(model) -> tuple[torch.device, int]:
    device = getattr(model, "load_device", torch.device("cpu"))
    inner = model.model
    dtype = getattr(inner, "manual_cast_dtype", None) or inner.get_dtype()
    return torch.device(device), (dtype.itemsize if isinstance(dtype, torch.dtype) else 4)


def query_free(device: torch.device) -> int:
    """ComfyUI's own figure for the free memory of `device` (system RAM for the CPU)."""
    import comfy.model_management as mm

    return int(mm.get_free_memory(device))


def free_bytes(model) -> int:
    """What ComfyUI says is free on the model's device, plus, on a GPU, what ComfyUI would unload
    (other models), minus this model's weights that still have to be loaded."""
    device, _ = _device_and_itemsize(model)
    free = query_free(device)
    if device.type in ("cpu", "mps"):
        return free
    import comfy.model_management as mm

    for loaded in list(mm.current_loaded_models):
        other = loaded.model is not None and loaded.model.model is not model.model
        if loaded.device == device and other:
            free += int(loaded.model_loaded_memory())
    return free - max(0, int(model.model_size()) - int(model.loaded_size()))


def _estimator(model, calls: int) -> tuple[Callable[[int, int], int], int]:
    """(bytes a run needs at (width, height), smallest side worth naming) for this model: the
    family's own estimate where it has one, else ComfyUI's per-model figure for the CFG batch,
    plus the trajectory."""
    inner = model.model
    family = families.family_of(model)
    if family is not None and family.run_bytes is not None:
        _, itemsize = _device_and_itemsize(model)
        attention = _attention_mode()
        estimate = family.run_bytes
        return (lambda w, h: estimate(w, h, calls, itemsize, attention)), family.min_size
    latent_format = getattr(inner, "latent_format", None)
    channels = int(getattr(latent_format, "latent_channels", LATENT_CHANNELS))

    def need(w: int, h: int) -> int:
        shape = (CFG_BATCH, channels, h // 8, w // 8)
        return int(inner.memory_required(shape)) + 2 * calls * channels * (h // 8) * (w // 8) * 4

    return need, family.min_size if family is not None else 64


def largest_fitting(width: int, height: int, need: Callable[[int, int], int], free: int,
                    min_side: int = MIN_SIDE) -> tuple[int, int] | None:
    """The largest size with the same aspect ratio (multiples of 16) that fits, or None."""
    best, low, high = None, 1, 4096
    while low <= high:
        k = (low + high) // 2
        w, h = (round(width * k / 4096 / 16) * 16, round(height * k / 4096 / 16) * 16)
        if w >= 16 and h >= 16 and need(w, h) <= free:
            best, low = (w, h), k + 1
        else:
            high = k - 1
    return best if best and min(best) >= min_side else None


def require_fits(model, size: tuple[int, int], calls: int) -> None:
    """Refuse (width, height) when a run there needs more than ComfyUI says is free."""
    width, height = size
    if not hasattr(getattr(model, "model", None), "get_dtype") or not hasattr(model, "load_device"):
        return  # not a ComfyUI diffusion MODEL: model_checks refuses it with its own message
    need_at, min_side = _estimator(model, calls)
    need = need_at(width, height)
    free = free_bytes(model)
    if need <= free:
        return
    fit = largest_fitting(width, height, need_at, free, min_side)
    largest = (f"the largest size with this aspect ratio that fits is about {fit[0]}x{fit[1]}"
               if fit else f"not even {min_side} px fits now")
    raise LayerMemoryError(
        "width/height",
        f"{width}x{height} needs about {need / 2 ** 30:.1f} GiB for sampling, but only "
        f"{max(free, 0) / 2 ** 30:.1f} GiB is free; {largest}",
        "use a smaller width and height (upscale the finished image instead), or free memory",
    )


def vae_encode_bytes(vae, image_shape: tuple[int, ...]) -> int | None:
    """ComfyUI's own estimate of what `vae` needs to encode an IMAGE of `image_shape`
    ([B, H, W, C]), or None when the VAE gives none (then nothing is refused on its account)."""
    estimate = getattr(vae, "memory_used_encode", None)
    dtype = getattr(vae, "vae_dtype", None)
    if not callable(estimate) or not isinstance(dtype, torch.dtype):
        return None
    b, h, w, c = image_shape
    return int(estimate((b, c, h, w), dtype))


def require_encode_fits(vae, image_shape: tuple[int, ...], input_name: str = "image") -> None:
    """Refuse a picture whose VAE encode needs more than ComfyUI says is free on the VAE's device:
    ComfyUI encodes a batch of one whatever its estimate says, so only this check stops it."""
    need = vae_encode_bytes(vae, image_shape)
    if need is None:
        return
    free = query_free(torch.device(getattr(vae, "device", "cpu")))
    if need <= free:
        return
    _, h, w, _ = image_shape
    scale = math.sqrt(max(free, 0) / need)
    fit_w, fit_h = (int(v * scale) // 16 * 16 for v in (w, h))
    fit = (f"about {fit_w}x{fit_h} fits now" if min(fit_w, fit_h) >= MIN_SIDE
           else f"not even {MIN_SIDE} px fits now")
    raise LayerMemoryError(
        input_name,
        f"encoding the {w}x{h} picture needs about {need / 2 ** 30:.1f} GiB (ComfyUI's VAE "
        f"estimate), but only {max(free, 0) / 2 ** 30:.1f} GiB is free; {fit}",
        "scale the picture down first ('Upscale Image' to a smaller size), or free memory",
    )
