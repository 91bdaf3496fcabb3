"""The benchmark's command line, its CPU-smoke preset and the targets it judges."""

from __future__ import annotations

import argparse
import os
import sys

TARGETS = {  # key: (comparison, limit, text); judged only in the GPU configuration
    "addlayer5_over_txt2img": ("<=", 1.05, "AddLayer with 5 layers in memory <= 1.05x txt2img"),
    "bcg_edit_over_lb_edit": ("<", 1.00, "BCG-alone edit faster than the latent-blending edit"),
    "delete_over_addlayer5": ("<=", 0.45, "DeleteLayer <= 0.45x AddLayer(5)"),
    "ram_mb_per_layer": ("<=", 12.0, "<= 12 MB RAM per layer at 1024 px"),
    "vram_growth_pct": ("<=", 2.0, "device memory of AddLayer with 10 layers <= 2% over txt2img"),
}
COUNT_TARGETS = {  # judged in the count configuration on any device (counts are device-free)
    "ops": ("<=", 1.05, "torch ops dispatched, AddLayer(5) / txt2img"),
    "flops": ("<=", 1.03, "FLOPs, AddLayer(5) / txt2img"),
    "delete_flops": ("<=", 0.45, "FLOPs, DeleteLayer / AddLayer(5)"),
}
SMOKE = {
    "size": 512,
    "steps": 2,
    "depth": 1,
    "layers_in_memory": "1,2",
    "chain": 2,
    "repeats": 1,
    "warmup": 0,
    "forward_iters": 1,
    "vae": "taesd",
    "compile_backend": "eager",
    "sdxl_count_steps": 2,
    "joint_count_steps": 2,
    "joint_memory_size": 256,
    "joint_memory_steps": 2,
}
JOINT_FAMILIES = ("flux", "sd3")  # counts composed on meta and FLUX's memory (joint_section)
FAMILIES = ("pixart", "sdxl", *JOINT_FAMILIES)
JOINT_FULL_SIZE = 1024  # px the FLUX / SD3.5 counts are composed at
SDXL_FULL_SIZE = 1024  # the size the SDXL counts are composed at


def _sdxl_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sdxl-model", choices=("full", "small"), default=None,
                   help="SDXL UNet: full-size (default on cuda) or the small CPU one")
    p.add_argument("--sdxl-size", type=int, default=None,
                   help="SDXL image size in px (default 1024 for the full UNet, else 256)")
    p.add_argument("--sdxl-count-steps", type=int, default=20,
                   help="steps of the SDXL runs whose ops/FLOPs are composed for the full UNet")
    p.add_argument("--sdxl-count-size", type=int, default=256,
                   help="px of the small-UNet runs the SDXL counts are composed from")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Layer-memory benchmark (issue 13); see docs/benchmarks.md"
    )
    p.add_argument("comfyui_path", nargs="?", default=None, help="ComfyUI checkout")
    p.add_argument(
        "--comfyui", default=None, help="ComfyUI checkout (else $COMFYUI_PATH, ~/ComfyUI)"
    )
    p.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    p.add_argument("--cpu-smoke", action="store_true", help="CPU-sized run that checks the script")
    p.add_argument("--families", default="pixart,sdxl",
                   help="families to measure, of pixart,sdxl,flux,sd3 (flux, sd3: counts and "
                   "FLUX's memory per layer only)")
    p.add_argument("--size", type=int, default=1024, help="PixArt image width = height in px")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--depth", type=int, default=28, help="DiT blocks (PixArt-alpha XL-2: 28)")
    p.add_argument("--cfg", type=float, default=4.5)
    p.add_argument("--sampler", default="dpmpp_2m")
    p.add_argument("--scheduler", default="karras")
    p.add_argument("--tokens", type=int, default=20, help="T5 tokens of every prompt")
    p.add_argument("--layers-in-memory", default="1,3,5", help="AddLayer is timed at these sizes")
    p.add_argument("--chain", type=int, default=10, help="layers added for the RAM/VRAM section")
    p.add_argument("--repeats", type=int, default=5, help="interleaved rounds (medians reported)")
    p.add_argument("--warmup", type=int, default=1, help="untimed rounds first")
    p.add_argument("--forward-iters", type=int, default=20, help="timed DiT forwards per variant")
    p.add_argument("--vae", choices=("sd", "taesd"), default=None, help="default: sd on cuda")
    p.add_argument("--dtype", choices=("fp16", "bf16", "fp32"), default="fp16")
    p.add_argument(
        "--compile-backend",
        default="inductor",
        help="TorchCompileModel backend of the compile section, or 'none'",
    )
    p.add_argument("--no-counts", action="store_true", help="skip the op-count/FLOP section")
    p.add_argument("--scenes", default=None, help="scene file (default: bench/data/)")
    p.add_argument("--scene", default=None, help="scene id (default: first with 5 routed objects)")
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument(
        "--out", default=None, help="JSON path (default bench/results/<device>-<date>.json)"
    )
    p.add_argument(
        "--pack-commit",
        default=os.environ.get("LAYERMEM_PACK_COMMIT"),
        help="pack commit to record when the tree has no .git",
    )
    p.add_argument("--verbose", action="store_true", help="keep ComfyUI's INFO log")
    _sdxl_args(p)
    p.add_argument("--joint-count-steps", type=int, default=20,
                   help="steps of the FLUX / SD3.5 runs composed for the full model")
    p.add_argument("--joint-memory-size", type=int, default=1024,
                   help="px of FLUX's memory-per-layer run")
    p.add_argument("--joint-memory-steps", type=int, default=20,
                   help="steps of FLUX's memory-per-layer run")
    return p


