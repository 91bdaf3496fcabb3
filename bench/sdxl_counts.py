"""Ops and FLOPs of SDXL edits for the FULL SDXL UNet at 1024 px, composed (issue 11).

A full SDXL run at 1024 px and 20 steps takes hours on a 2-core CPU, so it is not counted end
to end. Instead each verb (txt2img, AddLayer(5) with and without MQD, DeleteLayer) runs for real
with the small SDXL UNet at the same schedule; forward hooks on the UNet split what the run
dispatched into its model calls and the rest (sampler, BCG, MQD set-up outside the UNet). Every
model call is then replayed, in order and with the same batch layout, prompts and layer masks
(upsampled to the 1024 px latent), on the full-size SDXL UNet built on "meta" tensors (shapes,
no storage), whose ops and FLOPs are counted. Composed = the rest + the full UNet's calls. The
rest does not depend on the UNet's width; on meta, SDPA's FLOPs come from its math
decomposition (counting.OpCounter); `meta_check` counts the small UNet both ways.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from . import counting, ops, sdxl_models, sdxl_workload


@dataclass
class Call:
    """One model call of a counted run: what it dispatched and what it was."""

    ops: int
    kernel_ops: int
    flops: int
    run: object | None  # the UNetMQDRun its attn2 patches route with, None for stock
    batch: int
    cond_or_uncond: tuple
    context: int  # tokens of the batch's own context


def _routed_run(options: dict, routed_cls) -> object | None:
    patches = (options.get("patches_replace") or {}).get("attn2") or {}
    return next((p.run for p in patches.values() if isinstance(p, routed_cls)), None)


class CallLog:
    """Forward hooks on a UNet: per model call, the ops and FLOPs inside it."""

    def __init__(self, dm, tally: counting.Tally, routed_cls):
        self.tally, self.routed_cls, self.calls = tally, routed_cls, []
        self._start: tuple | None = None
        self.handles = [
            dm.register_forward_pre_hook(self._pre, with_kwargs=True),
            dm.register_forward_hook(self._post, with_kwargs=True),
        ]

    def _totals(self) -> tuple[int, int, int]:
        return self.tally.ops(), self.tally.kernel_ops(), self.tally.flops()

    def _pre(self, module, args, kwargs) -> None:
        options = kwargs.get("transformer_options") or {}
        meta = (
            _routed_run(options, self.routed_cls),
            int(args[0].shape[0]),
            tuple(options.get("cond_or_uncond") or ()),
            int(kwargs["context"].shape[1]),
        )
        self._start = (self._totals(), meta)

    def _post(self, module, args, kwargs, output) -> None:
        (ops0, kern0, fl0), meta = self._start
        ops1, kern1, fl1 = self._totals()
        self.calls.append(Call(ops1 - ops0, kern1 - kern0, fl1 - fl0, *meta))

    def close(self) -> None:
        for handle in self.handles:
            handle.remove()


class FullUNet:
    """The full-size SDXL UNet on meta tensors at `size` px: replays calls and counts them."""

    def __init__(self, work: ops.Workload, size: int, dtype: torch.dtype = torch.float16):
        self.model = sdxl_models.meta_patcher(sdxl_models.full_sdxl_model("meta", dtype))
        self.work, self.hw, self.dtype = work, size // 8, dtype
        self.families = work.h.families
        self.mqd_unet = work.h.unet_mqd
        # id(small run) -> (that run, kept alive so that no later run reuses its id; the
        # full-size run; its transformer_options)
        self._runs: dict[int, tuple[object, object, dict]] = {}
        # A call with a layout its run has already seen twice changes no cache: same counts.
        self._memo: dict[tuple, counting.Count] = {}
        self._seen: dict[tuple, int] = {}

    def _options(self, run) -> tuple[object | None, dict]:
        """The full-size run and transformer_options of the full UNet for calls of `run`
        (None: stock)."""
        if run is None:
            return None, {}
        if id(run) not in self._runs:
            masks = [
                F.interpolate(m[None, None], size=(self.hw, self.hw), mode="nearest")[0, 0]
                for m in run.latent_masks
            ]
            # what the family's attention_run builds
            full = self.mqd_unet.UNetMQDRun(masks, run.prompts, run.negative)
            clone = self.model.clone()
            full.install(clone)
            self._runs[id(run)] = (run, full, dict(clone.model_options["transformer_options"]))
        return self._runs[id(run)][1:]

    def count(self, call: Call) -> counting.Count:
        """Ops and FLOPs of `call` on the full UNet, with ComfyUI's CUDA attention (torch SDPA).
        Calls are replayed in order, so MQD's per-run caches fill as in the real run."""
        layout = (id(call.run) if call.run is not None else None, call.batch,
                  call.cond_or_uncond, call.context)
        self._seen[layout] = self._seen.get(layout, 0) + 1
        key = (*layout, 2 if call.run is None else min(self._seen[layout], 2))
        if key not in self._memo:
            self._memo[key] = self._count(call)
        return self._memo[key]

    def _count(self, call: Call) -> counting.Count:
        full_run, options = self._options(call.run)
        options = dict(options, cond_or_uncond=list(call.cond_or_uncond))
        options["optimized_attention_override"] = sdxl_models.attention_like_cuda
        kw = meta_inputs(call.batch, self.hw, call.context, self.dtype)
        dm = self.model.model.diffusion_model
        def call_once():
            # The run's routing (its APPLY_MODEL wrapper's work) is counted with the call: the
            # first call of a run projects every block's keys/values of the full UNet. The
            # small run counts its own routing with the rest too (a few ops per call twice).
            with routed(full_run, dm, options, kw, self.dtype) as inputs:
                return dm(**inputs, transformer_options=options)

        result, _ = counting.count(call_once)
        return result


