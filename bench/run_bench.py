#!/usr/bin/env python3
"""Layer-memory benchmark (issues 4 and 13): what an edit costs against what users do today.

One process boots the real ComfyUI in-process (tools/comfy_host), loads a random-weight
PixArt-alpha with the real key names through ComfyUI's loader and a random-weight SDXL UNet
(ComfyUI's SDXL classes, full size on the GPU), and in ONE run measures both families:
interleaved rounds of txt2img, AddLayer(1/3/5), the BCG edit, the latent-blending edit and
DeleteLayer (wall, process CPU and GPU time); one model forward stock vs MQD; op counts and
FLOPs (SDXL's composed for the full UNet); for PixArt also the compile section
(TorchCompileModel) and RAM/VRAM over a chain of layers.

    python3 -m bench.run_bench --device cuda        # the GPU figures, one command
    python3 -m bench.run_bench --cpu-smoke          # checks the script (small models, 2 steps)
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

from bench import (
    config,
    environment,
    inputs,
    joint_section,
    models,
    ops,
    report,
    sdxl_workload,
    sections,
    timing,
)
from bench.sections import expected_layer_bytes  # noqa: F401  (tests/unit/test_sizes.py)
from bench.table import table

REPO = Path(__file__).resolve().parents[1]


def boot(args):
    """ComfyUI booted in-process on the requested device; (host, its root)."""
    from tools import comfy_host

    root = comfy_host.find_comfyui(args.comfyui_path, args.comfyui)
    if root is None:
        raise SystemExit("ComfyUI not found: pass its path, set COMFYUI_PATH or use ~/ComfyUI")
    work = Path(tempfile.mkdtemp(prefix="layermem_bench_"))
    for sub in ("models", "custom_nodes"):
        (work / sub).mkdir()
    h = comfy_host.boot(root, work / "models", work / "custom_nodes", cpu=args.device == "cpu",
                        pytorch_attention=True)
    import comfy.model_management as mm
    import comfy.utils
    from comfy.ldm.modules import attention

    # every count and time is of the attention ComfyUI runs on CUDA (issue 22: the CPU's
    # sub-quadratic attention dispatches many small ops no GPU run has)
    if attention.optimized_attention is not attention.attention_pytorch:
        raise SystemExit(f"ComfyUI's attention is {attention.optimized_attention.__name__}, not "
                         "torch SDPA: the counts would not track a GPU")

    comfy.utils.set_progress_bar_enabled(False)
    if not args.verbose:
        logging.getLogger().setLevel(logging.WARNING)
    if args.device == "cuda" and mm.get_torch_device().type != "cuda":
        raise SystemExit(f"--device cuda but ComfyUI's device is {mm.get_torch_device()}")
    return h, root, work


def workloads(args, h, workdir: Path) -> tuple[dict[str, ops.Workload], dict]:
    """One Workload per family, sharing the VAE, the scene and the schedule."""
    vae, vae_info = models.load_vae(args.vae)
    scenes = inputs.load_scenes(args.scenes)
    top = max(args.layers_in_memory)
    scene = inputs.pick_scene(h, scenes, top, args.chain, args.size, args.scene)
    works: dict[str, ops.Workload] = {}
    info: dict = {"vae": vae_info, "models": {}}
    if "pixart" in args.families:
        model, info["models"]["pixart"] = models.load_pixart(
            workdir, args.size, args.depth, args.dtype
        )
        works["pixart"] = ops.Workload(
            h, model, vae, args.size, args.steps, args.cfg, args.sampler, args.scheduler,
            args.tokens, args.seed, scene,
        )
    if "sdxl" in args.families:
        model, info["models"]["sdxl"] = sdxl_workload.load_model(
            args.sdxl_model, workdir, args.dtype
        )
        works["sdxl"] = sdxl_workload.workload(
            args, h, model, vae, scene, args.sdxl_size, args.steps
        )
    return works, info


def _forward(args, work: ops.Workload, clock: timing.Clock, background) -> dict:
    top = max(args.layers_in_memory)
    memory = ops.stacked(work, background, top + 1)
    section = sdxl_workload if work.family == "sdxl" else sections
    return section.forward_section(work, clock, memory, args.forward_iters, args.warmup)


def _counts(args, work: ops.Workload, background, workdir: Path) -> dict:
    """PixArt: counted end to end; SDXL: composed for the full UNet (bench/sdxl_counts.py)."""
    from bench import sdxl_counts
    from bench.count_section import count_section

    top = max(args.layers_in_memory)
    if work.family == "pixart":
        return count_section(work, background, top)
    small = work.model if args.sdxl_model == "small" else sdxl_workload.load_model(
        "small", workdir, args.dtype)[0]
    cwork = sdxl_workload.workload(
        args, work.h, small, work.vae, work.scene, args.sdxl_count_size, args.sdxl_count_steps
    )
    return sdxl_counts.count_section(cwork, ops.start(cwork), top, config.SDXL_FULL_SIZE)


def measure(args, h, works: dict[str, ops.Workload], workdir: Path) -> tuple[dict, dict]:
    """Every section, in an order that keeps the edits' timings apart from compile state."""
    from bench.compile_section import compile_section

    clock = timing.Clock(args.device == "cuda")
    top = max(args.layers_in_memory)
    m: dict[str, dict] = {fam: {} for fam in works}
    joint: dict = {}
    if any(f in config.JOINT_FAMILIES for f in args.families):
        joint = joint_section.measure(args, h, log)
    if not works:
        return m, joint
    backgrounds = {}
    log("[1] warm-up txt2img and LayerMemory background, per family")
    for fam, work in works.items():
        m[fam].update(sections.batch_probe(work))
        m[fam]["start_memory_s"], backgrounds[fam] = clock.run(lambda w=work: ops.start(w))
    log(f"[2] interleaved edits of {', '.join(works)}: {args.warmup} warm-up + "
        f"{args.repeats} rounds")
    tables = {
        fam: sections.edit_table(w, backgrounds[fam], args.layers_in_memory)
        for fam, w in works.items()
    }
    for fam, edits in sections.edits_section(clock, tables, args.repeats, args.warmup).items():
        m[fam]["edits"] = edits
    for fam, work in works.items():
        log(f"[3] {fam}: one model forward, stock vs MQD")
        m[fam]["forward"] = _forward(args, work, clock, backgrounds[fam])
        if not args.no_counts:
            log(f"[4] {fam}: op counts and FLOPs")
            m[fam]["counts"] = _counts(args, work, backgrounds[fam], workdir)
    if "pixart" in works:
        work = works["pixart"]
        log(f"[5] pixart: RAM / VRAM over {args.chain} added layers")
        m["pixart"]["memory_growth"] = sections.memory_section(work, clock, backgrounds["pixart"])
        if args.compile_backend != "none":
            log(f"[6] pixart: compile section ({args.compile_backend})")
            m["pixart"]["compile"] = compile_section(
                work, clock, backgrounds["pixart"], top, args.compile_backend, args.repeats
            )
    return m, joint


