#!/usr/bin/env python3
"""Ops, kernels and FLOPs of ONE model call of the full FLUX.1 dev at 1024 px, stock against
MQD with a stack of layers (issue 21, first cut).

The full model (hidden 3072, 24 heads, 19 double + 38 single blocks, T5 context padded to 256
tokens as ComfyUI does) is built through ComfyUI's own classes on "meta" tensors (shapes, no
storage) and called once per layout through the same path sampling takes for MQD: the family's
attention run's APPLY_MODEL wrapper (its routed context, its bias as `attention_mask`, its
SDPA override), then `Flux.forward`. The stock call uses ComfyUI's CUDA attention (torch SDPA,
via `optimized_attention_override`). Per call only: the sampler, BCG and the rest of a run are
not in these counts (bench/sdxl_counts.py composes them for SDXL).

`--composed` counts whole runs instead, as bench/sdxl_counts.py does for SDXL: txt2img and
AddLayer(5) (a memory of 4 layers, the fifth added) run for real with tools/flux_scenes.py's small
FLUX at 256 px and the full schedule (20 steps, euler / simple, cfg 1); every model call (for MQD
calls: the family's APPLY_MODEL wrapper with the call inside it) is split from the rest (sampler,
BCG, memory), and replaced by the full model's call on meta at `--size` (stock, or routed with as
many prompts on a grid layout: `count_call`). Composed = the rest + the full calls.

    python3 -m bench.flux_counts --layers 1,5 --batch 1,2
    python3 -m bench.flux_counts --composed
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from types import SimpleNamespace

import torch

from bench import counting, joint_counts

REPO = Path(__file__).resolve().parents[1]

FLUX_DEV = {
    "image_model": "flux", "in_channels": 16, "out_channels": 16, "vec_in_dim": 768,
    "context_in_dim": 4096, "hidden_size": 3072, "mlp_ratio": 4.0, "num_heads": 24, "depth": 19,
    "depth_single_blocks": 38, "axes_dim": [16, 56, 56], "theta": 10000, "patch_size": 2,
    "qkv_bias": True, "guidance_embed": True,
}
T5_TOKENS = 256  # ComfyUI pads FLUX's T5 prompts to at least this


def meta_flux(dtype: torch.dtype):
    import comfy.supported_models as sm

    config = sm.Flux(dict(FLUX_DEV))
    config.set_inference_dtype(dtype, None)
    return config.get_model({}, device=torch.device("meta"))


def _extra(batch: int, dtype: torch.dtype) -> dict:
    meta = torch.device("meta")
    return {"y": torch.empty(batch, 768, device=meta, dtype=dtype),
            "guidance": torch.empty(batch, device=meta, dtype=dtype)}


def _small():
    from tools import flux_scenes

    return flux_scenes.build(0)


def _cond(seed: int) -> list:
    from tools import flux_scenes

    return flux_scenes.cond(seed)


SPEC = joint_counts.JointSpec(
    family="flux", label="FLUX.1 dev", meta_model=meta_flux, prompt_tokens=T5_TOKENS,
    extra=_extra, small=_small, small_size=256, cond=_cond,
    run_cls=lambda h: h.flux_mqd.FluxMQDRun,  # the host's copy (loaded under its node name)
    schedule={"cfg": 1.0, "sampler_name": "euler", "scheduler": "simple"},
)


def count_call(host, base, layers: int | None, batch: int, size: int,
               dtype: torch.dtype, run=None) -> counting.Count:
    """One FLUX call, stock (layers None) or routed over `layers` grid prompts."""
    return joint_counts.count_call(host, SPEC, base, layers, batch, size, dtype, run)


def composed_counts(h, steps: int, size: int, objects: int = 4) -> dict:
    """txt2img and AddLayer(objects + 1) run with the small FLUX, composed for the full one."""
    return joint_counts.composed_counts(h, SPEC, steps, size, objects)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--comfyui", default=None, help="ComfyUI checkout")
    p.add_argument("--layers", default="1,5", help="layers routed (background counted)")
    p.add_argument("--batch", default="1,2", help="1: cfg 1 (dev's usual); 2: CFG batch")
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
        report = composed_counts(h, args.steps, args.size)
        text = json.dumps(report, indent=1, default=str)
        if args.out:
            Path(args.out).write_text(text)
        print(text)
        return
    base = meta_flux(torch.bfloat16)
    rows = []
    for batch in (int(v) for v in args.batch.split(",")):
        stock = count_call(h, base, None, batch, args.size, torch.bfloat16)
        rows.append({"batch": batch, "layers": 0, **stock.as_dict()})
        for n in (int(v) for v in args.layers.split(",")):
            c = count_call(h, base, n, batch, args.size, torch.bfloat16)
            rows.append({"batch": batch, "layers": n, **c.as_dict(),
                         "over_stock": counting.ratio(c, stock)})
    report = {"what": f"one FLUX.1 dev model call, full size on meta, {args.size} px, bf16, "
                      f"T5 {T5_TOKENS} tokens per prompt", "rows": rows}
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
