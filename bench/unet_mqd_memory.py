#!/usr/bin/env python3
"""Device memory UNet MQD holds for one run of the full SDXL UNet at 1024 px (issue 22):
every tensor storage the run caches (keys, values, biases) after its first CFG-batched call,
on meta tensors (bytes by shape, fp16), for the layouts of
bench/scale_counts.py (a background and N boxes on a grid, 77-token prompts).

    python3 -m bench.unet_mqd_memory --layers 1,5,20,50
"""
from __future__ import annotations

import argparse
import dataclasses
import json
from types import SimpleNamespace

import torch

from bench import inputs, scale_counts, sdxl_models

LATENT = 128  # 1024 px


def held_bytes(obj, seen: set[int] | None = None) -> int:
    """Bytes of every distinct tensor storage reachable from `obj` (dicts, tuples, lists,
    dataclasses): views count once, at their storage's size."""
    seen = set() if seen is None else seen
    if isinstance(obj, torch.Tensor):
        storage = obj.untyped_storage()  # views share their base's (meta included)
        if storage._cdata in seen:
            return 0
        seen.add(storage._cdata)
        return storage.nbytes()
    if isinstance(obj, dict):
        return sum(held_bytes(v, seen) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(held_bytes(v, seen) for v in obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return sum(held_bytes(getattr(obj, f.name), seen) for f in dataclasses.fields(obj))
    return 0


def run_bytes(mqd_unet, dm, n_layers: int) -> dict:
    """One run over a background and `n_layers` grid boxes: bytes per cached attribute."""
    base = inputs.Scene("memory", [{"class": "box", "local_prompt": "a box"}], [])
    scene = scale_counts.grid_scene(base, n_layers)
    masks = [inputs.box_mask(o["coordinates"], LATENT)[0] for o in scene.objects]
    meta, dtype = torch.device("meta"), torch.float16
    prompts = [torch.empty(1, 77, 2048, device=meta, dtype=dtype) for _ in range(n_layers + 1)]
    run = mqd_unet.UNetMQDRun(masks, prompts, torch.empty(1, 77, 2048, device=meta, dtype=dtype))
    x = torch.empty(2, 4, LATENT, LATENT, device=meta, dtype=dtype)
    with torch.inference_mode(), run.routing(dm, [1, 0], x, prompts[0].expand(2, -1, -1), dtype):
        pass
    seen: set[int] = set()
    per = {name: held_bytes(value, seen) for name, value in vars(run).items()}
    return {"layers": n_layers, "routed_keys": run.routed_keys,
            "total_bytes": sum(per.values()), "by_attribute": {k: v for k, v in per.items() if v}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--layers", default="1,5,20,50")
    p.add_argument("--out", default=None, help="JSON file")
    args = p.parse_args()
    from bench.run_bench import boot

    h, _, _ = boot(SimpleNamespace(comfyui_path=None, comfyui=None, device="cpu", verbose=False))
    dm = sdxl_models.full_sdxl_model("meta", torch.float16).diffusion_model
    rows = [run_bytes(h.unet_mqd, dm, int(n)) for n in args.layers.split(",")]
    print("layers | routed keys | MQD run cache (MiB)")
    for r in rows:
        print(f"{r['layers']:>6} | {r['routed_keys']:>11} | {r['total_bytes'] / 2**20:,.0f}")
    if args.out:
        from pathlib import Path

        Path(args.out).write_text(json.dumps({"config": vars(args), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