def parse_args(argv=None) -> argparse.Namespace:
    p = _parser()
    a = p.parse_args(argv)
    if a.cpu_smoke:
        a.device = "cpu"
        given = {
            x[2:].split("=")[0].replace("-", "_")
            for x in (argv if argv is not None else sys.argv[1:])
            if x.startswith("--")
        }
        for k, v in SMOKE.items():
            if k not in given:
                setattr(a, k, v)
    a.vae = a.vae or ("sd" if a.device == "cuda" else "taesd")
    a.families = [f.strip() for f in str(a.families).split(",") if f.strip()]
    if not a.families or set(a.families) - set(FAMILIES):
        p.error(f"--families takes a comma list of {', '.join(FAMILIES)}")
    a.sdxl_model = a.sdxl_model or ("full" if a.device == "cuda" else "small")
    a.sdxl_size = a.sdxl_size or (1024 if a.sdxl_model == "full" else 256)
    if a.sdxl_size % 8 or a.sdxl_size < 64 or a.sdxl_count_size % 8:
        p.error("--sdxl-size and --sdxl-count-size must be multiples of 8 (>= 64)")
    a.layers_in_memory = sorted({int(x) for x in str(a.layers_in_memory).split(",") if x.strip()})
    if not a.layers_in_memory or min(a.layers_in_memory) < 1:
        p.error("--layers-in-memory needs sizes >= 1 (the background is layer 1)")
    if a.size % 16 or a.size < 512:
        p.error("--size must be a multiple of 16 and >= 512 (PixArt divides by zero below 512)")
    if a.chain < 1 or a.repeats < 1 or a.warmup < 0:
        p.error("--chain and --repeats must be >= 1, --warmup >= 0")
    return a


def is_gpu_config(a: argparse.Namespace) -> bool:
    """The configuration the GPU targets are set for."""
    return (
        a.device == "cuda"
        and a.size == 1024
        and a.steps == 20
        and a.depth == 28
        and a.sampler == "dpmpp_2m"
        and a.cfg == 4.5
        and a.dtype == "fp16"
        and a.vae == "sd"
        and max(a.layers_in_memory) == 5
        and a.chain == 10
        and a.repeats >= 3
    )


def is_sdxl_gpu_config(a: argparse.Namespace) -> bool:
    """The SDXL configuration of issue 11: full UNet, 1024 px, 20 steps, on the GPU."""
    return (
        a.device == "cuda"
        and a.sdxl_model == "full"
        and a.sdxl_size == 1024
        and a.steps == 20
        and a.sampler == "dpmpp_2m"
        and a.dtype == "fp16"
        and a.vae == "sd"
        and max(a.layers_in_memory) == 5
        and a.repeats >= 3
    )


def is_sdxl_count_config(a: argparse.Namespace) -> bool:
    """SDXL counts composed for 20 steps, dpmpp_2m, AddLayer(5)."""
    return a.sdxl_count_steps == 20 and a.sampler == "dpmpp_2m" and max(a.layers_in_memory) == 5


def is_count_config(a: argparse.Namespace) -> bool:
    """The configuration the op-count and FLOP targets are set for (512 or 1024 px)."""
    return (
        a.depth == 28 and a.steps == 20 and a.sampler == "dpmpp_2m" and max(a.layers_in_memory) == 5
    )
