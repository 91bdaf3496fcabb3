#!/usr/bin/env python3
"""Issue 22: what an edit of layer 1 costs in memory, ops and time, with no model.

A scene of `--layers` layers at `--size` px and `--steps` one-call steps is built from the
pack's own types with random tensors of the real shapes: composites T_k = lerp(T_{k-1}, S_k, m_k)
over random boxes (area-resized at 8 px, so with soft rims). Layer 1 is then edited the way the
verbs do it (the stack functions they call; the sampled parts fabricated, so no model runs):
  delete        DeleteLayer(1) with regenerate_fraction 0: stack.recompose of every layer above
  delete+heal   the same, then the heal's tail (last 8 of 20 calls) written in its visible
                region (stack.write_tail), as DeleteLayer(1, 0.4)
  move          EditLayer(1, new mask): a composite over `kept_under`, changed only in the new
                box, then recompose and the vacated visible part healed
Bytes are what ComfyUI's cache holds after it: the memory before and the one after, each
distinct storage counted once (untyped_storage().data_ptr()). `--core DIR` imports the pack
from another checkout (the commit before issue 22, for the figures before).

    OMP_NUM_THREADS=1 python3 -m bench.edit_memory --layers 20 [--core /tmp/base] [--json out]
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from bench.counting import count

REPO = Path(__file__).resolve().parents[1]
CORE_MODULES = ("memory", "stack", "masks", "trajectory")

MB = 1e6
HEAL_CALLS = 8  # regenerate_fraction 0.4 of 20 steps


def import_core(root: Path):
    """`root`'s layermem_core: this checkout's by its package name, another checkout's (--core)
    as a package of its own name, `layermem_core_other` (its modules import each other
    relatively), so the two never mix in one process."""
    if root.resolve() == REPO:
        name = "layermem_core"
    else:
        name = "layermem_core_other"
        if name not in sys.modules:
            init = root.resolve() / "layermem_core" / "__init__.py"
            spec = importlib.util.spec_from_file_location(
                name, init, submodule_search_locations=[str(init.parent)])
            package = importlib.util.module_from_spec(spec)
            sys.modules[name] = package
            spec.loader.exec_module(package)
    return {m: importlib.import_module(f"{name}.{m}") for m in CORE_MODULES}


def held_bytes(memories) -> int:
    """Distinct storages the memories hold (data pointer -> bytes), summed."""
    found = {}
    for memory in memories:
        parts = memory.stored_tensors() if hasattr(memory, "stored_tensors") else memory.tensors()
        for _, t in parts:
            st = t.untyped_storage()
            found[st.data_ptr()] = st.nbytes()
    return sum(found.values())


def box_mask(core, size: int, hw: tuple[int, int], box: tuple[float, float, float, float]):
    x0, y0, x1, y1 = (int(round(v * size)) for v in box)
    m = torch.zeros(1, size, size)
    m[:, y0:y1, x0:x1] = 1.0
    return core["masks"].prepare_layer_mask(m, hw, 0, 0)


def scene(core, size: int, steps: int, n: int, tokens: int, g: torch.Generator,
          add_shared: bool = True):
    """The scene's layers; with `add_shared` each composite stored as AddLayer stores it since
    issue 22's second part (`stack.shared_with` over the one below), else in full."""
    mem, T = core["memory"], core["trajectory"].Trajectory
    h = w = size // 8
    sigmas = torch.linspace(14.6, 0.03, steps + 1)
    sigmas[-1] = 0
    calls = sigmas[:-1].to(torch.float64)
    neg = mem.Conditioning(torch.randn(1, tokens, 4096, generator=g), (("height", size),))
    rows, below = [], None
    for i in range(n):
        if i == 0:
            m = torch.ones(h, w)
        else:
            bw, bh = (0.15 + 0.2 * float(v) for v in torch.rand(2, generator=g))
            x0, y0 = float(torch.rand(1, generator=g)) * (1 - bw), \
                float(torch.rand(1, generator=g)) * (1 - bh)
            m = box_mask(core, size, (h, w), (x0 + 0.003, y0 + 0.003, x0 + bw, y0 + bh))
        s = torch.randn(steps + 1, 4, h, w, generator=g)
        pts = s if below is None else torch.lerp(below, s, m)
        below = pts
        traj = T(calls.clone(), torch.arange(steps), pts[:-1].clone(), pts[-1].clone())
        if add_shared and rows and hasattr(core["stack"], "shared_with"):
            traj = core["stack"].shared_with(traj, rows[-1].trajectory)
        pos = mem.Conditioning(torch.randn(1, tokens, 4096, generator=g), (("height", size),))
        rows.append(mem.Layer(f"layer {i}", pos, neg, i, m, core["masks"].token_mask(m), traj))
    family = ("pixart",) if "family" in mem.ModelFingerprint.__dataclass_fields__ else ()
    fp = mem.ModelFingerprint("pixart_alpha", 28, True, 4, (0.0,), *family)  # (older cores: none)
    sched = mem.Schedule(sigmas, "euler", "normal", steps, 4.5)
    return mem.LayerMemory(fp, sched, (4, h, w), 0.18215, tuple(rows))


