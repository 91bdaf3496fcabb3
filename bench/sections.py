"""The timed sections: the edits in interleaved rounds, one DiT forward, RAM/VRAM growth."""

from __future__ import annotations

import gc

import torch

from . import ops, timing

MB = 1e6


def _mqd_groups(work: ops.Workload, layers: list) -> int:
    """Groups one MQD attention call routes: PixArt's non-empty owner segments; in a UNet
    every layer's prompt is one group."""
    if work.family == "pixart":
        return len(work.h.pixart_mqd.MQDRun.for_layers(layers).prompt_owner)
    return len(layers)


def edit_table(work: ops.Workload, background, sizes: list[int]) -> tuple[dict, dict]:
    """txt2img, AddLayer(N) per size, BCG edit, latent-blending edit, DeleteLayer of one family:
    (name -> op, name -> details to add to its timing)."""
    top = max(sizes)
    memories = {n: ops.stacked(work, background, n) for n in sizes}
    full = ops.stacked(work, background, top + 1)  # what AddLayer(top) makes, for DeleteLayer
    delete, details = ops.delete_layer(work, full)
    table = {"txt2img": ops.txt2img(work)}
    table.update({f"add_layer_{n}": ops.add_layer(work, memories[n]) for n in sizes})
    table.update(
        {
            "bcg_edit": ops.bcg_edit(work, memories[top]),
            "lb_edit": ops.lb_edit(work, memories[top]),
            "delete_layer": delete,
        }
    )
    extra = {"delete_layer": details}
    for n in sizes:
        layers = list(memories[n].layers) + [full.layers[n]]
        extra[f"add_layer_{n}"] = {"mqd_groups": _mqd_groups(work, layers)}
    return table, extra


WITH_PARTS = ("bcg_edit", "lb_edit")


def edits_section(
    clock: timing.Clock, tables: dict[str, tuple[dict, dict]], rounds: int, warmup: int
) -> dict[str, dict]:
    """Every family's edits in the same interleaved rounds; family -> op -> timing."""
    merged = {
        f"{fam}/{name}": fn for fam, (table, _) in tables.items() for name, fn in table.items()
    }
    parts = frozenset(f"{fam}/{name}" for fam in tables for name in WITH_PARTS)
    timed = timing.interleaved(clock, merged, rounds, warmup, parts)
    out: dict[str, dict] = {}
    for fam, (table, extra) in tables.items():
        out[fam] = {name: timed[f"{fam}/{name}"] for name in table}
        for name, details in extra.items():
            out[fam][name].update(details)
    return out


def _forward_inputs(work: ops.Workload, memory, device, dtype):
    g = torch.Generator().manual_seed(5)
    hl = work.size // 8
    x = torch.randn(2, 4, hl, hl, generator=g).to(device, dtype)
    t = torch.full((2,), 500.0, device=device)
    ctx = torch.cat([memory.top.positive.embedding, work.negative[0][0]]).to(device, dtype)
    micro = {
        "c_size": torch.tensor([[work.size, work.size]] * 2, dtype=dtype, device=device),
        "c_ar": torch.ones(2, 1, dtype=dtype, device=device),
    }
    return x, t, ctx, micro


def forward_section(
    work: ops.Workload, clock: timing.Clock, memory, iters: int, warmup: int
) -> dict:
    """One DiT forward on a CFG batch of 2 (cond, uncond): stock vs MQD-patched."""
    import comfy.model_management as mm

    model, h = work.model, work.h
    bm = model.model
    dm = bm.diffusion_model
    dtype = bm.manual_cast_dtype or bm.get_dtype()
    x, t, ctx, micro = _forward_inputs(work, memory, model.load_device, dtype)

    def time_forwards() -> dict:
        for _ in range(warmup):
            dm(x, t, ctx, **micro)
        samples = [clock.run(lambda: dm(x, t, ctx, **micro))[0] for _ in range(iters)]
        entry = timing.summary([s["gpu" if clock.cuda else "wall"] for s in samples])
        entry["cpu"] = timing.summary([s["cpu"] for s in samples])
        return entry

    mm.load_models_gpu([model])
    stock = time_forwards()
    run = h.pixart_mqd.MQDRun.for_layers(list(memory.layers))
    clone = model.clone()
    h.pixart_mqd.install(clone, run)
    try:
        mm.load_models_gpu([clone])
        run.prepare(dm, x.device, dtype)
        run.select([0, 1], 2)  # what the APPLY_MODEL wrapper does per call
        mqd = time_forwards()
    finally:
        run.release()
        clone.unpatch_model(unpatch_weights=False)
    return {
        "stock": stock,
        "mqd": mqd,
        "batch": 2,
        "groups": len(run.prompt_owner),
        "timer": "cuda events" if clock.cuda else "perf_counter",
    }


