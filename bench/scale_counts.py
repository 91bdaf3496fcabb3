#!/usr/bin/env python3
"""AddLayer's cost against the height of the stack (issue 22): ops, kernels and FLOPs over a
txt2img with 1 to 50 layers in memory, with the attention ComfyUI runs on CUDA (torch SDPA).

The layers are boxes on a grid (each owns tokens, so every layer's prompt is routed); memories
are stacked without sampling each layer (bench/ops.py: the cost depends on masks and prompts,
not on the stored values). Every count is one real run, side by side in one process.
PixArt is counted end to end at the given depth and size; SDXL (`--family sdxl`) is composed
for the full UNet at 1024 px as bench/sdxl_counts.py does (real runs of the small UNet at
256 px, every model call replayed on the full UNet on meta tensors).

    python3 -m bench.scale_counts                        # PixArt 512 px, depth 2, 2 steps
    python3 -m bench.scale_counts --family sdxl --steps 20 --layers 1,5,10,20,50
"""
from __future__ import annotations

import argparse
import json
import math
import tempfile
from pathlib import Path
from types import SimpleNamespace

from bench import counting, environment, inputs, models, ops

REPO = Path(__file__).resolve().parents[1]


def grid_scene(base: inputs.Scene, n_objects: int) -> inputs.Scene:
    """`n_objects` boxes on a square grid (a little overlap), with prompts of the scene's own."""
    side = math.ceil(math.sqrt(n_objects))
    cell = 1.0 / side
    objects = []
    for k in range(n_objects):
        row, col = divmod(k, side)
        src = base.objects[k % len(base.objects)]
        box = [col * cell, row * cell, min(1.0, (col + 1.2) * cell), min(1.0, (row + 1.2) * cell)]
        objects.append({**src, "class": f"{src['class']}_{k}", "coordinates": box,
                        "local_prompt": f"{src['local_prompt']} (object {k})"})
    return inputs.Scene(base.scene_id + "-grid", objects, objects)


def routing(work: ops.Workload, background, top: int) -> dict:
    """The keys AddLayer's PixArt MQD run holds per block with `top` layers in memory: the
    routed keys, and with a band plan its bands, keys per band and keys held."""
    run = work.h.pixart_mqd.MQDRun.for_layers(ops.stacked(work, background, top + 1).layers)
    bands = run.bands
    return {"routed_keys": run.routed_keys, "bands": bands.count if bands else 1,
            "keys_per_band": bands.keys if bands else run.routed_keys,
            "held_keys": bands.count * bands.keys if bands else run.routed_keys}


def measure(work: ops.Workload, background, tops: list[int]) -> dict:
    txt, _ = counting.count(ops.txt2img(work))
    rows = {"txt2img": txt.as_dict()}
    for top in tops:
        memory = ops.stacked(work, background, top)
        add, _ = counting.count(ops.add_layer(work, memory))
        rows[f"add_layer_{top}"] = {**add.as_dict(), "ratios": counting.ratio(add, txt),
                                    "routing": routing(work, background, top)}
    return rows


def measure_sdxl(work: ops.Workload, background, tops: list[int]) -> dict:
    """The same rows, composed for the full SDXL UNet (bench/sdxl_counts.py)."""
    from bench import config, sdxl_counts

    routed_cls = work.h.unet_mqd.RoutedAttn2
    dm = work.model.model.diffusion_model
    full = sdxl_counts.FullUNet(work, config.SDXL_FULL_SIZE)
    txt, _ = sdxl_counts.count_verb(ops.txt2img(work), dm, routed_cls, full)
    rows = {"txt2img": txt}
    for top in tops:
        memory = ops.stacked(work, background, top)
        add, _ = sdxl_counts.count_verb(ops.add_layer(work, memory), dm, routed_cls, full)
        c, t = add["composed"], txt["composed"]
        add["ratios"] = {k: c[k] / t[k] for k in ("ops", "kernel_ops", "flops")}
        rows[f"add_layer_{top}"] = add
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--comfyui", default=None, help="ComfyUI checkout")
    p.add_argument("--family", choices=("pixart", "sdxl"), default="pixart")
    p.add_argument("--layers", default="1,5,10,20", help="layers in memory (background counted)")
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--depth", type=int, default=2)
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--out", default=None, help="JSON file")
    args = p.parse_args()
    from bench.run_bench import boot

    h, root, workdir = boot(SimpleNamespace(comfyui_path=None, comfyui=args.comfyui,
                                            device="cpu", verbose=False))
    tops = [int(v) for v in args.layers.split(",")]
    vae, _ = models.load_vae("taesd")
    base = inputs.pick_scene(h, inputs.load_scenes(), 5, 2, args.size)
    scene = grid_scene(base, max(tops))
    if args.family == "sdxl":
        from bench import sdxl_workload

        small, _ = sdxl_workload.load_model("small", Path(tempfile.mkdtemp(dir=workdir)), "fp32")
        work = sdxl_workload.workload(
            SimpleNamespace(cfg=4.5, sampler="dpmpp_2m", scheduler="karras", seed=args.seed),
            h, small, vae, scene, 256, args.steps)
        rows = measure_sdxl(work, ops.start(work), tops)
        what = (f"SDXL composed for the full UNet at 1024 px (small UNet runs at 256 px), "
                f"{args.steps} steps")
    else:
        model, _ = models.load_pixart(Path(tempfile.mkdtemp(dir=workdir)), args.size,
                                      args.depth, "fp16")
        work = ops.Workload(h, model, vae, args.size, args.steps, 4.5, "dpmpp_2m", "karras", 20,
                            args.seed, scene)
        rows = measure(work, ops.start(work), tops)
        what = f"PixArt-alpha, depth {args.depth}, {args.size} px, {args.steps} steps"
    print(f"{what} dpmpp_2m, CFG batch 2, attention {environment.attention_name()}")
    print("layers in memory | AddLayer/txt2img ops | kernels | FLOPs")
    for top in tops:
        r = rows[f"add_layer_{top}"]["ratios"]
        print(f"{top:>16} | {r['ops']:.3f} | {r['kernel_ops']:.3f} | {r['flops']:.4f}")
    if args.out:
        Path(args.out).write_text(json.dumps(
            {"config": vars(args), "rows": rows,
             "environment": environment.describe("cpu", root, REPO, None)}, indent=1))


if __name__ == "__main__":
    main()
