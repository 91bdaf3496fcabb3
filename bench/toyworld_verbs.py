"""What the toy world's oracle reads after the stack's edit verbs (issue 23): three deletions,
a move and a reroll of one middle layer of a scene built with the full method (BCG + MQD).

The scenes, seeds and settings are bench/toyworld_ablation.py's, so each built scene is the
ablation's "full" scene bit for bit. On it, layer 2 (the second object) is:
- deleted three ways: exact undo (regenerate_fraction 0: no sampling), the default heal
  (regenerate 0.4, every value outside the freed region bit-exact) and the paper's deletion
  (regenerate 0.4, the whole picture unblended for the last 0.2);
- moved 16 px (EditLayer with the box shifted right, or left where it would leave the picture);
- rerolled (EditLayer with a new seed).
Read in the freed region: the picture from before the layer was added ("below") or the deleted
object's colour ("ghost"); in the moved or rerolled box: the object; outside the edit's region
(the boxes grown by the heal's 2 latent pixels): bit-exact latent and the oracle's classes.

    COMFYUI_PATH=~/ComfyUI OMP_NUM_THREADS=1 python3 -m bench.toyworld_verbs --scenes 100

The scenes can be split over processes (`--first 50 --scenes 50` runs scenes 50 to 99, seeded
by their index) and the finished parts joined with `--merge a.json b.json --out all.json`.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from bench.toyworld_ablation import DELETE_INDEX, bench_scene, finished_parts

REPO = Path(__file__).resolve().parents[1]
SHIFT = 16  # pixels: two latent cells
HEAL_GROW = 2  # latent pixels: DeleteLayer's default `grow`
DELETIONS = {"exact_undo": (0.0, 0.0), "default_heal": (0.4, 0.0), "paper": (0.4, 0.2)}


def moved_box(box, size: int) -> tuple[int, int, int, int]:
    x0, y0, x1, y1 = box
    dx = SHIFT if x1 + SHIFT <= size else -SHIFT
    return (x0 + dx, y0, x1 + dx, y1)


def latent_keep(boxes, size: int) -> torch.Tensor:
    """[h, w] bool: latent cells outside every box grown by the heal's margin."""
    n = size // 8
    keep = torch.ones(n, n, dtype=torch.bool)
    for x0, y0, x1, y1 in boxes:
        keep[max(0, y0 // 8 - HEAL_GROW):y1 // 8 + HEAL_GROW,
             max(0, x0 // 8 - HEAL_GROW):x1 // 8 + HEAL_GROW] = False
    return keep


def pixel_region(keep: torch.Tensor) -> np.ndarray:
    """Pixel mask of the latent cells NOT kept (the edit's region)."""
    return np.kron((~keep).numpy(), np.ones((8, 8), dtype=bool)).astype(bool)


def outside(before: dict, after: dict, keep: torch.Tensor, pic_before, pic_after) -> dict:
    from tools.toyworld import edits

    a, b = before["samples"][0], after["samples"][0]
    changed, psnr = edits.outside_change(pic_before, pic_after, pixel_region(keep))
    return {"latent_exact": bool(torch.equal(a[:, keep], b[:, keep])),
            "class_changed": changed, "psnr": psnr}


def freed_reading(labels_after, below, freed: np.ndarray, colour: str) -> dict:
    from tools.toyworld import world

    if not freed.any():
        return {"freed_pixels": 0, "matches_below": None, "ghost": None, "ghost_below": None}
    cls = world.colour_class(colour)
    return {"freed_pixels": int(freed.sum()),
            "matches_below": float((labels_after == below)[freed].mean()),
            "ghost": float((labels_after == cls)[freed].mean()),
            # the same colour read in the picture from before the layer: the oracle's floor
            "ghost_below": float((below == cls)[freed].mean())}


def run_scene(host, scene, index: int, settings) -> dict:
    from tools.toyworld import edits, oracle

    node = host.nodes.NODE_CLASS_MAPPINGS["LayerMem_EditLayer"]
    memory, latent = edits.background(host, scene.background, 100 + index, settings)
    pictures, latents = [edits.decode(latent)], [latent]
    for k, obj in enumerate(scene.objects):  # the ablation's "full" build, same seeds
        memory, latent = edits.add_layer(host, memory, obj.phrase, obj.box, 1000 + 10 * index + k)
        pictures.append(edits.decode(latent))
        latents.append(latent)
    top_latent, top_picture = latent, pictures[-1]
    target = scene.objects[DELETE_INDEX - 1]
    later = [o.box for o in scene.objects[DELETE_INDEX:]]
    freed = edits.box_region(target.box)
    for box in later:
        freed &= ~edits.box_region(box)
    below = oracle.labels(pictures[DELETE_INDEX - 1])
    below_latent = latents[DELETE_INDEX - 1]["samples"][0]
    freed_cells = torch.from_numpy(freed[4::8, 4::8].copy())  # latent cells (8 px grid boxes)
    out: dict = {"deletions": {}}
    keep = latent_keep([target.box], settings.size)
    for name, (regen, unblended) in DELETIONS.items():
        new = host.nodes.NODE_CLASS_MAPPINGS["LayerMem_DeleteLayer"].execute(
            memory, _model(), str(DELETE_INDEX), regen, 5000 + index,
            unblended_fraction=unblended)
        after = new.result[1]
        pic = edits.decode(after)
        out["deletions"][name] = {
            **freed_reading(oracle.labels(pic), below, freed, target.colour),
            "freed_latent_equal_below": _equal_share(after["samples"][0], below_latent,
                                                     freed_cells),
            **outside(top_latent, after, keep, top_picture, pic)}
    # move: the layer's box shifted; the old place no longer covered is healed
    new_box = moved_box(target.box, settings.size)
    moved = node.execute(memory, _model(), str(DELETE_INDEX), 6000 + index,
                         mask=edits.box_mask(new_box)).result[1]
    pic = edits.decode(moved)
    uncovered = freed & ~edits.box_region(new_box)
    before_read = oracle.read_picture_box(top_picture, target.box).object
    after_read = oracle.read_picture_box(pic, new_box).object
    out["move"] = {
        **freed_reading(oracle.labels(pic), below, uncovered, target.colour),
        "object_before": before_read, "object_after": after_read,
        "object_right_after": after_read == (target.colour, target.shape),
        "colour_right_after": after_read is not None and after_read[0] == target.colour,
        **outside(top_latent, moved, latent_keep([target.box, new_box], settings.size),
                  top_picture, pic)}
    rerolled = node.execute(memory, _model(), str(DELETE_INDEX), 7000 + index).result[1]
    pic = edits.decode(rerolled)
    read = oracle.read_picture_box(pic, target.box).object
    out["reroll"] = {
        "object_right": read == (target.colour, target.shape),
        "colour_right": read is not None and read[0] == target.colour,
        "object_before_right": before_read == (target.colour, target.shape),
        **outside(top_latent, rerolled, latent_keep([target.box], settings.size), top_picture,
                  pic)}
    return out


def _equal_share(a: torch.Tensor, b: torch.Tensor, cells: torch.Tensor) -> float | None:
    """Share of the latent cells in `cells` whose every channel is bit-equal in a and b."""
    if not cells.any():
        return None
    return float((a == b).all(dim=0)[cells].float().mean())


def _model():
    from tools.toyworld import nodes as toy

    return toy.model()


def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


FREED = ("matches_below", "ghost", "ghost_below")
OUTSIDE = {"latent_exact_outside": "latent_exact", "class_changed_outside": "class_changed"}


def _means(items: list[dict], keys: dict[str, str]) -> dict:
    """{row name: mean of each item's value under its key} (None values left out)."""
    return {name: _mean(x[key] for x in items) for name, key in keys.items()}


def summarise(results: list[dict]) -> dict:
    freed = {k: k for k in FREED}
    rows = {}
    for name in DELETIONS:
        d = [r["deletions"][name] for r in results]
        rows[f"delete {name}"] = {"freed_regions": sum(1 for x in d if x["freed_pixels"]),
                                  **_means(d, {**freed, "freed_latent_equal_below":
                                               "freed_latent_equal_below", **OUTSIDE})}
    m = [r["move"] for r in results]
    rows["move"] = {"freed_regions": sum(1 for x in m if x["freed_pixels"]),
                    **_means(m, {**freed, "object_right_after": "object_right_after",
                                 "colour_right_after": "colour_right_after", **OUTSIDE})}
    rows["reroll"] = _means([r["reroll"] for r in results],
                            {"object_right": "object_right", "colour_right": "colour_right",
                             "object_right_before": "object_before_right", **OUTSIDE})
    return rows


def write(path: Path, scenes: list[int], seconds: float, results: list[dict],
          partial: bool) -> dict:
    summary = summarise(results)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"scenes": len(scenes), "first": scenes[0], "last": scenes[-1],
                                "seconds": seconds, "partial": partial, "summary": summary,
                                "results": results}, indent=1))
    return summary


