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
               dtype: torch.dtype, run=None) -> counting.Count:
    """One call, stock (layers None) or routed over `layers` prompts on a grid; a `run` given
    is reused (its second call finds what the first built)."""
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
    run = run or host.families.get("flux").attention_run(grid_layers(layers, latent))
    run._theirs = sdxl_models.attention_like_cuda  # calls it does not route: CUDA attention
    return counting.count(lambda: run.apply_model_wrapper(_Executor(base), x, t, None, context,
                                                          None, options, **extra))[0]


class _CallLog:
    """Per model call of a small run: ops inside it, and whether MQD routed it (how many prompts).
    A routed call is counted at the family's APPLY_MODEL wrapper (its routing included); a stock
    call at the diffusion model's forward."""

    def __init__(self, tally: counting.Tally, dm, run_cls):
        self.tally, self.calls, self._inside = tally, [], False
        self._run_cls, self._orig = run_cls, run_cls.apply_model_wrapper
        log = self

        def wrapper(run, *args, **kwargs):
            start, log._inside = log._totals(), True
            try:
                return log._orig(run, *args, **kwargs)
            finally:
                log._inside = False
                log._add(start, len(run.prompts), int(args[1].shape[0]))

        run_cls.apply_model_wrapper = wrapper
        self.handles = [dm.register_forward_pre_hook(self._pre, with_kwargs=True),
                        dm.register_forward_hook(self._post, with_kwargs=True)]

    def _totals(self) -> tuple[int, int, int]:
        return self.tally.ops(), self.tally.kernel_ops(), self.tally.flops()

    def _add(self, start, layers, batch) -> None:
        end = self._totals()
        self.calls.append((layers, batch, *(b - a for a, b in zip(start, end, strict=True))))

    def _pre(self, module, args, kwargs) -> None:
        self._start = self._totals()

    def _post(self, module, args, kwargs, output) -> None:
        if not self._inside:
            self._add(self._start, None, int(args[0].shape[0]))

    def close(self) -> None:
        self._run_cls.apply_model_wrapper = self._orig
        for handle in self.handles:
            handle.remove()


def composed_counts(h, steps: int, size: int, objects: int = 4) -> dict:
    """txt2img and AddLayer(objects + 1) run with the small FLUX, composed for the full one."""
    import comfy.sample

    from tools import flux_scenes, scenes

    flux_mqd = h.flux_mqd  # the host's copy (the pack loads under its custom node name)

    small = flux_scenes.build(0)
    small_size = flux_scenes.SIZE
    schedule = {"steps": steps, "cfg": 1.0, "sampler_name": "euler", "scheduler": "simple"}
    pos, neg = flux_scenes.cond(1), flux_scenes.cond(2)
    latent = torch.zeros(1, 16, small_size // 8, small_size // 8)

    def txt2img():
        noise = comfy.sample.prepare_noise(latent, 42)
        return comfy.sample.sample(small, noise, steps, 1.0, "euler", "simple", pos, neg,
                                   latent, seed=42)

    memory = h.layer_ops.start_memory(small, pos, neg, small_size, small_size, seed=42,
                                      **schedule)
    boxes = [(0.05, 0.05, 0.45, 0.45), (0.55, 0.05, 0.95, 0.45), (0.05, 0.55, 0.45, 0.95),
             (0.55, 0.55, 0.95, 0.95), (0.3, 0.3, 0.7, 0.7)]
    for i, box in enumerate(boxes[:objects - 1]):
        memory = h.layer_ops.add_layer(memory, small, flux_scenes.cond(10 + i),
                                       scenes.box_mask(small_size, *box), seed=100 + i)
    top_box = boxes[objects - 1]

    def add_layer():
        return h.layer_ops.add_layer(memory, small, flux_scenes.cond(20),
                                     scenes.box_mask(small_size, *top_box), seed=7)

    base = meta_flux(torch.bfloat16)
    memo: dict = {}
    out: dict = {}
    for name, fn in (("txt2img", txt2img), (f"add_layer_{objects + 1}", add_layer)):
        with counting.counting() as tally:
            log = _CallLog(tally, small.model.diffusion_model, flux_mqd.FluxMQDRun)
            try:
                fn()
            finally:
                log.close()
            measured = tally.result()
        inside = [sum(c[k] for c in log.calls) for k in (2, 3, 4)]
        rest = [measured.ops - inside[0], measured.kernel_ops - inside[1],
                measured.flops - inside[2]]
        full, runs = [0, 0, 0], {}
        for layers, batch, *_ in log.calls:
            # one full-size run per verb and layout, as the small run has one: its first call
            # builds the routed context and bias, later calls reuse them
            later = (layers, batch) in runs
            if layers is not None and not later:
                runs[(layers, batch)] = h.families.get("flux").attention_run(
                    grid_layers(layers, size // 8))
            key = (layers, batch, later)
            if key not in memo:
                memo[key] = count_call(h, base, layers, batch, size, torch.bfloat16,
                                       runs.get((layers, batch)))
            runs.setdefault((layers, batch), None)
            c = memo[key]
            full = [full[0] + c.ops, full[1] + c.kernel_ops, full[2] + c.flops]
        out[name] = {"model_calls": len(log.calls),
                     "mqd_calls": sum(c[0] is not None for c in log.calls),
                     "outside_model": dict(zip(("ops", "kernel_ops", "flops"), rest,
                                               strict=True)),
                     "composed": dict(zip(("ops", "kernel_ops", "flops"),
                                          [r + f for r, f in zip(rest, full, strict=True)],
                                          strict=True))}
    a, b = out[f"add_layer_{objects + 1}"]["composed"], out["txt2img"]["composed"]
    out["ratio_add_over_txt2img"] = {k: a[k] / b[k] for k in a}
    out["what"] = (f"composed: full FLUX.1 dev calls on meta ({size} px, bf16, T5 {T5_TOKENS} "
                   f"tokens, CUDA attention) + the rest of a real {steps}-step run (euler / "
                   f"simple, cfg 1) with the small FLUX at {small_size} px")
    return out


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
