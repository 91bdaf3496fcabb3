"""The SDXL side of the benchmark: its workload and its one-UNet-forward section (issue 11).

The edits themselves are bench/ops.py's, the same code as PixArt's: only the model, the size
and the prompts (CLIPTextEncodeSDXL-shaped) differ. The VAE is the PixArt run's: SDXL's VAE has
the SD VAE's architecture (AutoencoderKL; only the latent scale differs, which the model applies),
so its compute is the same.
"""

from __future__ import annotations

from pathlib import Path

import torch

from . import inputs, ops, sdxl_models, timing


def load_model(kind: str, workdir: Path, dtype: str) -> tuple[object, dict]:
    """The full-size SDXL UNet ("full") or the small CPU one ("small")."""
    return sdxl_models.load_full(dtype) if kind == "full" else sdxl_models.load_small(workdir)


def workload(args, h, model, vae, scene: inputs.Scene, size: int, steps: int) -> ops.Workload:
    """An SDXL Workload with the run's schedule, seed and scene."""
    return ops.Workload(
        h,
        model,
        vae,
        size,
        steps,
        args.cfg,
        args.sampler,
        args.scheduler,
        inputs.SDXL_TOKENS,
        args.seed,
        scene,
        family="sdxl",
    )



def forward_inputs(work: ops.Workload, memory, device, dtype, hw: int | None = None) -> dict:
    """A CFG batch of 2 (uncond, cond) as ComfyUI hands it to the UNet."""
    g = torch.Generator().manual_seed(5)
    hw = hw or work.size // 8
    ctx = torch.cat([memory.top.negative.embedding, memory.top.positive.embedding])
    return {
        "x": torch.randn(2, 4, hw, hw, generator=g).to(device, dtype),
        "timesteps": torch.full((2,), 500.0, device=device),
        "context": ctx.to(device, dtype),
        "y": torch.randn(2, 2816, generator=g).to(device, dtype),
    }


def mqd_clone(work: ops.Workload, model, memory):
    """A clone of `model` with MQD installed over the memory's layers, through the pack's own
    family switch; (clone, run)."""
    families = work.h.families
    run = families.get("sdxl").attention_run(list(memory.layers))
    clone = model.clone()
    run.install(clone)
    return clone, run


def forward_section(
    work: ops.Workload, clock: timing.Clock, memory, iters: int, warmup: int
) -> dict:
    """One UNet forward on a CFG batch of 2, stock vs MQD over the memory's layers, in
    interleaved rounds (the same timing as the edits)."""
    import comfy.model_management as mm

    mm.load_models_gpu([work.model])
    bm = work.model.model
    dm = bm.diffusion_model
    dtype = bm.manual_cast_dtype or bm.get_dtype()
    kw = forward_inputs(work, memory, work.model.load_device, dtype)
    clone, run = mqd_clone(work, work.model, memory)
    routed = dict(clone.model_options["transformer_options"], cond_or_uncond=[1, 0])

    def mqd_call():  # what the run's APPLY_MODEL wrapper does around each model call, then it
        with run.routing(dm, [1, 0], kw["x"], kw["context"], dtype) as context:
            return dm(**dict(kw, context=context), transformer_options=dict(routed))

    # MQD needs no weight patch, only transformer_options: the two can alternate
    calls = {"stock": lambda: dm(**kw, transformer_options={"cond_or_uncond": [1, 0]}),
             "mqd": mqd_call}
    calls["mqd"]()  # the run builds its routed context and biases in its first call
    timed = timing.interleaved(clock, calls, iters, warmup)
    for entry in timed.values():
        if clock.cuda:  # the forward's own time is the GPU's
            entry.update(entry["gpu"])
    return {
        **timed,
        "batch": 2,
        "groups": len(run.prompts),
        "timer": "cuda events" if clock.cuda else "perf_counter",
        "interleaved": True,
    }
