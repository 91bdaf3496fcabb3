#!/usr/bin/env python3
"""PixArt op counts at the target depth and steps, from small runs (issue 13's ops target).

A depth-28, 20-step PixArt run takes about 10 minutes on a 2-core CPU, so the op-count target
is read off an exact fit: every count of txt2img and AddLayer(5) (MQD on and off) is
`steps x (a x depth + b) + e x depth + c` (per block and call, per step outside the blocks,
per block once per run: MQD's prompt keys and values, and once per run). Four (depth, steps)
points determine a, b, e, c; every further point must agree within one op, else the script
fails. The target figure is that fit, labelled as such, not a run.

    python3 -m bench.depth_fit                       # points 2x2,4x2,2x4,3x3,3x2 -> 28x20
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from bench import environment, inputs, models, ops
from bench.count_section import count_section

REPO = Path(__file__).resolve().parents[1]

TOP = 5  # default: AddLayer with 5 layers in memory (6 routed groups), the issue-13 target
FITTED = ("txt2img", "add_layer", "add_layer_without_mqd")


def _point(h, workdir: Path, vae, scene, depth: int, steps: int, args) -> dict:
    model, _ = models.load_pixart(workdir, args.size, depth, "fp16")
    work = ops.Workload(h, model, vae, args.size, steps, 4.5, "dpmpp_2m", "karras", 20,
                        args.seed, scene)
    counts = count_section(work, ops.start(work), args.top)
    names = {"txt2img": "txt2img", f"add_layer_{args.top}": "add_layer",
             f"add_layer_{args.top}_without_mqd": "add_layer_without_mqd",
             "delete_layer": "delete_layer"}
    return {names[k]: {m: counts[k][m] for m in ("ops", "kernel_ops", "flops")}
            for k in counts if k in names}


def _terms(depth: int, steps: int) -> list[float]:
    return [steps * depth, steps, depth, 1.0]


def fit(points: dict[tuple[int, int], dict], measure: str) -> dict[str, np.ndarray]:
    """Per fitted count: (a, b, e, c) of steps x (a x depth + b) + e x depth + c from the first
    four points (in the order given), checked on every further one."""
    keys = list(points)
    if len(keys) < 5:
        raise SystemExit("give five points or more: four determine the fit, the rest check it")
    design = np.array([_terms(d, s) for d, s in keys])
    out = {}
    for name in FITTED:
        y = np.array([points[k][name][measure] for k in keys], dtype=float)
        coef = np.linalg.lstsq(design[:4], y[:4], rcond=None)[0]
        worst = float(np.abs(design @ coef - y).max())
        if worst > max(1.0, 1e-9 * float(np.abs(y).max())):  # FLOPs: float rounding only
            raise SystemExit(f"{name} {measure}: the fit misses a point by {worst:.1f} ops")
        out[name] = coef
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--comfyui", default=None, help="ComfyUI checkout")
    p.add_argument("--points", default="2x2,4x2,2x4,3x3,3x2", help="depth x steps, five or more")
    p.add_argument("--target", default="28x20", help="depth x steps the fit is read at")
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--top", type=int, default=TOP, help="layers in memory under the AddLayer")
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--out", default=None, help="JSON file")
    args = p.parse_args()
    from bench.run_bench import boot

    h, root, workdir = boot(SimpleNamespace(comfyui_path=None, comfyui=args.comfyui,
                                            device="cpu", verbose=False))
    vae, _ = models.load_vae("taesd")
    scene = inputs.pick_scene(h, inputs.load_scenes(), min(args.top, TOP), 2, args.size)
    if args.top > TOP:  # more layers than a bench scene has: boxes on a grid (scale_counts)
        from bench.scale_counts import grid_scene

        scene = grid_scene(scene, args.top)
    pairs = [tuple(int(v) for v in s.split("x")) for s in args.points.split(",")]
    points = {pair: _point(h, Path(tempfile.mkdtemp(dir=workdir)), vae, scene, *pair, args)
              for pair in pairs}
    depth, steps = (int(v) for v in args.target.split("x"))
    result = {"points": {f"{d}x{s}": v for (d, s), v in points.items()}, "target": args.target,
              "layers_in_memory": args.top, "size": args.size,
              "environment": environment.describe("cpu", root, REPO, None)}
    for measure in ("ops", "kernel_ops", "flops"):
        coefs = fit(points, measure)
        at = {k: float(c @ _terms(depth, steps)) for k, c in coefs.items()}
        result[f"fit_{measure}"] = {k: [float(v) for v in c] for k, c in coefs.items()}
        result[f"at_target_{measure}"] = at
        ratio = at[FITTED[1]] / at[FITTED[0]]
        print(f"{measure}: txt2img {at[FITTED[0]]:,.0f}, AddLayer({args.top}) "
              f"{at[FITTED[1]]:,.0f} (fit at depth {depth}, {steps} steps): "
              f"AddLayer({args.top}) / txt2img {ratio:.3f}")
    for (d, s), v in points.items():
        print(f"  measured {d}x{s}: " + ", ".join(f"{k} {v[k]['ops']}" for k in v)
              + f"; FLOPs ratio {v[FITTED[1]]['flops'] / v[FITTED[0]]['flops']:.3f}")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
