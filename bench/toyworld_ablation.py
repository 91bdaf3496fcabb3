"""Stock inpainting vs AddLayer with BCG only vs AddLayer (BCG + MQD) on the toy world (issue 23).

On seeded scenes of 3 to 5 objects with overlapping boxes (distinct colours per scene, so the
oracle never has to split two touching objects of one colour), each method builds the scene
object by object from the same background, then removes the second object. The toy model and
its oracle are in tools/toyworld/; figures go to docs/toyworld.md. One run:

    COMFYUI_PATH=~/ComfyUI OMP_NUM_THREADS=1 python3 -m bench.toyworld_ablation --scenes 100

The scenes can be split over processes (`--first 50 --scenes 50` runs scenes 50 to 99, seeded by
their index, so the split changes no figure) and the parts joined with `--merge a.json b.json`.
The JSON (per-scene results included) is rewritten every 10 scenes, marked "partial" until the
run ends.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]

METHODS = ("stock", "bcg", "full")  # SetLatentNoiseMask + KSampler; AddLayer use_mqd off / on
DELETE_INDEX = 2  # the second object (layer 2; the background is layer 0)


def bench_scene(rng: np.random.Generator, world):
    """A background and 3 to 5 objects of distinct colours, boxes on the 8 px grid, each one
    overlapping an earlier box."""
    n = int(rng.integers(3, 6))
    colours = rng.choice(len(world.COLOUR_NAMES), n, replace=False)
    objects = []
    for k in range(n):
        for _ in range(100):
            w, h = (int(rng.integers(4, 8)) * 8 for _ in range(2))
            x0 = int(rng.integers(0, (world.SIZE - w) // 8 + 1)) * 8
            y0 = int(rng.integers(0, (world.SIZE - h) // 8 + 1)) * 8
            box = (x0, y0, x0 + w, y0 + h)
            if k == 0 or any(_overlap(box, o.box) for o in objects):
                break
        shape = world.SHAPES[int(rng.integers(len(world.SHAPES)))]
        objects.append(world.Obj(world.COLOUR_NAMES[colours[k]], shape, box))
    return world.Scene(world.BG_NAMES[int(rng.integers(len(world.BG_NAMES)))], tuple(objects))


def _overlap(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def run_method(host, method: str, scene, index: int, start) -> dict:
    """One method on one scene from the shared background `start` = (memory, latent, picture)."""
    from tools.toyworld import edits, oracle

    settings = edits.Settings()
    memory, latent, first = start
    pictures = [first]
    adds = []
    for k, obj in enumerate(scene.objects):
        seed = 1000 + 10 * index + k
        latent_before = latent
        if method == "stock":
            latent = edits.stock_inpaint(host, latent, obj.phrase, edits.box_mask(obj.box), seed,
                                         settings)
        else:
            memory, latent = edits.add_layer(host, memory, obj.phrase, obj.box, seed,
                                             use_mqd=method == "full")
        picture = edits.decode(latent)
        reading = oracle.read_picture_box(picture, obj.box)
        changed, psnr = edits.outside_change(pictures[-1], picture, edits.box_region(obj.box))
        adds.append({"object": reading.object == (obj.colour, obj.shape),
                     "colour": reading.colour == obj.colour, "read": reading.object,
                     "outside_changed": changed, "outside_psnr": psnr,
                     "outside_latent_exact": edits.outside_latent_equal(latent_before, latent,
                                                                        obj.box)})
        pictures.append(picture)
    final = oracle.labels(pictures[-1])
    pairs = []
    for i, a in enumerate(scene.objects):
        for b in scene.objects[i + 1:]:
            if not _overlap(a.box, b.box):
                continue
            x0, y0 = max(a.box[0], b.box[0]), max(a.box[1], b.box[1])
            x1, y1 = min(a.box[2], b.box[2]), min(a.box[3], b.box[3])
            region = final[y0:y1, x0:x1]
            na = int((region == _cls(a.colour)).sum())
            nb = int((region == _cls(b.colour)).sum())
            if na + nb:
                pairs.append(nb > na)  # the later object must be in front
    deleted = scene.objects[DELETE_INDEX - 1]
    freed = edits.box_region(deleted.box)
    for later in scene.objects[DELETE_INDEX:]:
        freed &= ~edits.box_region(later.box)
    if method == "stock":  # a user's stock removal: inpaint the freed region with the background
        mask = torch.from_numpy(freed.astype(np.float32))[None]
        after = edits.stock_inpaint(host, latent, scene.background, mask, 5000 + index, settings)
    else:
        _, after = edits.delete_layer(host, memory, DELETE_INDEX, 5000 + index)
    after_labels = oracle.labels(edits.decode(after))
    below = oracle.labels(pictures[DELETE_INDEX - 1])  # the composite before it was added
    freed_n = int(freed.sum())
    delete = {"freed_pixels": freed_n,
              "matches_below": float((after_labels == below)[freed].mean()) if freed_n else None,
              "ghost": float((after_labels == _cls(deleted.colour))[freed].mean())
              if freed_n else None}
    return {"adds": adds, "order_pairs": pairs, "delete": delete}


def _cls(colour: str) -> int:
    from tools.toyworld import world

    return world.colour_class(colour)


def summarise(results: list[dict]) -> dict:
    adds = [a for r in results for a in r["adds"]]
    pairs = [p for r in results for p in r["order_pairs"]]
    deletes = [r["delete"] for r in results if r["delete"]["freed_pixels"]]
    psnr = [a["outside_psnr"] for a in adds]
    finite = [p for p in psnr if np.isfinite(p)]
    return {
        "objects": len(adds),
        "object_accuracy": float(np.mean([a["object"] for a in adds])),
        "colour_accuracy": float(np.mean([a["colour"] for a in adds])),
        "outside_latent_exact": float(np.mean([a["outside_latent_exact"] for a in adds])),
        "outside_class_changed": float(np.mean([a["outside_changed"] for a in adds])),
        "outside_psnr_median": float(np.median(psnr)),
        "outside_psnr_identical_share": float(np.mean([not np.isfinite(p) for p in psnr])),
        "outside_psnr_mean_finite": float(np.mean(finite)) if finite else None,
        "order_pairs": len(pairs),
        "order_correct": float(np.mean(pairs)) if pairs else None,
        "deletes": len(deletes),
        "delete_matches_below": float(np.mean([d["matches_below"] for d in deletes])),
        "delete_ghost": float(np.mean([d["ghost"] for d in deletes])),
    }


def write(path: Path, scenes: list[int], settings: dict, seconds: float,
          results: dict, partial: bool) -> dict:
    summary = {m: summarise(r) for m, r in results.items()}
    out = {"scenes": len(scenes), "first": scenes[0], "last": scenes[-1], "settings": settings,
           "seconds": seconds, "partial": partial, "summary": summary, "results": results}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1))
    return summary


def finished_parts(paths: list[Path]) -> tuple[list[dict], list[int]]:
    """Finished `--first` parts' JSON (in scene order) and the scenes they cover together;
    refuses parts that leave a gap or did not finish. Shared with bench/toyworld_verbs.py."""
    parts = sorted((json.loads(p.read_text()) for p in paths), key=lambda d: d["first"])
    for a, b in zip(parts, parts[1:], strict=False):
        assert a["last"] + 1 == b["first"], "the parts must cover consecutive scenes"
    assert not any(d["partial"] for d in parts), "a part did not finish"
    return parts, list(range(parts[0]["first"], parts[-1]["last"] + 1))


def merge(paths: list[Path], out: Path) -> dict:
    parts, scenes = finished_parts(paths)
    results = {m: [r for d in parts for r in d["results"][m]] for m in METHODS}
    return write(out, scenes, parts[0]["settings"], sum(d["seconds"] for d in parts), results,
                 False)


def show(summary: dict) -> None:
    keys = list(summary["full"])
    print("metric".ljust(30) + "".join(m.rjust(10) for m in METHODS))
    for k in keys:
        cells = [summary[m][k] for m in METHODS]
        print(k.ljust(30) + "".join((f"{c:10.4f}" if isinstance(c, float) else f"{c!s:>10}")
                                    for c in cells))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--scenes", type=int, default=100)
    p.add_argument("--first", type=int, default=0, help="index of the first scene")
    p.add_argument("--merge", type=Path, nargs="+", default=None,
                   help="join finished parts' JSON files into --out instead of running")
    p.add_argument("--out", type=Path,
                   default=REPO / "bench" / "results" / "toyworld_ablation.json")
    args = p.parse_args()
    if args.merge:
        show(merge(args.merge, args.out))
        return
    torch.set_num_threads(1)
    from tools.toyworld import edits, world
    from tools.toyworld.comfy_env import boot_toy_host

    host = boot_toy_host("lm_toyworld_")
    settings = edits.Settings()
    results = {m: [] for m in METHODS}
    start = time.time()
    scenes = list(range(args.first, args.first + args.scenes))
    for n, i in enumerate(scenes):
        scene = bench_scene(np.random.default_rng(20_000 + i), world)
        memory, latent = edits.background(host, scene.background, 100 + i, settings)
        start_state = (memory, latent, edits.decode(latent))  # the same background for all three
        for m in METHODS:
            results[m].append(run_method(host, m, scene, i, start_state))
        if n % 10 == 9 and n + 1 < len(scenes):
            print(f"{n + 1} scenes {time.time() - start:.0f}s", flush=True)
            write(args.out, scenes[:n + 1], vars(settings), time.time() - start, results, True)
    show(write(args.out, scenes, vars(settings), time.time() - start, results, False))


if __name__ == "__main__":
    main()
