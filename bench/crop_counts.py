#!/usr/bin/env python3
"""AddLayer around the mask against a whole-picture txt2img (issue 25): kernels and FLOPs for
masks of 2%, 10% and 30% of a 1024 px picture, 20 steps, PixArt-alpha (depth 28) and SDXL,
with the attention ComfyUI runs on CUDA (torch SDPA; the bench boots with it).

Composed as bench/sdxl_counts.py composes SDXL: each verb runs for real with a small model
(PixArt depth 1 at 768 px, the small SDXL UNet at 512 px: sizes at which a crop is smaller than
the picture) on the same schedule; forward hooks split what it dispatched into its model calls
and the rest (sampler, BCG, the crop's copies, MQD set-up outside the model). Every model call
is then counted on the full-size model built on "meta" tensors (shapes, no storage) at the
input the call has at 1024 px: the whole 128 x 128 latent for txt2img and a whole-picture
AddLayer, the crop `crop.plan` makes at 1024 px for AddLayer around the mask (with the run's MQD
over the cropped layers, and for PixArt its positional patch). Composed = the rest + the full
model's calls. The rest does not depend on the model's size; the small run's own MQD set-up
(depth 1) is in it as well as the full model's in its first call (a few ops counted twice).
PixArt's small runs are slow on a CPU, so there the background is not sampled (zeros on the
schedule: an edit's cost does not depend on the stored values), txt2img's rest is measured at
512 px and AddLayer's rest once (at 2%) for every fraction (SDXL measures every fraction: its
rests differ by at most 56 of about 1,700 kernels), and no whole-picture AddLayer row is made.

    python3 -m bench.crop_counts --out bench/results/cpu-crop-counts-<date>.json
"""
from __future__ import annotations

import argparse
import json
import math
import tempfile
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import torch

from bench import counting, environment, inputs, models, ops, sdxl_counts

REPO = Path(__file__).resolve().parents[1]

FULL_SIZE = 1024
FRACTIONS = (0.02, 0.10, 0.30)
SMALL = {"pixart": 768, "sdxl": 512}
AROUND = "around the mask"
META = torch.device("meta")
EXACT: list[bool] = []  # per measured AddLayer: bit-identical outside its mask (small_rest)


def box(fraction: float) -> list[float]:
    """A centred square covering `fraction` of the picture."""
    side = math.sqrt(fraction)
    return [0.5 - side / 2, 0.5 - side / 2, 0.5 + side / 2, 0.5 + side / 2]