@contextlib.contextmanager
def routed(run, dm, options: dict, kw: dict, dtype) -> Iterator[dict]:
    """The UNet's inputs for one call routed by `run` as its wrapper routes it (None: as given)."""
    if run is None:
        yield kw
        return
    marks = options.get("cond_or_uncond")
    with run.routing(dm, marks, kw["x"], kw["context"], dtype) as context:
        yield dict(kw, context=context)


def meta_inputs(batch: int, hw: int, context: int, dtype: torch.dtype) -> dict:
    meta = torch.device("meta")
    return {
        "x": torch.empty(batch, 4, hw, hw, device=meta, dtype=dtype),
        "timesteps": torch.empty(batch, device=meta),
        "context": torch.empty(batch, context, 2048, device=meta, dtype=dtype),
        "y": torch.empty(batch, 2816, device=meta, dtype=dtype),
    }


def count_verb(fn, dm, routed_cls, full: FullUNet) -> tuple[dict, object]:
    """One run of `fn` counted on the small UNet, and composed for the full one; (counts, the
    run's result)."""
    with counting.counting() as tally:
        log = CallLog(dm, tally, routed_cls)
        try:
            out = fn()
        finally:
            log.close()
        small = tally.result()
    inside = [sum(getattr(c, k) for c in log.calls) for k in ("ops", "kernel_ops", "flops")]
    replayed = [full.count(call) for call in log.calls]  # outside the counting block above
    big = [sum(getattr(c, k) for c in replayed) for k in ("ops", "kernel_ops", "flops")]
    rest = [small.ops - inside[0], small.kernel_ops - inside[1], small.flops - inside[2]]
    return {
        "model_calls": len(log.calls),
        "mqd_calls": sum(c.run is not None for c in log.calls),
        "small_measured": small.as_dict(),
        "small_unet_calls": _named(inside),
        "outside_unet": _named(rest),
        "full_unet_calls": _named(big),
        "composed": _named([r + b for r, b in zip(rest, big, strict=True)]),
    }, out


def _named(values: list[int]) -> dict:
    return dict(zip(("ops", "kernel_ops", "flops"), values, strict=True))


def _ratio(a: dict, b: dict) -> dict:
    return {k: a[k] / b[k] if b[k] else None for k in ("ops", "kernel_ops", "flops")}


