#!/usr/bin/env python3
"""Ops, kernels and FLOPs of ONE model call of the full FLUX.1 dev at 1024 px, stock against
MQD with a stack of layers (issue 21, first cut).

The full model (hidden 3072, 24 heads, 19 double + 38 single blocks, T5 context padded to 256
tokens as ComfyUI does) is built through ComfyUI's own classes on "meta" tensors (shapes, no
storage) and called once per layout through the same path sampling takes for MQD: the family's
attention run's APPLY_MODEL wrapper (its routed context, its bias as `attention_mask`, its
SDPA override), then `Flux.forward`. The stock call uses ComfyUI's CUDA attention (torch SDPA,
via `optimized_attention_override`). Per call only: the sampler, BCG and the rest of a run are
not in these counts (bench/sdxl_counts.py composes them for SDXL; not done for FLUX yet).

    python3 -m bench.flux_counts --layers 1,5 --batch 1,2
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from types import SimpleNamespace

import torch

from bench import counting, sdxl_models

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


def grid_layers(count: int, latent: int) -> list:
    """Background plus `count - 1` boxes on a grid (each owns tokens), prompts of T5_TOKENS."""
    meta = torch.device("meta")
    tokens = latent // 2
    layers = [SimpleNamespace(token_mask=torch.ones(tokens, tokens, dtype=torch.bool),
                              positive=SimpleNamespace(embedding=torch.empty(
                                  1, T5_TOKENS, 4096, device=meta)))]
    side = 1
    while side * side < count - 1:
        side += 1
    cell = tokens // max(side, 1)
    for i in range(count - 1):
        m = torch.zeros(tokens, tokens, dtype=torch.bool)
        r, c = divmod(i, side)
        m[r * cell:(r + 1) * cell - 2, c * cell:(c + 1) * cell - 2] = True
        layers.append(SimpleNamespace(token_mask=m, positive=layers[0].positive))
    return layers


class _Executor:
    """What ComfyUI's APPLY_MODEL executor does with the wrapper's arguments (here: the
    diffusion model's forward with the extra conds as kwargs)."""

    def __init__(self, base):
        self.class_obj = base

    def __call__(self, x, t, c_concat, context, control, options, **kwargs):
        return self.class_obj.diffusion_model(x, t, context=context, control=control,
                                              transformer_options=options, **kwargs)


def count_call(host, base, layers: int | None, batch: int, size: int,
               dtype: torch.dtype) -> counting.Count:
    meta = torch.device("meta")
    latent = size // 8
    x = torch.empty(batch, 16, latent, latent, device=meta, dtype=dtype)
    t = torch.empty(batch, device=meta)
    context = torch.empty(batch, T5_TOKENS, 4096, device=meta, dtype=dtype)
    extra = {"y": torch.empty(batch, 768, device=meta, dtype=dtype),
             "guidance": torch.empty(batch, device=meta, dtype=dtype)}
    marks = [0] if batch == 1 else [1, 0]  # cfg 1: the positive alone; else [negative, positive]
    options = {"cond_or_uncond": marks,
               "optimized_attention_override": sdxl_models.attention_like_cuda}
    if layers is None:
        return counting.count(lambda: _Executor(base)(x, t, None, context, None, options,
                                                      **extra))[0]
    run = host.families.get("flux").attention_run(grid_layers(layers, latent))
    run._theirs = sdxl_models.attention_like_cuda  # calls it does not route: CUDA attention
    return counting.count(lambda: run.apply_model_wrapper(_Executor(base), x, t, None, context,
                                                          None, options, **extra))[0]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--comfyui", default=None, help="ComfyUI checkout")
    p.add_argument("--layers", default="1,5", help="layers routed (background counted)")
    p.add_argument("--batch", default="1,2", help="1: cfg 1 (dev's usual); 2: CFG batch")
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--out", default=None, help="JSON file")
    args = p.parse_args()
    from bench.run_bench import boot

    h, _, _ = boot(SimpleNamespace(comfyui_path=None, comfyui=args.comfyui, device="cpu",
                                   verbose=False))
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
