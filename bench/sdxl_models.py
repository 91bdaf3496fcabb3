"""SDXL UNets for the benchmark: the full-size architecture and the small CPU test UNet.

The full-size one is ComfyUI's `supported_models.SDXL` config and `model_base.SDXL` class with
SDXL base's real unet_config (2.57 B parameters) and random weights: the same compute as a real
checkpoint, nothing downloaded. Built on "meta" it has shapes and no storage, which is how the
count section measures the full architecture's ops and FLOPs on a CPU.
"""

from __future__ import annotations

from pathlib import Path

import torch

SDXL_FULL = {  # what comfy.model_detection returns for SDXL base 1.0
    "use_checkpoint": False,
    "image_size": 32,
    "use_spatial_transformer": True,
    "legacy": False,
    "num_classes": "sequential",
    "adm_in_channels": 2816,
    "in_channels": 4,
    "out_channels": 4,
    "model_channels": 320,
    "num_res_blocks": [2, 2, 2],
    "channel_mult": [1, 2, 4],
    "transformer_depth": [0, 0, 2, 2, 10, 10],
    "transformer_depth_output": [0, 0, 0, 2, 2, 2, 10, 10, 10],
    "transformer_depth_middle": 10,
    "use_linear_in_transformer": True,
    "context_dim": 2048,
    "use_temporal_resblock": False,
    "use_temporal_attention": False,
}
DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}


@torch.no_grad()
def full_sdxl_model(device, dtype: torch.dtype):
    """model_base.SDXL with the full config; random N(0, 1/fan_in) weights unless on meta."""
    import comfy.supported_models as sm

    config = sm.SDXL(dict(SDXL_FULL))
    config.set_inference_dtype(dtype, None)
    model = config.get_model({}, device=device)
    if torch.device(device).type != "meta":
        gen = torch.Generator(device=device).manual_seed(0)
        for p in model.diffusion_model.parameters():
            std = max(1, p[0].numel()) ** -0.5 if p.dim() > 1 else 0.02
            p.normal_(0.0, std, generator=gen)
    return model


def _patcher(model):
    import comfy.model_management as mm
    import comfy.model_patcher

    return comfy.model_patcher.ModelPatcher(
        model, load_device=mm.get_torch_device(), offload_device=mm.unet_offload_device()
    )


def load_full(dtype: str) -> tuple[object, dict]:
    """A ModelPatcher of the full-size SDXL UNet, built on ComfyUI's device."""
    import comfy.model_management as mm

    model = full_sdxl_model(mm.get_torch_device(), DTYPES[dtype])
    params = sum(p.numel() for p in model.diffusion_model.parameters())
    return _patcher(model), {
        "architecture": f"SDXL base UNet (full unet_config), {params / 1e9:.2f} B parameters, "
        "random weights",
        "checkpoint_dtype": dtype,
        "parameters": params,
    }


def load_small(workdir: Path) -> tuple[object, dict]:
    """tools/random_models.SDXL_SMALL, written as a checkpoint file and loaded back (fp32)."""
    from tools import random_models

    variant = random_models.SDXL_SMALL
    paths = random_models.write_unet_models(str(workdir / "models"), (variant,))
    model = random_models.load_unet(paths[variant.name], variant)
    params = sum(p.numel() for p in model.model.diffusion_model.parameters())
    return model, {
        "architecture": f"small SDXL UNet (tools/random_models.SDXL_SMALL: model_channels "
        f"{variant.model_channels}, 3 levels), {params / 1e6:.1f} M parameters, random weights",
        "checkpoint_dtype": "fp32",
        "parameters": params,
    }


def attention_like_cuda(func, *args, **kwargs):
    """ComfyUI's `optimized_attention_override` hook: its torch-SDPA attention, as on CUDA."""
    from comfy.ldm.modules.attention import attention_pytorch

    return attention_pytorch(*args, **kwargs)


def small_meta_model():
    """model_base.SDXL of tools/random_models.SDXL_SMALL on meta (fp32, as the small one loads)."""
    import comfy.supported_models as sm

    from tools import random_models

    config = sm.SDXL(random_models.small_unet_config(random_models.SDXL_SMALL))
    config.set_inference_dtype(torch.float32, None)
    return config.get_model({}, device=torch.device("meta"))


def meta_patcher(model):
    """A ModelPatcher around a model on meta (its patches are only read, never applied)."""
    import comfy.model_patcher

    meta = torch.device("meta")
    return comfy.model_patcher.ModelPatcher(model, load_device=meta, offload_device=meta)