def _snapshot(clock: timing.Clock, proc, memory, added: int, seconds=None) -> dict:
    gc.collect()
    row = {
        "layers_added": added,
        "layers_in_memory": len(memory.layers),
        "rss_mb": proc.memory_info().rss / MB,
        "memory_nbytes": memory.nbytes(),  # held: composites share their base (issue 22)
        "memory_assembled_bytes": assembled_bytes(memory),  # as a file or a loaded memory holds
    }
    if seconds is not None:
        row["add_s"] = round(seconds, 4)
    if clock.cuda:
        row["vram_allocated_mb"] = torch.cuda.memory_allocated() / MB
        row["vram_max_allocated_mb"] = torch.cuda.max_memory_allocated() / MB
    return row


def assembled_bytes(memory) -> int:
    """Bytes of the memory's values assembled (every composite whole, shared tensors once): what
    its file stores and what a memory loaded from it holds."""
    from layermem_core.trajectory import storage_bytes

    held = [t for _, t in memory.tensors()]  # all alive at once: no address reused
    return storage_bytes(held)


def memory_section(work: ops.Workload, clock: timing.Clock, background) -> dict:
    """A real chain of AddLayer on the background: RSS, memory bytes, VRAM after each."""
    import psutil

    proc = psutil.Process()
    rows = [_snapshot(clock, proc, background, 0)]
    memory = background
    for i, obj in enumerate(work.scene.chain_objects, start=1):
        if clock.cuda:
            torch.cuda.reset_peak_memory_stats()
        sample, memory = clock.run(
            lambda m=memory, o=obj, i=i: work.h.layer_ops.add_layer(
                m,
                work.model,
                work.cond(o["local_prompt"]),
                work.mask(o),
                seed=work.seed + 100 + i,
                name=o["class"],
                prompt=o["local_prompt"],
            )
        )
        rows.append(_snapshot(clock, proc, memory, i, sample["wall"]))
    n = len(rows) - 1
    grown = rows[-1]["memory_nbytes"] - rows[0]["memory_nbytes"]
    out = {
        "rows": rows,
        "layers_added": n,
        "nbytes_per_layer_mb": grown / n / MB,
        "nbytes_per_layer_mib": grown / n / 2**20,
        "rss_per_layer_mb": (rows[-1]["rss_mb"] - rows[0]["rss_mb"]) / n,
        "assembled_bytes_per_layer": (rows[-1]["memory_assembled_bytes"]
                                      - rows[0]["memory_assembled_bytes"]) / n,
    }
    calls, hl = background.top.trajectory.calls, work.size // 8
    out["expected_bytes_per_layer"] = expected_layer_bytes(calls, hl, hl, work.tokens)
    out["expected_bytes_per_layer_1024px_20_steps"] = expected_layer_bytes(
        20, 128, 128, work.tokens
    )
    out["saved_bytes"] = _saved_bytes(work, memory.with_layers(memory.layers[:5]))
    if clock.cuda:
        out.update(_vram_growth(rows))
    return out


def _saved_bytes(work: ops.Workload, five) -> dict:
    """File size of the first five layers, per trajectory storage dtype."""
    ser = work.h.serialization
    return {"layers": len(five.layers),
            **{dtype: len(ser.to_bytes(five, dtype)) for dtype in ser.TRAJECTORY_DTYPES}}


def _vram_growth(rows: list[dict]) -> dict:
    """Allocated and peak device memory growth over the chain, in percent."""
    base, first, last = rows[0], rows[1], rows[-1]
    return {
        "vram_allocated_growth_pct": 100.0 * (last["vram_allocated_mb"]
                                              - base["vram_allocated_mb"])
        / base["vram_allocated_mb"],
        "vram_peak_growth_pct": 100.0 * (last["vram_max_allocated_mb"]
                                         - first["vram_max_allocated_mb"])
        / first["vram_max_allocated_mb"],
    }


def expected_layer_bytes(calls: int, h: int, w: int, tokens: int, channels: int = 4) -> int:
    """What one added layer should hold: the model input per call and the final latent, its
    latent mask, token mask and prompt embedding, per-call sigma/step (negative shared)."""
    return (
        (calls + 1) * channels * h * w * 4
        + h * w * 4
        + (h // 2) * (w // 2)
        + tokens * 4096 * 4
        + calls * 16
    )


def batch_probe(work: ops.Workload) -> dict:
    """One untimed txt2img (a warm-up) that records the batch sizes the DiT sees."""
    batches: list[int] = []
    dm = work.model.model.diffusion_model
    hook = dm.register_forward_pre_hook(lambda m, args: batches.append(int(args[0].shape[0])))
    try:
        ops.txt2img(work)()
    finally:
        hook.remove()
    return {"cfg_batch_sizes_seen": sorted(set(batches)), "model_calls_per_run": len(batches)}