def merge(paths: list[Path], out: Path) -> dict:
    """Join finished parts (`--first` runs over consecutive scenes) into one file, as one run
    over all their scenes would have written it (seconds: the parts' sum)."""
    parts, scenes = finished_parts(paths)
    return write(out, scenes, sum(d["seconds"] for d in parts),
                 [r for d in parts for r in d["results"]], False)


def show(summary: dict) -> None:
    for row, values in summary.items():
        print(row.ljust(22) + "  ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                                        for k, v in values.items()))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--scenes", type=int, default=100)
    p.add_argument("--first", type=int, default=0, help="index of the first scene")
    p.add_argument("--merge", type=Path, nargs="+", default=None,
                   help="join finished parts' JSON files into --out instead of running")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "toyworld_verbs.json")
    args = p.parse_args()
    if args.merge:
        show(merge(args.merge, args.out))
        return
    torch.set_num_threads(1)
    from tools.toyworld import edits, world
    from tools.toyworld.comfy_env import boot_toy_host

    host = boot_toy_host("lm_toyworld_verbs_")
    settings = edits.Settings()
    start = time.time()
    scenes = list(range(args.first, args.first + args.scenes))
    results = []
    for n, i in enumerate(scenes):
        results.append(run_scene(host, bench_scene(np.random.default_rng(20_000 + i), world), i,
                                 settings))
        if n % 10 == 9 and n + 1 < len(scenes):
            print(f"{n + 1} scenes {time.time() - start:.0f}s", flush=True)
            write(args.out, scenes[:n + 1], time.time() - start, results, True)
    show(write(args.out, scenes, time.time() - start, results, False))


if __name__ == "__main__":
    main()