def visible(core, layers, index: int, support, grow: int = 2):
    """layer_ops.visible_region (that module needs ComfyUI): `support` minus newer masks, grown."""
    ms = core["masks"]
    newer = torch.zeros_like(support, dtype=torch.bool)
    for layer in layers[index + 1:]:
        newer |= ms.support(layer.latent_mask)
    return (ms.grow((support & ~newer).float(), grow) > 0) & ~newer


def fake_tail(core, memory, g):
    top = memory.layers[-1].trajectory
    c0 = top.calls - HEAL_CALLS
    pts = torch.randn(HEAL_CALLS + 1, *memory.latent_shape, generator=g)
    return c0, core["trajectory"].Trajectory(top.sigmas[c0:], top.steps[c0:], pts[:-1], pts[-1])


def delete(core, memory, heal, g):
    st, layers = core["stack"], list(memory.layers)
    upper = st.recompose(layers[2:], layers[1].trajectory, layers[0].trajectory)
    remaining = layers[:1] + upper
    if heal is not None:
        region = visible(core, layers, 1, core["masks"].support(layers[1].latent_mask))
        remaining = st.write_tail(remaining, region, heal[0], heal[1])
    return memory.with_layers(tuple(remaining))


def move(core, memory, new_mask, sample, heal):
    st, ms, layers = core["stack"], core["masks"], list(memory.layers)
    old = layers[1]
    kept = st.kept_under(old, layers[0].trajectory)
    kp = torch.cat([kept.x, kept.final[None]])
    # BCG: exact outside the new mask, the new sample inside (the run fabricated)
    pts = torch.where(new_mask > 0, torch.lerp(kp, sample, new_mask), kp)
    composite = core["trajectory"].Trajectory(kept.sigmas, kept.steps, pts[:-1].contiguous(),
                                              pts[-1].contiguous())
    if hasattr(st, "shared_with"):
        composite = st.shared_with(composite, old.trajectory)
    upper = st.recompose(layers[2:], old.trajectory, composite)
    from dataclasses import replace
    new_layers = layers[:1] + [replace(old, latent_mask=new_mask, trajectory=composite)] + upper
    vacated = ms.support(old.latent_mask) & ~ms.support(new_mask)
    region = visible(core, new_layers, 1, vacated) & ~ms.support(new_mask)
    new_layers = st.write_tail(new_layers, region, heal[0], heal[1])
    return memory.with_layers(tuple(new_layers))