CONFIG_KEYS = ("families", "size", "steps", "depth", "cfg", "sampler", "scheduler", "tokens",
               "layers_in_memory", "chain", "repeats", "warmup", "forward_iters", "vae", "seed",
               "compile_backend", "sdxl_model", "sdxl_size", "sdxl_count_steps",
               "sdxl_count_size", "joint_count_steps", "joint_memory_size",
               "joint_memory_steps")


SKIP = {"sdxl": ("ram_mb_per_layer", "vram_growth_pct")}


def _judged(args, m: dict) -> tuple[dict, dict]:
    """Per family: ratios, and targets with verdicts where the configuration is the target's."""
    top = max(args.layers_in_memory)
    gpu = {"pixart": config.is_gpu_config(args), "sdxl": config.is_sdxl_gpu_config(args)}
    cnt = {"pixart": config.is_count_config(args), "sdxl": config.is_sdxl_count_config(args)}
    ratios = {fam: report.ratios(mf, top) for fam, mf in m.items()}
    targets = {  # SDXL has no RAM/VRAM section (docs/sdxl.md measures its memory's size)
        fam: report.judge(ratios[fam], mf.get("counts"), gpu[fam], cnt[fam], SKIP.get(fam, ()))
        for fam, mf in m.items()
    }
    return ratios, targets


def result_of(args, m: dict, env: dict, info: dict, works: dict, wall: float) -> dict:
    cfg = {k: getattr(args, k) for k in CONFIG_KEYS}
    cfg.update(batch=1, checkpoint_dtype=args.dtype, scene_file=inputs.SCENE_FILE.name)
    if works:
        scene = next(iter(works.values())).scene
        cfg.update(
            scene=scene.scene_id,
            scene_objects=[o["class"] for o in scene.objects],
            chain_objects=[o["class"] for o in scene.chain_objects],
        )
    gpu_config = config.is_gpu_config(args) or config.is_sdxl_gpu_config(args)
    kind = "gpu" if gpu_config else ("cpu-smoke" if args.cpu_smoke else f"custom-{args.device}")
    ratios, targets = _judged(args, m)
    return {
        "benchmark": "layer memory: edit cost vs txt2img and latent blending (issues 11, 13)",
        "kind": kind,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "environment": env,
        "config": cfg,
        **info,
        "measurements": m,
        "ratios": ratios,
        "targets": targets,
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
    works, info = workloads(args, h, workdir)
    wall = time.perf_counter()
    with torch.inference_mode():  # as ComfyUI's executor runs every node
        m, joint = measure(args, h, works, workdir)
    result = result_of(args, m, env, info, works, time.perf_counter() - wall)
    if joint:
        result["joint"], result["joint_targets"] = joint, joint_section.judge(args, joint)
    path = write(result, args.out)
    print()
    print(table(result))
    print("\n".join(joint_section.rows(result)))
    print(f"\nJSON: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
