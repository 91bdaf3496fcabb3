"""The joint-attention families' section of the one-run bench (issue 21): FLUX.1 dev and SD3.5
Large composed at full size on meta (bench/joint_counts.py: ops, kernels, FLOPs of AddLayer(5)
over txt2img), and FLUX's memory per layer (bench/joint_memory.py). No timing: a full FLUX or
SD3.5 on 2 CPU cores takes hours; the GPU run times them once their workloads exist.
"""
from __future__ import annotations

import time

from bench import config, joint_counts, joint_memory

FLOPS_NOTE = (
    "reported, not judged: AddLayer routes every layer's prompt through the joint blocks side "
    "by side (the text stream grows by one prompt per layer: FLUX 256 T5 tokens, SD3 154), so "
    "the text tokens' projections, MLPs and the joint attention over image + all prompts cost "
    "more FLOPs than txt2img's one prompt; the image tokens' work is unchanged")


def _spec(family: str) -> joint_counts.JointSpec:
    if family == "flux":
        from bench import flux_counts

        return flux_counts.SPEC
    from bench import sd3_counts

    return sd3_counts.spec("large")


def measure(args, h, log) -> dict:
    """Per joint family: composed counts; FLUX also its memory per layer."""
    out: dict = {}
    for fam in (f for f in args.families if f in config.JOINT_FAMILIES):
        start = time.perf_counter()
        log(f"[7] {fam}: ops, kernels, FLOPs composed for the full model "
            f"({config.JOINT_FULL_SIZE} px, {args.joint_count_steps} steps)")
        out[fam] = {"counts": joint_counts.composed_counts(
            h, _spec(fam), args.joint_count_steps, config.JOINT_FULL_SIZE)}
        if fam == "flux":
            log(f"[8] flux: memory per layer ({args.joint_memory_size} px, "
                f"{args.joint_memory_steps} steps)")
            out[fam]["memory"] = joint_memory.flux_memory(
                h, args.joint_memory_size, args.joint_memory_steps)
        out[fam]["wall_s"] = round(time.perf_counter() - start, 2)
    return out


def judge(args, joint: dict) -> dict:
    """Targets: ops and kernels of AddLayer(5) / txt2img <= 1.05, judged at 20 steps."""
    judged = args.joint_count_steps == 20
    out: dict = {}
    for fam, m in joint.items():
        r = m["counts"]["ratio_add_over_txt2img"]
        t = {k: {"target": "<= 1.05", "value": r[k],
                 "description": f"{k}, AddLayer(5) / txt2img (composed)",
                 "met": (r[k] <= 1.05) if judged else None}
             for k in ("ops", "kernel_ops")}
        t["flops"] = {"target": None, "value": r["flops"], "met": None, "description": FLOPS_NOTE}
        if "memory" in m:
            mem = m["memory"]
            t["flux_mb_per_layer"] = {"target": None, "value": mem["assembled_mb_per_layer"],
                                      "met": None, "description": (
                                          f"MB a layer holds assembled at {mem['size']} px, "
                                          f"{mem['steps']} steps (file: float32 "
                                          f"{mem['file_bytes_per_layer']['float32'] / 1e6:.2f} "
                                          "MB)")}
        out[fam] = t
    return out


def rows(result: dict) -> list[str]:
    """The printed lines of the joint section."""
    lines = []
    for fam, m in result.get("joint", {}).items():
        c = m["counts"]
        lines += ["", f"{fam}: {c['what']}"]
        for name in ("txt2img", "add_layer_5"):
            v = c[name]["composed"]
            lines.append(f"  {name:12s} ops {v['ops']:9d} kernels {v['kernel_ops']:9d} "
                         f"GFLOP {v['flops'] / 1e9:11.1f} ({c[name]['model_calls']} calls)")
        for key, t in result["joint_targets"][fam].items():
            verdict = ({True: "MET", False: "MISSED", None: "(not judged here)"}[t["met"]]
                       if t["target"] else "")
            lines.append(f"  {key:18s} {t['value']:9.3f}  {t['target'] or 'reported'} {verdict}")
        if "memory" in m:
            mem = m["memory"]
            lines.append(f"  memory per layer: held {mem['held_mb_per_layer']:.2f} MB, assembled "
                         f"{mem['assembled_mb_per_layer']:.2f} MB (expected "
                         f"{mem['expected_bytes_per_layer'] / 1e6:.2f}), file "
                         + ", ".join(f"{d} {b / 1e6:.2f} MB"
                                     for d, b in mem["file_bytes_per_layer"].items()))
    return lines
