"""Random-weight models with the real key names, loaded through ComfyUI's own loaders."""

from __future__ import annotations

import time
from pathlib import Path

import torch

DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}


def load_pixart(workdir: Path, size: int, depth: int, dtype: str) -> tuple[object, dict]:
    """A PixArt-alpha checkpoint of `depth` blocks written and loaded as a user's would be."""
    import comfy.sd
    from safetensors.torch import save_file

    from tools import random_models

    variant = random_models.PixArtVariant(f"pixart_alpha_{size}", size, True)
    path = workdir / "models" / "diffusion_models" / variant.filename
    path.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    save_file(
        random_models.pixart_state_dict(variant, depth=depth, seed=0, dtype=DTYPES[dtype]),
        str(path),
    )
    t_write = time.perf_counter() - t0
    t0 = time.perf_counter()
    model = comfy.sd.load_diffusion_model(str(path))
    bm = model.model
    info = {
        "architecture": f"PixArt-alpha (PixArtMS), {len(bm.diffusion_model.blocks)} blocks, "
        "hidden 1152, random weights",
        "checkpoint_dtype": dtype,
        "checkpoint_bytes": path.stat().st_size,
        "compute_dtype": str(bm.manual_cast_dtype or bm.get_dtype()),
        "weight_dtype": str(bm.get_dtype()),
        "load_device": str(model.load_device),
        "write_s": round(t_write, 3),
        "load_s": round(time.perf_counter() - t0, 3),
    }
    return model, info


def _sd_vae_state_dict() -> dict:
    """comfy/sd.py's default SD1.x VAE config with random weights (real names and shapes)."""
    from comfy.ldm.models.autoencoder import AutoencoderKL

    ddconfig = {
        "double_z": True,
        "z_channels": 4,
        "resolution": 256,
        "in_channels": 3,
        "out_ch": 3,
        "ch": 128,
        "ch_mult": [1, 2, 4, 4],
        "num_res_blocks": 2,
        "attn_resolutions": [],
        "dropout": 0.0,
    }
    shapes = {
        k: v.shape for k, v in AutoencoderKL(ddconfig=ddconfig, embed_dim=4).state_dict().items()
    }
    g = torch.Generator().manual_seed(7)
    sd = {}
    for k, shape in shapes.items():
        if len(shape) > 1:
            sd[k] = (
                torch.randn(shape, generator=g) / max(1, int(torch.Size(shape[1:]).numel())) ** 0.5
            )
        else:
            sd[k] = (
                torch.ones(shape) if k.endswith("weight") and "norm" in k else torch.zeros(shape)
            )
    return sd


def load_vae(kind: str) -> tuple[object, dict]:
    """A random SD VAE ("sd") or TAESD ("taesd") through comfy.sd.VAE."""
    import comfy.sd

    if kind == "taesd":
        from tools import random_models

        enc, dec = random_models.taesd_state_dicts(seed=0)
        sd = {f"taesd_encoder.{k}": v for k, v in enc.items()}
        sd.update({f"taesd_decoder.{k}": v for k, v in dec.items()})
        sd["vae_scale"], sd["vae_shift"] = torch.tensor(0.18215), torch.tensor(0.0)
        text = "TAESD (random weights, ComfyUI's comfy.taesd modules)"
    else:
        sd = _sd_vae_state_dict()
        text = (
            "SD VAE architecture (AutoencoderKL, default ddconfig of comfy/sd.py), random weights"
        )
    vae = comfy.sd.VAE(sd=sd)
    return vae, {
        "kind": text,
        "parameters": int(sum(v.numel() for v in sd.values())),
        "dtype": str(vae.vae_dtype),
        "device": str(vae.device),
    }
