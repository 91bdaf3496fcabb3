#!/usr/bin/env python3
"""Ops, kernels and FLOPs of ONE model call of the full SD3.5 Large / Medium at 1024 px, stock
against MQD with a stack of layers (issue 21).

The full model (SD3.5 Large: 38 blocks, hidden 2432; SD3.5 Medium: 24 blocks, hidden 1536,
MMDiT-X attn2 in blocks 0-12), prompts of 154 tokens (CLIP-L/G 77 + T5 77, as ComfyUI's SD3
encoder gives them), is built through ComfyUI's own classes on "meta" tensors and called once
per layout through the family's attention run's APPLY_MODEL wrapper (routed context, its
override with the bias), as sampling calls it. Stock and the calls MQD does not route use
ComfyUI's CUDA attention (torch SDPA). Per call only: the sampler and BCG are not counted.

    python3 -m bench.sd3_counts --variant large --layers 1,5 --batch 1,2
    python3 -m bench.sd3_counts --composed      # whole runs, as flux_counts --composed
"""
from __future__ import annotations

import argparse
import functools
import json
from pathlib import Path
from types import SimpleNamespace

import torch

from bench import counting, joint_counts

PROMPT_TOKENS = 154  # CLIP-L + CLIP-G 77, then T5-XXL 77 (ComfyUI's SD3 text encoder)


def config(variant: str) -> dict:
    depth, pos = {"large": (38, 192), "medium": (24, 384)}[variant]
    return {
        "in_channels": 16, "out_channels": 16, "patch_size": 2, "depth": depth,
        "input_size": None, "adm_in_channels": 2048, "pos_embed_max_size": pos,
        "num_patches": pos * pos, "pos_embed_scaling_factor": None, "qk_norm": "rms",
        "context_embedder_config": {"target": "torch.nn.Linear",
                                    "params": {"in_features": 4096, "out_features": 64 * depth}},
        "x_block_self_attn_layers": list(range(13)) if variant == "medium" else [],
    }


def meta_sd3(variant: str, dtype: torch.dtype):
    import comfy.supported_models as sm

    model_config = sm.SD3(config(variant))
    model_config.set_inference_dtype(dtype, None)
    return model_config.get_model({}, device=torch.device("meta"))


def _extra(batch: int, dtype: torch.dtype) -> dict:
    return {"y": torch.empty(batch, 2048, device=torch.device("meta"), dtype=dtype)}


def _small(variant: str):
    from tools import sd3_scenes

    return sd3_scenes.build(variant, 0)


def _cond(seed: int) -> list:
    from tools import sd3_scenes

    return sd3_scenes.cond(seed)


def spec(variant: str = "large") -> joint_counts.JointSpec:
    """SD3.5 `variant` as the joint counts take it (its template: euler / sgm_uniform, cfg 4.5;
    the small stand-in is the matching variant of tools/sd3_scenes.py)."""
    small_variant = {"large": "large35", "medium": "medium35"}[variant]
    return joint_counts.JointSpec(
        family="sd3", label=f"SD3.5 {variant}",
        meta_model=lambda dtype: meta_sd3(variant, dtype), prompt_tokens=PROMPT_TOKENS,
        extra=_extra, small=functools.partial(_small, small_variant), small_size=256,
        cond=_cond,
        run_cls=lambda h: h.sd3_mqd.SD3MQDRun,
        schedule={"cfg": 4.5, "sampler_name": "euler", "scheduler": "sgm_uniform"},
    )


def count_call(host, base, layers: int | None, batch: int, size: int,
               dtype: torch.dtype, variant: str = "large") -> counting.Count:
    """One SD3.5 call, stock (layers None) or routed over `layers` grid prompts."""
    return joint_counts.count_call(host, spec(variant), base, layers, batch, size, dtype)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--comfyui", default=None, help="ComfyUI checkout")
    p.add_argument("--variant", default="large", choices=("large", "medium"))
    p.add_argument("--layers", default="1,5", help="layers routed (background counted)")
    p.add_argument("--batch", default="1,2", help="1: the positive alone; 2: CFG batch")
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--out", default=None, help="JSON file")
    p.add_argument("--composed", action="store_true",
                   help="whole runs (txt2img, AddLayer(5)) composed for the full model")
    p.add_argument("--steps", type=int, default=20, help="with --composed")
    args = p.parse_args()
    from bench.run_bench import boot

    h, _, _ = boot(SimpleNamespace(comfyui_path=None, comfyui=args.comfyui, device="cpu",
                                   verbose=False))
    if args.composed:
        report = joint_counts.composed_counts(h, spec(args.variant), args.steps, args.size)
        text = json.dumps(report, indent=1, default=str)
        if args.out:
            Path(args.out).write_text(text)
        print(text)
        return
    base = meta_sd3(args.variant, torch.bfloat16)
    rows = []
    for batch in (int(v) for v in args.batch.split(",")):
        stock = count_call(h, base, None, batch, args.size, torch.bfloat16,
                           args.variant)
        rows.append({"batch": batch, "layers": 0, **stock.as_dict()})
        for n in (int(v) for v in args.layers.split(",")):
            c = count_call(h, base, n, batch, args.size, torch.bfloat16,
                           args.variant)
            rows.append({"batch": batch, "layers": n, **c.as_dict(),
                         "over_stock": counting.ratio(c, stock)})
    report = {"what": f"one SD3.5 {args.variant} model call, full size on meta, {args.size} px, "
                      f"bf16, prompts of {PROMPT_TOKENS} tokens", "rows": rows}
    text = json.dumps(report, indent=1, default=str)
    if args.out:
        Path(args.out).write_text(text)
    for r in rows:
        ratio = r.get("over_stock")
        print(f"batch {r['batch']} layers {r['layers']}: ops {r['ops']} kernels "
              f"{r['kernel_ops']} GFLOP {r['flops'] / 1e9:.1f}"
              + (f"  x stock: ops {ratio['ops']:.3f} kernels {ratio['kernel_ops']:.3f} "
                 f"flops {ratio['flops']:.3f}" if ratio else ""))


if __name__ == "__main__":
    main()
