#!/usr/bin/env python3
"""The scale section (issue 22): what AddLayer, DeleteLayer of layer 1 and EditLayer moving
layer 1 cost against the height of the stack, in ONE command (rerun it after an MQD change).

A stack of N object layers over the background is BUILT for real, one counted AddLayer at a
time (so its memory is a real one and the cost of building it is measured, not inferred). At
every height asked for: the next AddLayer, DeleteLayer of layer 1 and EditLayer of layer 1 to
a shifted box, each counted (ops, kernels = aten ops less views, FLOPs; torch SDPA as on CUDA)
over a txt2img, timed once uncounted (wall and the part outside the diffusion model's forward),
and the bytes its output adds while the memory it came from stays alive (as ComfyUI's cache
keeps both). PixArt, counted end to end at the given size, depth and steps.

Targets, judged at the top height (50 by default): AddLayer FLOPs / txt2img <= 1.03 and kernels
<= 1.05; an edit of layer 1 adds at most (its region's share of the latent) x (the stack's
bytes) + 1 MB; building N layers costs at most 1.05 x N first AddLayers (FLOPs).

    python3 -m bench.scale_section                      # CPU: 512 px, depth 1, 2 steps
    python3 -m bench.scale_section --size 1024 --depth 28 --steps 20   # the issue's scene size
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import torch

from bench import counting, environment, inputs, models, ops

REPO = Path(__file__).resolve().parents[1]
CONSTANT_BYTES = 1_000_000  # the "small constant" an edit may add beyond its region's share
TARGETS = {"add_flops": 1.03, "add_kernels": 1.05, "build_flops": 1.05}


def _counts(c: counting.Count, txt: counting.Count | None = None) -> dict:
    out = {"ops": c.ops, "kernel_ops": c.kernel_ops, "flops": c.flops}
    if txt is not None:
        out["over_txt2img"] = counting.ratio(c, txt)
    return out


def _timed(fn, dm) -> dict:
    """Wall time of one uncounted run and the part of it outside the diffusion model."""
    inside = [0.0]
    start: list[float] = []
    pre = dm.register_forward_pre_hook(lambda *a: start.append(time.perf_counter()))
    post = dm.register_forward_hook(
        lambda *a: inside.__setitem__(0, inside[0] + time.perf_counter() - start.pop()))
    try:
        t0 = time.perf_counter()
        fn()
        wall = time.perf_counter() - t0
    finally:
        pre.remove()
        post.remove()
    return {"wall_s": round(wall, 4), "outside_model_s": round(wall - inside[0], 4)}


def _added_bytes(before, after) -> int:
    """Bytes `after` holds beyond `before`, both alive (shared storage counted once)."""
    from layermem_core.trajectory import storage_bytes

    old = [t for _, t in before.stored_tensors()]  # held parts, not assembled copies
    return storage_bytes(old + [t for _, t in after.stored_tensors()]) - storage_bytes(old)


def _held(memory) -> int:
    from layermem_core.trajectory import storage_bytes

    return storage_bytes([t for _, t in memory.stored_tensors()])


def _moved(obj: dict, dx: float) -> list[float]:
    x0, y0, x1, y1 = obj["coordinates"]
    dx = min(dx, 1.0 - x1) if x1 + dx <= 1.0 else -dx
    return [x0 + dx, y0, x1 + dx, y1]


def _at_height(work: ops.Workload, memory, txt: counting.Count, dm) -> dict:
    """AddLayer of the next object, DeleteLayer of layer 1, EditLayer moving layer 1."""
    h, lo = work.h, work.h.layer_ops
    first = work.scene.objects[0]
    new_box = _moved(first, 0.05)
    grid = memory.latent_hw
    delete_region = lo.deletion_region(memory, 1, 2)
    old_mask = memory.layers[1].latent_mask > 0.5
    new_mask = h.masks.prepare_layer_mask(inputs.box_mask(new_box, work.size), grid, 0, 0) > 0.5
    verbs = {
        "add_layer": (ops.add_layer(work, memory), None),
        "delete_layer_1": (lambda: lo.delete_layer(memory, work.model, 1, seed=work.seed + 7),
                           float(delete_region.float().mean())),
        "move_layer_1": (lambda: h.edit_ops.edit_layer(
            memory, work.model, 1, mask=inputs.box_mask(new_box, work.size)),
            float((old_mask | new_mask).float().mean())),
    }
    stack = _held(memory)
    out = {"layers_in_memory": len(memory.layers), "stack_bytes": stack}
    for name, (fn, share) in verbs.items():
        count, result = counting.count(fn)
        added = _added_bytes(memory, result)
        row = {**_counts(count, txt), **_timed(fn, dm), "added_bytes_with_previous_alive": added}
        if share is not None:
            limit = share * stack + CONSTANT_BYTES
            row.update(region_share=share, added_bytes_limit=limit, added_within=added <= limit)
        out[name] = row
        del result
    return out


def measure(work: ops.Workload, heights: list[int], log=print, partial=None) -> dict:
    """Build the stack to max(heights) object layers, one counted AddLayer at a time
    (`partial(rows)` after every height: a long run leaves what it measured)."""
    dm = work.model.model.diffusion_model
    txt, _ = counting.count(ops.txt2img(work))
    txt_time = _timed(ops.txt2img(work), dm)
    memory = ops.start(work)
    build: list[dict] = []
    rows = {}
    t0 = time.perf_counter()
    for k in range(max(heights) + 1):
        if k in heights:
            log(f"  scale: {k} object layers")
            rows[str(k)] = _at_height(work, memory, txt, dm)
            if partial:
                partial({"txt2img": _counts(txt), "heights": rows, "partial": True})
        if k == max(heights):
            break
        count, memory = counting.count(ops.add_layer(work, memory))
        build.append(_counts(count))
    top = str(max(heights))
    n = len(build)
    build_ratio = {key: sum(b[key] for b in build) / (n * build[0][key])
                   for key in ("ops", "kernel_ops", "flops")}
    add = rows[top]["add_layer"]["over_txt2img"]
    edits = {v: rows[top][v]["added_within"] for v in ("delete_layer_1", "move_layer_1")}
    targets = {
        "add_flops": {"value": add["flops"], "target": f"<= {TARGETS['add_flops']}",
                      "met": add["flops"] <= TARGETS["add_flops"],
                      "description": f"AddLayer FLOPs / txt2img at {top} layers"},
        "add_kernels": {"value": add["kernel_ops"], "target": f"<= {TARGETS['add_kernels']}",
                        "met": add["kernel_ops"] <= TARGETS["add_kernels"],
                        "description": f"AddLayer kernels / txt2img at {top} layers"},
        "build_flops": {"value": build_ratio["flops"], "target": f"<= {TARGETS['build_flops']}",
                        "met": build_ratio["flops"] <= TARGETS["build_flops"],
                        "description": f"building {n} layers / ({n} x the first AddLayer), FLOPs"},
        **{f"{v}_bytes": {"value": rows[top][v]["added_bytes_with_previous_alive"],
                          "target": f"<= share x stack + {CONSTANT_BYTES}", "met": ok,
                          "description": f"{v}: bytes added at {top} layers, previous alive"}
           for v, ok in edits.items()},
    }
    return {"txt2img": {**_counts(txt), **txt_time}, "heights": rows,
            "build": {"add_layers": n, "over_n_first": build_ratio, "per_add": build},
            "build_s": round(time.perf_counter() - t0, 2), "targets": targets}


def print_rows(res: dict) -> None:
    print("objects | verb           | ops/txt  kernels/txt  FLOPs/txt | added MB (limit) | "
          "outside model s")
    for k, row in res["heights"].items():
        for verb in ("add_layer", "delete_layer_1", "move_layer_1"):
            r = row[verb]
            lim = f"{r['added_bytes_limit'] / 1e6:.2f}" if "added_bytes_limit" in r else "-"
            o = r["over_txt2img"]
            print(f"{k:>7} | {verb:14s} | {o['ops']:.3f}  {o['kernel_ops']:.3f}  "
                  f"{o['flops']:.4f} | {r['added_bytes_with_previous_alive'] / 1e6:.2f} ({lim}) "
                  f"| {r['outside_model_s']:.3f}")
    for t in res["targets"].values():
        verdict = "MET" if t["met"] else "MISSED"
        print(f"  {t['description']}: {t['value']:.4g} {t['target']} {verdict}")


def workload(h, workdir: Path, size: int, depth: int, steps: int, objects: int,
             seed: int = 1234) -> ops.Workload:
    """PixArt at `size`/`depth`/`steps` on a grid scene of `objects` boxes (+ spare)."""
    from bench.scale_counts import grid_scene

    vae, _ = models.load_vae("taesd")
    base = inputs.pick_scene(h, inputs.load_scenes(), 5, 2, size)
    model, _ = models.load_pixart(Path(tempfile.mkdtemp(dir=workdir)), size, depth, "fp16")
    return ops.Workload(h, model, vae, size, steps, 4.5, "dpmpp_2m", "karras", 20, seed,
                        grid_scene(base, objects + 1))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--comfyui", default=None, help="ComfyUI checkout")
    p.add_argument("--layers", default="1,10,20,50", help="object layers over the background")
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--depth", type=int, default=1)
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--out", default=None, help="JSON file")
    args = p.parse_args(argv)
    wall = time.perf_counter()
    from bench.run_bench import boot

    h, root, workdir = boot(SimpleNamespace(comfyui_path=None, comfyui=args.comfyui,
                                            device="cpu", verbose=False))
    heights = sorted({int(v) for v in args.layers.split(",")})
    work = workload(h, workdir, args.size, args.depth, args.steps, max(heights))
    def partial(rows: dict) -> None:
        if args.out:
            Path(args.out).write_text(json.dumps({**rows, "config": vars(args)}, indent=1))

    with torch.inference_mode():
        res = measure(work, heights, partial=partial)
    res.update(config=vars(args), what=(
        f"PixArt-alpha, depth {args.depth}, {args.size} px, {args.steps} steps dpmpp_2m, CFG "
        f"batch 2, attention {environment.attention_name()}"),
        environment=environment.describe("cpu", root, REPO, None),
        wall_s=round(time.perf_counter() - wall, 1))
    print(res["what"])
    print_rows(res)
    print(f"wall time: {res['wall_s']} s")
    if args.out:
        Path(args.out).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
