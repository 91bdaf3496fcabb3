"""Every number checked where it enters: node inputs before sampling, memories before they are saved
and after they are loaded. A NaN cfg passes ComfyUI's min/max check and gives a black image and a
memory that cannot be loaded back; a NaN or inf in a file breaks every later edit."""
from __future__ import annotations

import math

import torch

from . import limits
from .conditioning import Conditioning
from .errors import LayerMemoryError
from .memory import LayerMemory


def require_finite(value: object, input_name: str, fix: str) -> None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isfinite(value):
        raise LayerMemoryError(input_name, f"{value!r} is not a finite number", fix)


def require_finite_mask(mask: object, input_name: str = "mask") -> None:
    if isinstance(mask, torch.Tensor) and mask.is_floating_point() \
            and not bool(mask.isfinite().all()):
        raise LayerMemoryError(input_name, "the mask holds NaN or infinite values",
                               "use a mask with values from 0 to 1 (from LoadImage or a mask node)")


def check_start(model, width: int, height: int, steps: int, cfg: float) -> None:
    """LayerMemory's inputs that ComfyUI's own checks let through: a non-finite cfg, a size that
    cannot fit into the free memory."""
    require_finite(cfg, "cfg", "use a guidance scale such as 4.5")
    if isinstance(steps, int) and isinstance(width, int) and isinstance(height, int):
        limits.require_fits(model, (width, height), max(1, steps) * limits.MAX_CALLS_PER_STEP)


def check_add(memory: LayerMemory, model, mask: object) -> None:
    """AddLayer's inputs: the mask's values, and the memory's size against the free memory."""
    require_finite_mask(mask)
    if isinstance(memory, LayerMemory):
        limits.require_fits(model, memory.image_size, memory.top.trajectory.calls)


def _finite(t: torch.Tensor) -> bool:
    return bool(t.isfinite().all())


def _conditioning_problem(c: Conditioning, where: str) -> str | None:
    if not _finite(c.embedding):
        return f"{where} prompt embedding holds NaN or infinite values"
    if c.pooled is not None and not _finite(c.pooled):
        return f"{where} pooled embedding holds NaN or infinite values"
    if any(isinstance(v, float) and not math.isfinite(v) for _, v in c.extras):
        return f"{where} prompt has a non-finite extra"
    return None


def _sigmas_problem(sigmas: torch.Tensor, top: float, where: str) -> str | None:
    s = sigmas.double()
    if not _finite(s) or bool((s < 0).any()) or bool((s > top * (1 + 1e-5) + 1e-6).any()):
        return f"{where} sigmas are not finite numbers from 0 to the schedule's first sigma"
    return None


def memory_problem(memory: LayerMemory) -> str | None:
    """What makes a memory unusable (NaN/inf anywhere, masks outside 0..1, sigmas out of range),
    or None. Run on every memory that is saved or loaded."""
    sched = memory.schedule.sigmas
    if not _finite(sched) or bool((sched < 0).any()):
        return "the schedule's sigmas are not finite non-negative numbers"
    top = float(sched.max()) if sched.numel() else 0.0
    if not math.isfinite(memory.schedule.cfg):
        return "its cfg is not a finite number"
    for i, layer in enumerate(memory.layers):
        m = layer.latent_mask
        if not _finite(m) or bool((m < 0).any()) or bool((m > 1).any()):
            return f"layer {i}'s latent mask has values outside 0..1 (or NaN)"
        t = layer.trajectory
        problem = (_conditioning_problem(layer.positive, f"layer {i}'s positive")
                   or _conditioning_problem(layer.negative, f"layer {i}'s negative")
                   or _sigmas_problem(t.sigmas, top, f"layer {i}'s trajectory"))
        if problem:
            return problem
        if not (_finite(t.x) and _finite(t.final)):
            return f"layer {i}'s stored latents hold NaN or infinite values"
    return None