def count_section(work: ops.Workload, background, top: int, full_size: int) -> dict:
    """txt2img, AddLayer(top) with and without MQD and DeleteLayer: measured on the small UNet
    of `work`, composed for the full SDXL UNet at `full_size` px."""
    routed_cls = work.h.unet_mqd.RoutedAttn2
    dm, full = work.model.model.diffusion_model, FullUNet(work, full_size)
    memory = ops.stacked(work, background, top)
    obj = work.scene.objects[top - 1]
    pos, mask = work.cond(obj["local_prompt"]), work.mask(obj)
    out: dict = {}
    out["txt2img"], _ = count_verb(ops.txt2img(work), dm, routed_cls, full)
    add = f"add_layer_{top}"
    out[add], added = count_verb(ops.add_layer(work, memory), dm, routed_cls, full)
    out[f"{add}_without_mqd"], _ = count_verb(
        lambda: work.h.layer_ops.add_layer(
            memory, work.model, pos, mask, seed=work.seed, use_mqd=False
        ),
        dm,
        routed_cls,
        full,
    )
    delete, details = ops.delete_layer(work, added)
    out["delete_layer"], _ = count_verb(delete, dm, routed_cls, full)
    ratios = {}
    for which in ("composed", "small_measured"):
        ratios[which] = {
            f"{add}_over_txt2img": _ratio(out[add][which], out["txt2img"][which]),
            f"{add}_without_mqd_over_txt2img": _ratio(
                out[f"{add}_without_mqd"][which], out["txt2img"][which]
            ),
            f"delete_over_{add}": _ratio(out["delete_layer"][which], out[add][which]),
        }
    return {
        **out,
        "delete_layer_details": details,
        "layers_in_memory": top,
        "steps": work.steps,
        "small_size": work.size,
        "full_size": full_size,
        "ratios": ratios,
        "full_unet_per_call": per_call(work, full, added),
        "meta_check": meta_check(work, memory),
        "method": "composed: full SDXL UNet calls on meta tensors + the rest of a real run "
        "with the small SDXL UNet at the same schedule (not measured end to end)",
    }


def _forward_counts(work: ops.Workload, patcher, memory, kw: dict) -> dict:
    """Ops and FLOPs of one stock forward and one first MQD forward (CFG batch 2)."""
    dm = patcher.model.diffusion_model
    clone, run = sdxl_workload.mqd_clone(work, patcher, memory)
    out = {}
    for name, r, base in (("stock", None, {}),
                          ("mqd", run, clone.model_options["transformer_options"])):
        options = dict(base, cond_or_uncond=[1, 0])
        options["optimized_attention_override"] = sdxl_models.attention_like_cuda
        with routed(r, dm, options, kw, kw["x"].dtype) as inputs:
            result, _ = counting.count(lambda o=options, i=inputs: dm(**i, transformer_options=o))
        out[name] = {"ops": result.ops, "kernel_ops": result.kernel_ops, "flops": result.flops}
    return out


def meta_check(work: ops.Workload, memory) -> dict:
    """The small UNet counted on real CPU tensors and on meta: the full UNet's per-call counts
    are only as good as this match."""
    import comfy.model_management as mm

    mm.load_models_gpu([work.model])
    device = work.model.load_device
    real = _forward_counts(
        work, work.model, memory, sdxl_workload.forward_inputs(work, memory, device, torch.float32)
    )
    meta_kw = meta_inputs(2, work.size // 8, int(memory.top.positive.embedding.shape[1]),
                          torch.float32)
    meta = _forward_counts(
        work, sdxl_models.meta_patcher(sdxl_models.small_meta_model()), memory, meta_kw
    )
    return {"real": real, "real_device": str(device), "meta": meta, "equal": real == meta}


def per_call(work: ops.Workload, full: FullUNet, memory) -> dict:
    """One full-UNet call (CFG batch 2) stock, MQD's first call of a run and a later one, over
    `memory`'s layers (the run's routing is built outside the forward, so the two match)."""
    run = work.h.families.get("sdxl").attention_run(list(memory.layers))
    tokens = int(memory.top.positive.embedding.shape[1])
    out = {}
    for name, r in (("stock", None), ("mqd_first", run), ("mqd_later", run)):
        c = full.count(Call(0, 0, 0, r, 2, (1, 0), tokens))
        out[name] = {"ops": c.ops, "kernel_ops": c.kernel_ops, "flops": c.flops}
    out["attn2_blocks"] = len(work.h.unet_mqd.attn2_blocks(
        full.model.model.diffusion_model))
    out["routed_keys"] = run.routed_keys
    return out
