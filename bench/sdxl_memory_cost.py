#!/usr/bin/env python3
"""Memory cost of a layer memory at SDXL 1024 px, measured on a real memory (issue 11).

A memory's size depends on the latent (4 x 128 x 128 for SDXL at 1024 px), the number of
model calls (20 for dpmpp_2m at 20 steps), the prompts' token count and width (CLIP-L + G,
2048; 77 tokens per chunk) and SDXL's pooled output (1280), not on the UNet's width. So the
small random SDXL UNet of tools/random_models.py (ComfyUI's SDXL classes, real context and
ADM widths) makes a memory of exactly the size a real SDXL checkpoint would. This script
builds one (background + `--layers` objects) in the booted host on the CPU and reports RAM
(`LayerMemory.nbytes`) and saved file sizes (float32 and float16 trajectories).

    COMFYUI_PATH=~/ComfyUI python3 -m bench.sdxl_memory_cost --layers 2 --steps 20
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--tokens", type=int, default=77)
    args = ap.parse_args()
    from tools import comfy_host

    work = Path(tempfile.mkdtemp(prefix="lm_sdxl_cost_"))
    (work / "models").mkdir()
    (work / "custom_nodes").mkdir()
    host = comfy_host.boot(comfy_host.find_comfyui(), work / "models", work / "custom_nodes")
    from tools import scenes
    from tools import unet_scenes as us

    model, size = us.model("sdxl"), args.size
    cond = lambda seed: us.cond("sdxl", seed, tokens=args.tokens)  # noqa: E731
    t0 = time.time()
    memory = host.layer_ops.start_memory(model, cond(1), cond(2), size, size, seed=1,
                                         steps=args.steps, cfg=6.0, sampler_name="dpmpp_2m",
                                         scheduler="karras")
    rows = [_row(host, memory, work, time.time() - t0)]
    for i in range(args.layers):
        t0 = time.time()
        box = (0.1 + 0.15 * i, 0.1, 0.5 + 0.15 * i, 0.6)
        memory = host.layer_ops.add_layer(
            memory, model, cond(10 + i), scenes.box_mask(size, *box), seed=20 + i
        )
        rows.append(_row(host, memory, work, time.time() - t0))
    _report(rows, size, args.steps, args.tokens, memory.top.trajectory.calls)


def _report(rows: list, size: int, steps: int, tokens: int, calls: int) -> None:
    print(f"SDXL {size} px, {steps} steps dpmpp_2m, {tokens}-token prompts, "
          f"{calls} model calls per layer")
    print("layers | RAM MB | file fp32 MB | file fp16 MB | CPU s for this layer")
    for n, (ram, f32, f16, secs) in enumerate(rows, start=1):
        print(f"{n:6d} | {ram / 1e6:6.2f} | {f32 / 1e6:12.2f} | {f16 / 1e6:12.2f} | {secs:6.1f}")
    if len(rows) > 2:
        d = [b - a for a, b in zip(rows[1][:3], rows[2][:3], strict=True)]
        print(f"per added layer: RAM {d[0] / 1e6:.2f} MB, fp32 file {d[1] / 1e6:.2f} MB, "
              f"fp16 file {d[2] / 1e6:.2f} MB")


def _row(host, memory, work: Path, seconds: float) -> tuple[int, int, int, float]:
    f32 = host.serialization.save(memory, str(work / "m32.safetensors"))
    f16 = host.serialization.save(memory, str(work / "m16.safetensors"), trajectory_dtype="float16")
    loaded = host.serialization.load(str(work / "m32.safetensors"))
    assert loaded.top.positive.pooled is not None and loaded.fingerprint.family == "sdxl"
    os.unlink(work / "m32.safetensors")
    os.unlink(work / "m16.safetensors")
    return memory.nbytes(), f32, f16, seconds


if __name__ == "__main__":
    main()
