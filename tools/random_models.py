"""Small random-weight PixArt and TAESD (TAESDXL, TAEF1, TAESD3) files with the real key names.

ComfyUI's own detection (`comfy/model_detection.py`) and loaders take these files, so
tests exercise the same code paths as real checkpoints. Hidden size is fixed at 1152
by ComfyUI's detection; only the depth is ours to shrink.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from safetensors.torch import save_file

HIDDEN = 1152
CAPTION_CHANNELS = 4096  # T5-XXL width


@dataclass(frozen=True)
class PixArtVariant:
    """One checkpoint flavour: alpha (size micro-conditions) or sigma, at 512 or 1024 px."""

    name: str
    image_size: int
    micro_condition: bool

    @property
    def latent_size(self) -> int:
        return self.image_size // 8

    @property
    def filename(self) -> str:
        return f"random_{self.name}.safetensors"


ALPHA_512 = PixArtVariant("pixart_alpha_512", 512, True)
ALPHA_1024 = PixArtVariant("pixart_alpha_1024", 1024, True)
SIGMA_512 = PixArtVariant("pixart_sigma_512", 512, False)
VARIANTS = (ALPHA_512, ALPHA_1024, SIGMA_512)


def _linear(sd: dict, key: str, out_f: int, in_f: int, gen: torch.Generator,
            std: float = 0.02) -> None:
    sd[f"{key}.weight"] = torch.randn(out_f, in_f, generator=gen) * std
    sd[f"{key}.bias"] = torch.randn(out_f, generator=gen) * std


def pixart_state_dict(variant: PixArtVariant, depth: int = 1, seed: int = 0,
                      dtype=torch.float16) -> dict:
    """State dict in the original PixArt key layout that ComfyUI detects as PixArt."""
    gen = torch.Generator().manual_seed(seed)
    h = HIDDEN
    sd: dict[str, torch.Tensor] = {}
    sd["x_embedder.proj.weight"] = torch.randn(h, 4, 2, 2, generator=gen) * 0.05
    sd["x_embedder.proj.bias"] = torch.zeros(h)
    _linear(sd, "t_embedder.mlp.0", h, 256, gen)
    _linear(sd, "t_embedder.mlp.2", h, h, gen)
    _linear(sd, "t_block.1", 6 * h, h, gen)
    _linear(sd, "y_embedder.y_proj.fc1", h, CAPTION_CHANNELS, gen)
    _linear(sd, "y_embedder.y_proj.fc2", h, h, gen)
    sd["y_embedder.y_embedding"] = torch.randn(120, CAPTION_CHANNELS, generator=gen) * 0.02
    tokens = (variant.latent_size // 2) ** 2
    sd["pos_embed"] = torch.zeros(1, tokens, h)
    if variant.micro_condition:
        for emb in ("csize_embedder", "ar_embedder"):
            _linear(sd, f"{emb}.mlp.0", h // 3, 256, gen)
            _linear(sd, f"{emb}.mlp.2", h // 3, h // 3, gen)
    for i in range(depth):
        p = f"blocks.{i}"
        sd[f"{p}.scale_shift_table"] = torch.randn(6, h, generator=gen) / h ** 0.5
        _linear(sd, f"{p}.attn.qkv", 3 * h, h, gen)
        _linear(sd, f"{p}.attn.proj", h, h, gen)
        _linear(sd, f"{p}.cross_attn.q_linear", h, h, gen)
        _linear(sd, f"{p}.cross_attn.kv_linear", 2 * h, h, gen)
        _linear(sd, f"{p}.cross_attn.proj", h, h, gen)
        _linear(sd, f"{p}.mlp.fc1", 4 * h, h, gen)
        _linear(sd, f"{p}.mlp.fc2", h, 4 * h, gen)
    sd["final_layer.scale_shift_table"] = torch.randn(2, h, generator=gen) / h ** 0.5
    _linear(sd, "final_layer.linear", 2 * 2 * 8, h, gen)
    return {k: v.to(dtype).contiguous() for k, v in sd.items()}


def taesd_state_dicts(seed: int = 0, latent_channels: int = 4) -> tuple[dict, dict]:
    """Random TAESD encoder and decoder, shaped by ComfyUI's own `comfy.taesd.taesd` modules
    (latent_channels 16: TAEF1 and TAESD3, the FLUX and SD3 VAE stand-ins that VAELoader lists as
    "taef1" and "taesd3")."""
    from comfy.taesd.taesd import Decoder, Encoder  # needs the host on sys.path

    gen = torch.Generator().manual_seed(seed)
    out = []
    for module in (Encoder(latent_channels), Decoder(latent_channels)):
        sd = {}
        for key, value in module.state_dict().items():
            fan_in = max(1, value[0].numel()) if value.dim() > 1 else 1
            scale = 1.0 / fan_in ** 0.5 if value.dim() > 1 else 0.0
            sd[key] = (torch.randn(value.shape, generator=gen) * scale).contiguous()
        out.append(sd)
    return out[0], out[1]


def write_models(models_dir: str, depth: int = 1, variants=VARIANTS) -> dict[str, str]:
    """Write every variant plus TAESD into a ComfyUI-style models folder; returns name -> path."""
    out: dict[str, str] = {}
    dm = os.path.join(models_dir, "diffusion_models")
    approx = os.path.join(models_dir, "vae_approx")
    os.makedirs(dm, exist_ok=True)
    os.makedirs(approx, exist_ok=True)
    for i, variant in enumerate(variants):
        path = os.path.join(dm, variant.filename)
        if not os.path.exists(path):
            save_file(pixart_state_dict(variant, depth=depth, seed=i), path)
        out[variant.name] = path
    enc, dec = taesd_state_dicts()
    taef1 = taesd_state_dicts(seed=1, latent_channels=16)
    taesd3 = taesd_state_dicts(seed=2, latent_channels=16)
    for name, sd in (("taesd", (enc, dec)), ("taesdxl", (enc, dec)), ("taef1", taef1),
                     ("taesd3", taesd3)):
        for part, tensors in zip(("encoder", "decoder"), sd, strict=True):
            path = os.path.join(approx, f"{name}_{part}.safetensors")
            if not os.path.exists(path):
                save_file({k: v.contiguous() for k, v in tensors.items()}, path)
    return out


# --- Small SD 1.5 / SDXL UNets, built through ComfyUI's own model classes -------------------
# ComfyUI's detection matches SD 1.5 / SDXL on their full widths (model_channels 320, SDXL's
# exact transformer depths), so a CPU-sized UNet cannot come through `load_diffusion_model`.
# These builders use the same classes the loader would pick (`supported_models.SD15` / `SDXL`,
# `model_base.BaseModel` / `SDXL`, `ModelPatcher`) with a shrunken unet_config: three
# resolution levels (latent / 1, / 2, / 4), one transformer per attention level, the real
# context widths (768; 2048 with SDXL's 2816-wide ADM input).


@dataclass(frozen=True)
class UNetVariant:
    """A CPU-sized UNet of one family; `attention_levels` lists the levels that have attn2."""

    name: str
    family: str  # "sd15" or "sdxl"
    context_dim: int
    adm_in_channels: int | None
    use_linear: bool
    model_channels: int
    attention_levels: tuple[int, ...]
    channel_mult: tuple[int, ...] = (1, 2, 2)  # one entry per resolution level

    @property
    def filename(self) -> str:
        return f"random_{self.name}.safetensors"


SD15_SMALL = UNetVariant("sd15_small", "sd15", 768, None, False, 32, (0, 1, 2))
SDXL_SMALL = UNetVariant("sdxl_small", "sdxl", 2048, 2816, True, 64, (1, 2))
UNET_VARIANTS = (SD15_SMALL, SDXL_SMALL)
# ComfyUI's detection takes this one as SD 1.5 (it matches model_channels 320, context 768, no
# ADM, conv proj_in): one level, one res block, ~25M parameters, for `load_diffusion_model`.
UNET_PREFIX = "model.diffusion_model."  # the key prefix of SD / SDXL checkpoint files
SD15_DETECTABLE = UNetVariant("sd15_detectable", "sd15", 768, None, False, 320, (0,), (1,))


def small_unet_config(variant: UNetVariant) -> dict:
    """unet_config in the shape `comfy.model_detection.detect_unet_config` returns."""
    levels = len(variant.channel_mult)
    depth = [1 if level in variant.attention_levels else 0 for level in range(levels)]
    config = {
        "use_checkpoint": False, "image_size": 32, "use_spatial_transformer": True, "legacy": False,
        "in_channels": 4, "out_channels": 4, "model_channels": variant.model_channels,
        "num_res_blocks": [1] * levels, "channel_mult": list(variant.channel_mult),
        "transformer_depth": depth,
        "transformer_depth_output": [d for d in depth for _ in range(2)],
        "transformer_depth_middle": 1, "use_linear_in_transformer": variant.use_linear,
        "context_dim": variant.context_dim, "adm_in_channels": variant.adm_in_channels,
        "use_temporal_resblock": False, "use_temporal_attention": False,
    }
    if variant.adm_in_channels is not None:
        config["num_classes"] = "sequential"
    return config


def _model_config(variant: UNetVariant):
    import comfy.supported_models as sm  # needs the host on sys.path

    cls = {"sd15": sm.SD15, "sdxl": sm.SDXL}[variant.family]
    config = cls(small_unet_config(variant))
    config.set_inference_dtype(torch.float32, None)
    return config


def unet_state_dict(variant: UNetVariant, seed: int = 0) -> dict:
    """Random weights in the SD checkpoint layout (`model.diffusion_model.` keys).

    Shapes come from ComfyUI's own UNetModel for the small config; weights ~ N(0, 1/fan_in),
    biases and norm scales get small noise so that the weight fingerprint sees them.
    """
    config = _model_config(variant)
    unet = config.get_model({}).diffusion_model
    shapes = {UNET_PREFIX + k: v.shape for k, v in unet.state_dict().items()}
    gen = torch.Generator().manual_seed(seed)
    sd = {}
    for key, shape in shapes.items():
        if len(shape) > 1:
            fan_in = max(1, int(torch.Size(shape[1:]).numel()))
            value = torch.randn(shape, generator=gen) / fan_in ** 0.5
        elif key.endswith("weight"):  # norm scales
            value = 1.0 + 0.05 * torch.randn(shape, generator=gen)
        else:
            value = 0.02 * torch.randn(shape, generator=gen)
        sd[key] = value.contiguous()
    return sd


def load_unet(path: str, variant: UNetVariant):
    """A ModelPatcher for a file from `write_unet_models`, built as ComfyUI's loader does it."""
    import comfy.model_management as mm
    import comfy.model_patcher
    import comfy.utils

    config = _model_config(variant)
    model = config.get_model({})
    model.load_model_weights(comfy.utils.load_torch_file(path), UNET_PREFIX)
    model = model.to(mm.unet_offload_device())
    return comfy.model_patcher.ModelPatcher(model, load_device=mm.get_torch_device(),
                                           offload_device=mm.unet_offload_device())


def write_unet_models(models_dir: str, variants=UNET_VARIANTS,
                      dtype=torch.float32) -> dict[str, str]:
    """Write each small UNet as a checkpoint-layout file under `checkpoints/`; name -> path."""
    folder = os.path.join(models_dir, "checkpoints")
    os.makedirs(folder, exist_ok=True)
    out: dict[str, str] = {}
    for i, variant in enumerate(variants):
        path = os.path.join(folder, variant.filename)
        if not os.path.exists(path):
            sd = unet_state_dict(variant, seed=100 + i)
            save_file({k: v.to(dtype).contiguous() for k, v in sd.items()}, path)
        out[variant.name] = path
    return out
