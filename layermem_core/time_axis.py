"""The time axis of video-shaped latents ([B, C, 1, h, w]: Qwen-Image's Wan 2.1 format), kept at
the model's boundary so the rest of the pack stays 2-D.

Memories, trajectories, masks, BCG and the sampler all work on [B, C, h, w]: a model whose
latent format has three latent dimensions gets, on the run's clone, an APPLY_MODEL wrapper that
adds the time axis (length 1) to the model's input and takes it off its output. Samplers are
elementwise in the latent, so a run on [B, C, h, w] is the run on [B, C, 1, h, w] value for
value. A LATENT in from the user is squeezed here, and goes back 5-D through the family's
`latent_out`.
"""
from __future__ import annotations

from typing import Any

import comfy.patcher_extension
import torch

from .errors import LayerMemoryError

WRAPPER_KEY = "layer_memory_time_axis"


def has_time_axis(model: Any) -> bool:
    """Does this ModelPatcher's model take [B, C, T, h, w] latents?"""
    fmt = getattr(getattr(model, "model", None), "latent_format", None)
    return int(getattr(fmt, "latent_dimensions", 2) or 2) == 3


def squeeze(latent: torch.Tensor, input_name: str = "latent") -> torch.Tensor:
    """A user LATENT's samples as the pack's [B, C, h, w]: a 5-D latent must hold one frame."""
    if latent.dim() == 5:
        if latent.shape[2] != 1:
            raise LayerMemoryError(input_name, f"the latent holds {latent.shape[2]} frames "
                                   f"(shape {tuple(latent.shape)}); a layer memory holds one "
                                   "image", "use a latent of one frame (an image, not a video)")
        return latent[:, :, 0]
    return latent


def model_shaped(model: Any, latent: torch.Tensor) -> torch.Tensor:
    """A [B, C, h, w] latent as the model's format takes it (the time axis back where it has
    one), for the format's own process_in / process_out."""
    return latent.unsqueeze(2) if has_time_axis(model) and latent.dim() == 4 else latent


def wrapper(executor, x, t, c_concat=None, c_crossattn=None, control=None,
            transformer_options={}, **kwargs):  # noqa: B006 (ComfyUI's signature)
    """APPLY_MODEL wrapper: the model sees [B, C, 1, h, w], the sampler [B, C, h, w]."""
    if x.dim() != 4:
        return executor(x, t, c_concat, c_crossattn, control, transformer_options, **kwargs)
    out = executor(x.unsqueeze(2), t, c_concat, c_crossattn, control, transformer_options,
                   **kwargs)
    return out.squeeze(2)


def preview_callback(model: Any, callback: Any) -> Any:
    """ComfyUI's preview callback, given 5-D latents where the model's format has a time axis
    (a video previewer such as Wan's TAE decodes [B, C, T, h, w])."""
    if callback is None or not has_time_axis(model):
        return callback

    def shaped(step, x0, x, total_steps):
        return callback(step, model_shaped(model, x0), model_shaped(model, x), total_steps)

    return shaped


class TimeAxisPatch:
    """The wrapper as a run patch (`install(patcher) -> keys`, like MQD's)."""

    def install(self, patcher: Any) -> list:
        apply_model = comfy.patcher_extension.WrappersMP.APPLY_MODEL
        patcher.remove_wrappers_with_key(apply_model, WRAPPER_KEY)
        patcher.add_wrapper_with_key(apply_model, WRAPPER_KEY, wrapper)
        return []


def patches_for(model: Any) -> tuple:
    """The patches a run on `model` needs for its latent's shape (none for a 2-D format)."""
    return (TimeAxisPatch(),) if has_time_axis(model) else ()
