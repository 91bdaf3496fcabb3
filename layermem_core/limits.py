"""Refuse an image size that cannot fit before sampling starts.

A model call cannot be interrupted: at 16384 x 16384 the first call grew past 16 GB and the
kernel killed the server. So the pack estimates what one run needs at a size and compares it
with what ComfyUI says is free on the sampling device (system RAM on the CPU).

The estimate, for N = (h/2)(w/2) tokens of PixArt's 2x2 patches and the CFG batch of 2:
- activations: ACTIVATION_COPIES live [N, 1152] tensors per batch row in a DiT block (x, norms,
  q/k/v, attention and projection outputs, the 4x wide MLP hidden state);
- self-attention scores, 16 heads: N x N per head where ComfyUI's attention materialises them
  (`attention_basic`; `attention_split` at its finest 1/64 slicing), otherwise one block of
  SCORE_BLOCK query rows against all N keys (sub-quadratic, PyTorch SDPA, xformers, flash, sage);
- the trajectory: every call's latent recorded, plus the stored one replayed;
- on a GPU, the model's weights that are not loaded yet.
Other model families (SD 1.5/SDXL UNets) use ComfyUI's own estimate for the model instead.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import torch

from . import families
from .errors import LayerMemoryError

HIDDEN, HEADS, CFG_BATCH = 1152, 16, 2
ACTIVATION_COPIES = 16
SCORE_BLOCK = 1024
MAX_CALLS_PER_STEP = 3  # heun/dpm_2/SDE samplers call the model twice a step, some three times
LATENT_CHANNELS = 4
MIN_SIDE = 512


def _attention_mode() -> str:
    try:
        from comfy.ldm.modules import attention
    except ImportError:
        return "blocked"
    fn = attention.optimized_attention
    if fn is attention.attention_basic:
        return "full"
    return "split" if fn is getattr(attention, "attention_split", None) else "blocked"


def run_bytes(width: int, height: int, calls: int, itemsize: int,
              attention: str = "blocked") -> int:
    """Bytes one sampling run at width x height needs on its device (see the module text)."""
    h, w = height // 8, width // 8
    tokens = (h // 2) * (w // 2)
    activations = CFG_BATCH * tokens * HIDDEN * itemsize * ACTIVATION_COPIES
    rows = {"full": tokens, "split": -(-tokens // 64)}.get(attention, min(tokens, SCORE_BLOCK))
    scores = CFG_BATCH * HEADS * rows * tokens * max(itemsize, 4)  # scores are kept in float32
    trajectory = 2 * calls * LATENT_CHANNELS * h * w * 4
    return activations + scores + trajectory


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
    estimate above for PixArt; for other models (SD 1.5/SDXL UNets) ComfyUI's own per-model
    figure, `BaseModel.memory_required`, for the CFG batch, plus the trajectory."""
    inner = model.model
    if families.family_of(model) == "pixart":
        _, itemsize = _device_and_itemsize(model)
        attention = _attention_mode()
        return (lambda w, h: run_bytes(w, h, calls, itemsize, attention)), MIN_SIDE
    latent_format = getattr(inner, "latent_format", None)
    channels = int(getattr(latent_format, "latent_channels", LATENT_CHANNELS))

    def need(w: int, h: int) -> int:
        shape = (CFG_BATCH, channels, h // 8, w // 8)
        return int(inner.memory_required(shape)) + 2 * calls * channels * (h // 8) * (w // 8) * 4

    return need, 64


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
