"""Ops, kernels and FLOPs of the joint-attention families (FLUX, SD3), full size on meta: one
model call (stock or routed over a grid of layers) and whole runs composed from a small model's
real run (issue 21). One module for both, so FLUX's and SD3's counts are the same code.

A family is a `JointSpec`: its full model on meta, its prompt length as ComfyUI encodes it, its
extra conds, and its small stand-in and schedule. Composed = what a small run dispatched outside
its model calls (sampler, BCG, memory) + each model call replayed on the full model at `size`
(routed calls through the family's APPLY_MODEL wrapper, its routing included).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace

import torch

from bench import counting, sdxl_models

BOXES = [(0.05, 0.05, 0.45, 0.45), (0.55, 0.05, 0.95, 0.45), (0.05, 0.55, 0.45, 0.95),
         (0.55, 0.55, 0.95, 0.95), (0.3, 0.3, 0.7, 0.7)]


@dataclass(frozen=True)
class JointSpec:
    """What the counts need of a joint-attention family."""

    family: str  # the host's families registry key
    label: str  # the full model, as the JSON names it
    meta_model: Callable[[torch.dtype], object]  # the full model_base on meta
    prompt_tokens: int  # tokens of a prompt as ComfyUI's encoder gives it
    extra: Callable[[int, torch.dtype], dict]  # extra conds (pooled, guidance) for a batch
    small: Callable[[], object]  # the small ModelPatcher a real run uses
    small_size: int
    cond: Callable[[int], list]  # a small CONDITIONING from a seed
    run_cls: Callable[[object], type]  # the family's MQD run class, from the booted host
    schedule: dict  # cfg, sampler_name, scheduler of the family's template


def grid_layers(count: int, latent: int, prompt_tokens: int) -> list:
    """Background plus `count - 1` boxes on a grid (each owns tokens), prompts as encoded."""
    meta = torch.device("meta")
    tokens = latent // 2
    prompt = SimpleNamespace(embedding=torch.empty(1, prompt_tokens, 4096, device=meta))
    layers = [SimpleNamespace(token_mask=torch.ones(tokens, tokens, dtype=torch.bool),
                              positive=prompt)]
    side = 1
    while side * side < count - 1:
        side += 1
    cell = tokens // max(side, 1)
    for i in range(count - 1):
        m = torch.zeros(tokens, tokens, dtype=torch.bool)
        r, c = divmod(i, side)
        m[r * cell:(r + 1) * cell - 2, c * cell:(c + 1) * cell - 2] = True
        layers.append(SimpleNamespace(token_mask=m, positive=prompt))
    return layers


class Executor:
    """What ComfyUI's APPLY_MODEL executor does with the wrapper's arguments (here: the
    diffusion model's forward with the extra conds as kwargs)."""

    def __init__(self, base):
        self.class_obj = base

    def __call__(self, x, t, c_concat, context, control, options, **kwargs):
        return self.class_obj.diffusion_model(x, t, context=context, control=control,
                                              transformer_options=options, **kwargs)


def new_run(host, spec: JointSpec, layers: int, size: int):
    """The family's attention run over `layers` grid prompts at `size` px."""
    run = host.families.get(spec.family).attention_run(
        grid_layers(layers, size // 8, spec.prompt_tokens))
    run._theirs = sdxl_models.attention_like_cuda  # calls it does not route: CUDA attention
    return run


def count_call(host, spec: JointSpec, base, layers: int | None, batch: int, size: int,
               dtype: torch.dtype, run=None) -> counting.Count:
    """One call, stock (layers None) or routed over `layers` prompts on a grid; a `run` given
    is reused (its second call finds what the first built)."""
    meta = torch.device("meta")
    latent = size // 8
    x = torch.empty(batch, 16, latent, latent, device=meta, dtype=dtype)
    t = torch.empty(batch, device=meta)
    context = torch.empty(batch, spec.prompt_tokens, 4096, device=meta, dtype=dtype)
    extra = spec.extra(batch, dtype)
    marks = [0] if batch == 1 else [1, 0]  # batch 1: the positive alone; else [negative, pos]
    options = {"cond_or_uncond": marks,
               "optimized_attention_override": sdxl_models.attention_like_cuda}
    if layers is None:
        return counting.count(lambda: Executor(base)(x, t, None, context, None, options,
                                                     **extra))[0]
    run = run or new_run(host, spec, layers, size)
    return counting.count(lambda: run.apply_model_wrapper(Executor(base), x, t, None, context,
                                                          None, options, **extra))[0]


class CallLog:
    """Per model call of a small run: ops inside it, and whether MQD routed it (how many prompts).
    A routed call is counted at the family's APPLY_MODEL wrapper (its routing included); a stock
    call at the diffusion model's forward."""

    def __init__(self, tally: counting.Tally, dm, run_cls):
        self.tally, self.calls, self._inside = tally, [], False
        self._run_cls, self._orig = run_cls, run_cls.__dict__.get("apply_model_wrapper")
        orig = run_cls.apply_model_wrapper
        log = self

        def wrapper(run, *args, **kwargs):
            start, log._inside = log._totals(), True
            try:
                return orig(run, *args, **kwargs)
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
        if self._orig is None:
            del self._run_cls.apply_model_wrapper
        else:
            self._run_cls.apply_model_wrapper = self._orig
        for handle in self.handles:
            handle.remove()


def _verbs(h, spec: JointSpec, steps: int, objects: int):
    """txt2img and AddLayer(objects + 1) of a real small run (a memory of `objects` layers)."""
    import comfy.sample

    from tools import scenes

    small, px = spec.small(), spec.small_size
    cfg, sampler, scheduler = (spec.schedule[k] for k in ("cfg", "sampler_name", "scheduler"))
    pos, neg = spec.cond(1), spec.cond(2)
    latent = torch.zeros(1, 16, px // 8, px // 8)

    def txt2img():
        noise = comfy.sample.prepare_noise(latent, 42)
        return comfy.sample.sample(small, noise, steps, cfg, sampler, scheduler, pos, neg,
                                   latent, seed=42)

    memory = h.layer_ops.start_memory(small, pos, neg, px, px, seed=42, steps=steps,
                                      **spec.schedule)
    for i, box in enumerate(BOXES[:objects - 1]):
        memory = h.layer_ops.add_layer(memory, small, spec.cond(10 + i),
                                       scenes.box_mask(px, *box), seed=100 + i)

    def add_layer():
        return h.layer_ops.add_layer(memory, small, spec.cond(20),
                                     scenes.box_mask(px, *BOXES[objects - 1]), seed=7)

    return small, {"txt2img": txt2img, f"add_layer_{objects + 1}": add_layer}


def composed_counts(h, spec: JointSpec, steps: int, size: int, objects: int = 4) -> dict:
    """txt2img and AddLayer(objects + 1) run with the small model, composed for the full one."""
    small, verbs = _verbs(h, spec, steps, objects)
    base = spec.meta_model(torch.bfloat16)
    memo: dict = {}
    out: dict = {}
    keys = ("ops", "kernel_ops", "flops")
    for name, fn in verbs.items():
        with counting.counting() as tally:
            log = CallLog(tally, small.model.diffusion_model, spec.run_cls(h))
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
                runs[(layers, batch)] = new_run(h, spec, layers, size)
            key = (layers, batch, later)
            if key not in memo:
                memo[key] = count_call(h, spec, base, layers, batch, size, torch.bfloat16,
                                       runs.get((layers, batch)))
            runs.setdefault((layers, batch), None)
            c = memo[key]
            full = [full[0] + c.ops, full[1] + c.kernel_ops, full[2] + c.flops]
        out[name] = {"model_calls": len(log.calls),
                     "mqd_calls": sum(c[0] is not None for c in log.calls),
                     "batches": sorted({c[1] for c in log.calls}),
                     "outside_model": dict(zip(keys, rest, strict=True)),
                     "full_model_calls": dict(zip(keys, full, strict=True)),
                     "composed": dict(zip(keys, [r + f for r, f in zip(rest, full, strict=True)],
                                          strict=True))}
    a, b = out[f"add_layer_{objects + 1}"]["composed"], out["txt2img"]["composed"]
    out["ratio_add_over_txt2img"] = {k: a[k] / b[k] for k in a}
    out.update(model=spec.label, full_size=size, steps=steps, layers=objects + 1,
               prompt_tokens=spec.prompt_tokens)
    out["what"] = (f"composed: full {spec.label} calls on meta ({size} px, bf16, prompts of "
                   f"{spec.prompt_tokens} tokens, CUDA attention) + the rest of a real "
                   f"{steps}-step run ({spec.schedule['sampler_name']} / "
                   f"{spec.schedule['scheduler']}, cfg {spec.schedule['cfg']}) with the small "
                   f"model at {spec.small_size} px")
    return out