def _layers(work: ops.Workload, memory, fraction: float, size: int):
    """The background and the new layer at `size` px, as AddLayer's run routes them."""
    h = work.h
    fam = h.families.get(work.family)
    mask = h.masks.prepare_layer_mask(inputs.box_mask(box(fraction), size),
                                      (size // 8, size // 8), 0, 0)
    pos = h.conditioning.Conditioning.from_comfy(work.cond(f"object {fraction}"), "positive", fam)
    draft = replace(memory.top, name="new", positive=pos, latent_mask=mask,
                    token_mask=h.masks.token_mask(mask))
    return [memory.top, draft]


def unsampled_background(work: ops.Workload):
    """A background memory on the schedule without sampling it (zeros as its stored path): what
    an edit costs does not depend on the stored values (bench/ops.py), and a whole-picture
    background run of the small PixArt at 768 px would take most of this bench's time."""
    h = work.h
    fam = h.families.get(work.family)
    schedule = h.sampling.make_schedule(work.model, work.sampler, work.scheduler, work.steps,
                                        work.cfg)
    n, hw = work.steps, (work.size // 8, work.size // 8)  # dpmpp_2m: one call per step
    trajectory = h.trajectory.Trajectory(schedule.sigmas[:n].double(), torch.arange(n),
                                         torch.zeros(n, 4, *hw), torch.zeros(4, *hw))
    cond = h.conditioning.Conditioning
    return h.verb_toolkit.background_memory(
        h.model_checks.fingerprint(work.model), schedule, (4, *hw),
        float(work.model.model.latent_format.scale_factor),
        cond.from_comfy(work.cond(work.scene.background_prompt), "positive", fam),
        cond.from_comfy(work.negative, "negative", fam), work.seed, trajectory, "background")


class FullModel:
    """The full-size model of a family on meta: one model call's counts at a latent (h, w)."""

    def __init__(self, work: ops.Workload, small_model):
        self.work, self.h = work, work.h
        self.dtype = torch.float16
        if work.family == "sdxl":
            from bench import sdxl_models

            self.patcher = sdxl_models.meta_patcher(sdxl_models.full_sdxl_model("meta",
                                                                                self.dtype))
        else:
            from bench import sdxl_models

            config = type(small_model.model.model_config)(
                dict(small_model.model.model_config.unet_config, depth=28))
            config.set_inference_dtype(self.dtype, None)
            self.patcher = sdxl_models.meta_patcher(config.get_model({}, device=META))
        self.dm = self.patcher.model.diffusion_model

    def count(self, hw: tuple[int, int], run=None, crop_box=None, calls: int = 1) -> list:
        """Counts of `calls` consecutive calls of one run (CFG batch 2) at latent `hw`."""
        clone = self.patcher.clone()
        keys = run.install(clone) if run is not None else []
        hook = self.h.families.get(self.work.family).crop_patches
        if crop_box is not None and hook is not None:
            for patch in hook((FULL_SIZE // 8, FULL_SIZE // 8), crop_box):
                keys += patch.install(clone)
        stock = {k: self.patcher.get_model_object(k) for k in keys
                 if isinstance(k, str) and k.startswith("diffusion_model.")}
        for k in stock:  # our own meta model: put the clone's object patches on it for the count
            _set(self.patcher.model, k, clone.object_patches[k])
        try:
            return [self._one(clone, hw, run) for _ in range(calls)]
        finally:
            for k, module in stock.items():
                _set(self.patcher.model, k, module)

    def _one(self, clone, hw, run) -> counting.Count:
        h, w = hw
        options = dict(clone.model_options.get("transformer_options", {}), cond_or_uncond=[1, 0])
        if self.work.family == "sdxl":
            from bench import sdxl_models

            options["optimized_attention_override"] = sdxl_models.attention_like_cuda
            tokens = inputs.SDXL_TOKENS
            kw = {"x": torch.empty(2, 4, h, w, device=META, dtype=self.dtype),
                  "timesteps": torch.empty(2, device=META),
                  "context": torch.empty(2, tokens, 2048, device=META, dtype=self.dtype),
                  "y": torch.empty(2, 2816, device=META, dtype=self.dtype)}

            def call():
                with sdxl_counts.routed(run, self.dm, options, kw, self.dtype) as i:
                    return self.dm(**i, transformer_options=options)
        else:
            kw = {"x": torch.empty(2, 4, h, w, device=META, dtype=self.dtype),
                  "timesteps": torch.empty(2, device=META),
                  "context": torch.empty(2, 20, 4096, device=META, dtype=self.dtype),
                  "c_size": torch.empty(2, 2, device=META, dtype=self.dtype),
                  "c_ar": torch.empty(2, 1, device=META, dtype=self.dtype)}
            base = self.patcher.model

            class Executor:  # what ComfyUI's APPLY_MODEL wrapper chain hands MQD's wrapper
                class_obj = base

                def __call__(_, x, t, c_concat, c_crossattn, control, transformer_options, **k):
                    return self_dm(x, t, c_crossattn, **k)

            self_dm = self.dm

            def call():
                if run is None:
                    return self.dm(kw["x"], kw["timesteps"], kw["context"], c_size=kw["c_size"],
                                   c_ar=kw["c_ar"])
                return run.apply_model_wrapper(Executor(), kw["x"], kw["timesteps"], None,
                                               kw["context"], None, options,
                                               c_size=kw["c_size"], c_ar=kw["c_ar"])
        result, _ = counting.count(call)
        return result


def _set(root, key: str, module) -> None:
    parent, _, name = key.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, name, module)


def small_rest(work: ops.Workload, fn, below=None) -> tuple[dict, int]:
    """The rest of a real run of `fn` on the small model (outside its model calls); calls.
    With `below` (the memory an AddLayer was given), also whether the new memory is `below`
    bit for bit outside the new mask in every stored point of every composite."""
    dm = work.model.model.diffusion_model
    with counting.counting() as tally:
        log = sdxl_counts.CallLog(dm, tally, work.h.unet_mqd.RoutedAttn2)
        try:
            out = fn()
        finally:
            log.close()
        total = tally.result()
    if below is not None:
        outside = out.top.latent_mask == 0
        old = torch.cat([below.top.trajectory.x, below.top.trajectory.final[None]])
        new = torch.cat([out.top.trajectory.x, out.top.trajectory.final[None]])
        same_bg = torch.equal(out.layers[0].trajectory.x, below.layers[0].trajectory.x)
        EXACT.append(bool(torch.equal(old[..., outside], new[..., outside])) and same_bg)
    inside = [sum(getattr(c, k) for c in log.calls) for k in ("ops", "kernel_ops", "flops")]
    rest = [total.ops - inside[0], total.kernel_ops - inside[1], total.flops - inside[2]]
    return dict(zip(("ops", "kernel_ops", "flops"), rest, strict=True)), len(log.calls)


def _sum(rest: dict, calls: list) -> dict:
    return {k: rest[k] + sum(getattr(c, k) for c in calls) for k in ("ops", "kernel_ops", "flops")}


def measure(work: ops.Workload, small_model, margin: int, txt_work: ops.Workload,
            cheap: bool) -> dict:
    """txt2img and AddLayer around the mask (and, unless `cheap`, over the whole picture) per
    mask fraction. `cheap` (PixArt, whose small runs are slow on a CPU): the rest of the
    around-the-mask run is measured once, at the first fraction, and reused (its ops do not
    depend on the mask: the SDXL rows measure every fraction and show it)."""
    h = work.h
    fam = h.families.get(work.family)
    full = FullModel(work, small_model)
    bg = unsampled_background(work) if cheap else ops.start(work)
    full_hw = (FULL_SIZE // 8, FULL_SIZE // 8)
    rest, calls = small_rest(txt_work, ops.txt2img(txt_work))
    txt = _sum(rest, full.count(full_hw, calls=calls))
    rows: dict = {"txt2img": {**txt, "model_calls": calls, "outside_model": rest}}
    for fraction in FRACTIONS:
        big = _layers(work, bg, fraction, FULL_SIZE)
        for compute in ((AROUND,) if cheap else ("whole picture", AROUND)):
            def add(c=compute, fraction=fraction):
                return h.layer_ops.add_layer(bg, work.model, work.cond(f"object {fraction}"),
                                             inputs.box_mask(box(fraction), work.size),
                                             seed=work.seed + 1, compute=c, context_margin=margin)
            if not (cheap and fraction != FRACTIONS[0]):
                EXACT.clear()
                rest, calls = small_rest(work, add, below=bg)
            crop = (h.crop.plan(big[1].latent_mask > 0, margin, fam.crop_cells, fam.min_size,
                                "bench") if compute == AROUND else None)
            layers = h.crop_run.layers_in(crop, big) if crop is not None else big
            run = fam.attention_run(layers)
            hw = (crop.height, crop.width) if crop is not None else full_hw
            counted = full.count(hw, run, crop.box if crop is not None else None, calls=2)
            model_calls = [counted[0]] + [counted[1]] * (calls - 1)  # later calls: as the 2nd
            composed = _sum(rest, model_calls)
            key = f"add_layer_{'around' if crop is not None else 'whole'}_{fraction:.2f}"
            rows[key] = {**composed, "model_calls": calls, "outside_model": rest,
                         "crop_px": None if crop is None else [8 * v for v in crop.box],
                         "small_run_exact_outside_mask": EXACT[-1],
                         "ratios": {k: composed[k] / txt[k] for k in
                                    ("ops", "kernel_ops", "flops")}}
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--comfyui", default=None, help="ComfyUI checkout")
    p.add_argument("--family", choices=("pixart", "sdxl", "both"), default="both")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--margin", type=int, default=64, help="context_margin in pixels")
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--out", default=None, help="JSON file")
    args = p.parse_args()
    from bench.run_bench import boot

    h, root, workdir = boot(SimpleNamespace(comfyui_path=None, comfyui=args.comfyui,
                                            device="cpu", verbose=False))
    vae, _ = models.load_vae("taesd")
    scene = inputs.pick_scene(h, inputs.load_scenes(), 1, 1, 512)
    out = {"config": vars(args), "full_size": FULL_SIZE, "small_size": SMALL,
           "environment": environment.describe("cpu", root, REPO, None)}
    for family in (("pixart", "sdxl") if args.family == "both" else (args.family,)):
        size = SMALL[family]
        if family == "sdxl":
            from bench import sdxl_workload

            model, _ = sdxl_workload.load_model("small", Path(tempfile.mkdtemp(dir=workdir)),
                                                "fp32")
            work = sdxl_workload.workload(
                SimpleNamespace(cfg=4.5, sampler="dpmpp_2m", scheduler="karras", seed=args.seed),
                h, model, vae, scene, size, args.steps)
            txt_work = work
        else:
            model, _ = models.load_pixart(Path(tempfile.mkdtemp(dir=workdir)), 512, 1, "fp16")
            work = ops.Workload(h, model, vae, size, args.steps, 4.5, "dpmpp_2m", "karras", 20,
                                args.seed, scene)
            txt_work = replace(work, size=512)  # the rest of txt2img: at 512 px (size-free)
        rows = measure(work, model, args.margin, txt_work, cheap=family == "pixart")
        out[family] = rows
        label = "PixArt-alpha depth 28" if family == "pixart" else "SDXL (full UNet)"
        print(f"{label}, {FULL_SIZE} px, {args.steps} steps dpmpp_2m, CFG batch 2, margin "
              f"{args.margin} px, attention {environment.attention_name()}")
        print("AddLayer / txt2img      | crop px           | ops   | kernels | FLOPs")
        for key, r in rows.items():
            if key == "txt2img":
                continue
            crop = "whole" if r["crop_px"] is None else "x".join(str(v) for v in r["crop_px"][2:])
            q = r["ratios"]
            print(f"{key:<23} | {crop:<17} | {q['ops']:.3f} | {q['kernel_ops']:.3f}   | "
                  f"{q['flops']:.4f} | small run exact outside the mask: "
                  f"{r['small_run_exact_outside_mask']}")
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=1, default=str))


if __name__ == "__main__":
    main()
