#!/usr/bin/env python3
"""Layer-memory benchmark (issues 4 and 13): what an edit costs against what users do today.

One process boots the real ComfyUI in-process (tools/comfy_host), loads a random-weight
PixArt-alpha with the real key names through ComfyUI's loader, and in ONE run measures:
interleaved rounds of txt2img, AddLayer(1/3/5), the BCG edit, the latent-blending edit and
DeleteLayer (wall, process CPU and GPU time); one DiT forward stock vs MQD; op counts and
FLOPs; the compile section (TorchCompileModel); RAM/VRAM over a chain of layers.

    python bench/run_bench.py --device cuda        # the GPU figures, one command
    python bench/run_bench.py --cpu-smoke          # checks the script (depth 1, 512 px, 2 steps)
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
for _p in (REPO / "tools", REPO):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from bench import config, environment, inputs, models, ops, report, sections, timing  # noqa: E402
from bench.sections import expected_layer_bytes  # noqa: E402, F401  (tests/unit/test_sizes.py)
from bench.table import table  # noqa: E402


def boot(args):
    """ComfyUI booted in-process on the requested device; (host, its root)."""
    import comfy_host

    root = comfy_host.find_comfyui(args.comfyui_path, args.comfyui)
    if root is None:
        raise SystemExit("ComfyUI not found: pass its path, set COMFYUI_PATH or use ~/ComfyUI")
    work = Path(tempfile.mkdtemp(prefix="layermem_bench_"))
    for sub in ("models", "custom_nodes"):
        (work / sub).mkdir()
    h = comfy_host.boot(root, work / "models", work / "custom_nodes", cpu=args.device == "cpu")
    import comfy.model_management as mm
    import comfy.utils

    comfy.utils.set_progress_bar_enabled(False)
    if not args.verbose:
        logging.getLogger().setLevel(logging.WARNING)
    if args.device == "cuda" and mm.get_torch_device().type != "cuda":
        raise SystemExit(f"--device cuda but ComfyUI's device is {mm.get_torch_device()}")
    return h, root, work


def workload(args, h, workdir: Path) -> tuple[ops.Workload, dict]:
    model, model_info = models.load_pixart(workdir, args.size, args.depth, args.dtype)
    vae, vae_info = models.load_vae(args.vae)
    scenes = inputs.load_scenes(args.scenes)
    scene = inputs.pick_scene(
        h, scenes, max(args.layers_in_memory), args.chain, args.size, args.scene
    )
    work = ops.Workload(
        h,
        model,
        vae,
        args.size,
        args.steps,
        args.cfg,
        args.sampler,
        args.scheduler,
        args.tokens,
        args.seed,
        scene,
    )
    return work, {"model": model_info, "vae": vae_info}


def measure(args, work: ops.Workload) -> dict:
    """Every section, in an order that keeps the edits' timings apart from compile state."""
    from bench.compile_section import compile_section
    from bench.count_section import count_section

    clock = timing.Clock(args.device == "cuda")
    top = max(args.layers_in_memory)
    log("[1] warm-up txt2img and LayerMemory background")
    m = sections.batch_probe(work)
    start, background = clock.run(lambda: ops.start(work))
    m["start_memory_s"] = start
    log(f"[2] interleaved edits: {args.warmup} warm-up + {args.repeats} rounds")
    m["edits"] = sections.edits_section(
        work, clock, background, args.layers_in_memory, args.repeats, args.warmup
    )
    log("[3] one DiT forward, stock vs MQD")
    m["forward"] = sections.forward_section(
        work, clock, ops.stacked(work, background, top + 1), args.forward_iters, args.warmup
    )
    if not args.no_counts:
        log("[4] op counts and FLOPs")
        m["counts"] = count_section(work, background, top)
    log(f"[5] RAM / VRAM over {args.chain} added layers")
    m["memory_growth"] = sections.memory_section(work, clock, background)
    if args.compile_backend != "none":
        log(f"[6] compile section ({args.compile_backend})")
        m["compile"] = compile_section(
            work, clock, background, top, args.compile_backend, args.repeats
        )
    return m


def result_of(args, m: dict, env: dict, info: dict, work: ops.Workload, wall: float) -> dict:
    gpu_config = config.is_gpu_config(args)
    r = report.ratios(m, max(args.layers_in_memory))
    cfg = {
        k: getattr(args, k)
        for k in (
            "size",
            "steps",
            "depth",
            "cfg",
            "sampler",
            "scheduler",
            "tokens",
            "layers_in_memory",
            "chain",
            "repeats",
            "warmup",
            "forward_iters",
            "vae",
            "seed",
            "compile_backend",
        )
    }
    cfg.update(
        batch=1,
        checkpoint_dtype=args.dtype,
        scene_file=inputs.SCENE_FILE.name,
        scene=work.scene.scene_id,
        scene_objects=[o["class"] for o in work.scene.objects],
        chain_objects=[o["class"] for o in work.scene.chain_objects],
    )
    kind = "gpu" if gpu_config else ("cpu-smoke" if args.cpu_smoke else f"custom-{args.device}")
    return {
        "benchmark": "layer memory: edit cost vs txt2img and latent blending (issue 13)",
        "kind": kind,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "environment": env,
        "config": cfg,
        **info,
        "measurements": m,
        "ratios": r,
        "targets": report.judge(r, m.get("counts"), gpu_config, config.is_count_config(args)),
        "bench_wall_s": round(wall, 2),
    }


def write(result: dict, out: str | None) -> Path:
    name = f"{environment.slug(result['environment']['device'])}-{_dt.date.today()}.json"
    path = Path(out) if out else REPO / "bench" / "results" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(result, indent=2))
    tmp.replace(path)
    return path


def log(msg: str) -> None:
    print(msg, flush=True)


def main(argv=None) -> int:
    args = config.parse_args(argv)
    h, root, workdir = boot(args)
    import torch

    env = environment.describe(args.device, root, REPO, args.pack_commit)
    log(f"LayerMemory benchmark on {env['device']}; ComfyUI at {root}")
    work, info = workload(args, h, workdir)
    wall = time.perf_counter()
    with torch.inference_mode():  # as ComfyUI's executor runs every node
        m = measure(args, work)
    result = result_of(args, m, env, info, work, time.perf_counter() - wall)
    path = write(result, args.out)
    print()
    print(table(result))
    print(f"\nJSON: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