def measure(core, args) -> dict:
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(22)
    memory = scene(core, args.size, args.steps, args.layers, args.tokens, g,
                   add_shared=args.add_stored == "shared")
    h, w = memory.latent_hw
    heal = fake_tail(core, memory, g)
    m1 = memory.layers[1].latent_mask
    ys, xs = (m1 > 0).nonzero(as_tuple=True)
    shift = w // 10
    new_mask = torch.zeros_like(m1)
    new_mask[:, shift:] = m1[:, :-shift]
    sample = torch.randn(memory.layers[0].trajectory.calls + 1, *memory.latent_shape, generator=g)
    edits = {
        "delete": lambda: delete(core, memory, None, g),
        "delete+heal": lambda: delete(core, memory, heal, g),
        "move": lambda: move(core, memory, new_mask, sample, heal),
    }
    def box_share(cells: torch.Tensor) -> float:
        ys, xs = cells.nonzero(as_tuple=True)
        return (int(ys.max() - ys.min()) + 1) * (int(xs.max() - xs.min()) + 1) / (h * w)

    # the region each edit changes at layer 1: its mask (delete), old and new mask (move)
    regions = {"delete": box_share(m1 > 0), "delete+heal": box_share(m1 > 0),
               "move": box_share((m1 > 0) | (new_mask > 0))}
    base = held_bytes([memory])
    out = {"layers": args.layers, "size": args.size, "steps": args.steps, "tokens": args.tokens,
           "memory_mb": base / MB, "layer_1_mask_share": float((m1 > 0).float().mean()),
           "layer_1_box_share": (int(ys.max() - ys.min()) + 1) * (int(xs.max() - xs.min()) + 1)
           / (h * w), "edits": {}}
    for name, fn in edits.items():
        counted, new = count(fn, flops=False)
        seconds = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            fn()
            seconds.append(time.perf_counter() - t0)
        both = held_bytes([memory, new])
        out["edits"][name] = {
            "old_plus_new_mb": both / MB, "added_mb": (both - base) / MB,
            "added_share": (both - base) / base, "region_box_share": regions[name],
            "new_memory_nbytes_mb": new.nbytes() / MB,
            "ops": counted.ops, "kernel_ops": counted.kernel_ops,
            "ops_per_layer_above": counted.ops / (args.layers - 2),
            "kernel_ops_per_layer_above": counted.kernel_ops / (args.layers - 2),
            "seconds_median": statistics.median(seconds),
        }
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--layers", type=int, default=20, help="layers, the background counted")
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--tokens", type=int, default=20)
    p.add_argument("--add-stored", choices=("shared", "full"), default="shared",
                   help="each added composite stored as AddLayer does now (over the one below) "
                        "or in full (as before)")
    p.add_argument("--repeat", type=int, default=3, help="timed runs per edit (median)")
    p.add_argument("--core", type=Path, default=REPO, help="checkout whose layermem_core to use")
    p.add_argument("--commit", help="the commit --core holds, where it is not a git checkout")
    p.add_argument("--json", type=Path, help="append the result (with the commit) to this file")
    args = p.parse_args(argv)
    core = import_core(args.core)
    res = measure(core, args)
    commit = subprocess.run(["git", "-C", str(args.core), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    res["core"] = str(args.core)
    res["add_stored"] = args.add_stored
    res["commit"] = args.commit or commit or "(not a git checkout)"
    print(f"{args.layers} layers, {args.size} px, {args.steps} steps: memory "
          f"{res['memory_mb']:.1f} MB (added composites {args.add_stored}); "
          f"layer 1 mask {res['layer_1_mask_share']:.3f} of the "
          f"picture, its box {res['layer_1_box_share']:.3f}  [{res['commit']} {args.core}]")
    for name, e in res["edits"].items():
        print(f"  {name:12s} old+new {e['old_plus_new_mb']:7.1f} MB (+{e['added_mb']:.1f} MB, "
              f"+{100 * e['added_share']:.1f}%; region box {100 * e['region_box_share']:.1f}%)  "
              f"ops {e['ops']} / kernels {e['kernel_ops']} "
              f"({e['ops_per_layer_above']:.1f} / {e['kernel_ops_per_layer_above']:.1f} a layer "
              f"above)  {1000 * e['seconds_median']:.1f} ms")
    if args.json:
        rows = json.loads(args.json.read_text()) if args.json.exists() else []
        rows.append(res)
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
