"""Random weights for the small joint-attention test models (FLUX, Chroma): one fill rule, so
two families built from the same seed differ only where their architectures do."""
from __future__ import annotations

import torch


@torch.no_grad()
def fill(module: torch.nn.Module, seed: int) -> None:
    """Matrices ~ N(0, 1/fan_in) (activations keep their scale through the stack), norm scales
    near 1, other vectors (biases) small; seeded, in `named_parameters` order."""
    gen = torch.Generator().manual_seed(seed)
    for name, p in module.named_parameters():
        if p.dim() > 1:
            p.copy_(torch.randn(p.shape, generator=gen) / p.shape[1] ** 0.5)
        elif name.endswith("scale") or name.endswith("weight"):  # norm scales
            p.copy_(1.0 + 0.05 * torch.randn(p.shape, generator=gen))
        else:
            p.copy_(0.02 * torch.randn(p.shape, generator=gen))


def patcher(inner, seed: int):
    """A ModelPatcher of ComfyUI's `inner` model with `fill`'s seeded weights, kept on the
    offload device as the loaders keep it."""
    import comfy.model_management as mm
    import comfy.model_patcher

    fill(inner.diffusion_model, seed)
    inner = inner.to(mm.unet_offload_device())
    return comfy.model_patcher.ModelPatcher(inner, load_device=mm.get_torch_device(),
                                           offload_device=mm.unet_offload_device())
