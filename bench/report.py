"""Ratios, verdicts and the printed table of a benchmark result."""

from __future__ import annotations

from .config import COUNT_TARGETS, TARGETS
from .timing import median


def _cpu(entry: dict) -> float:
    return median(entry["cpu"])


def ratios(m: dict, top: int) -> dict:
    e = m["edits"]
    txt, add = e["txt2img"], e[f"add_layer_{top}"]
    growth = m.get("memory_growth", {})  # PixArt only
    out = {
        "addlayer5_over_txt2img": median(add) / median(txt),
        "addlayer5_over_txt2img_cpu": _cpu(add) / _cpu(txt),
        "bcg_edit_over_lb_edit": median(e["bcg_edit"]) / median(e["lb_edit"]),
        "bcg_sample_over_lb_sample": median(e["bcg_edit"]["parts"]["patch_and_sample"])
        / median(e["lb_edit"]["parts"]["sample"]),
        "delete_over_addlayer5": median(e["delete_layer"]) / median(add),
        "delete_over_addlayer5_cpu": _cpu(e["delete_layer"]) / _cpu(add),
        "mqd_forward_overhead_pct": 100.0
        * (median(m["forward"]["mqd"]) / median(m["forward"]["stock"]) - 1.0),
        "ram_mb_per_layer": growth.get("nbytes_per_layer_mb"),
        "rss_mb_per_layer": growth.get("rss_per_layer_mb"),
        "vram_growth_pct": growth.get("vram_peak_growth_pct"),
        "addlayer_top_layers_in_memory": top,
    }
    if "gpu" in add:
        out["addlayer5_over_txt2img_gpu"] = median(add["gpu"]) / median(txt["gpu"])
    for key in e:
        if key.startswith("add_layer_"):
            out[f"addlayer{key[10:]}_over_txt2img"] = median(e[key]) / median(txt)
    if "compile" in m:
        c = m["compile"]
        out["compiled_addlayer_over_compiled_txt2img"] = median(c[f"add_layer_{top}"]) / median(
            c["txt2img"]
        )
        out["compiled_txt2img_over_eager"] = median(c["txt2img"]) / median(txt)
    return out


def _verdict(value, op: str, limit: float, judged: bool):
    if value is None or not judged:
        return None
    return value <= limit if op == "<=" else value < limit


def count_ratios(counts: dict) -> dict:
    """The counted ratios the targets judge: PixArt's counted end to end, SDXL's composed."""
    top = counts["layers_in_memory"]
    ratio = counts["ratios"].get("composed", counts["ratios"])
    return {
        "ops": ratio[f"add_layer_{top}_over_txt2img"]["ops"],
        "flops": ratio[f"add_layer_{top}_over_txt2img"]["flops"],
        "delete_flops": ratio[f"delete_over_add_layer_{top}"]["flops"],
    }


def judge(
    r: dict, counts: dict | None, gpu_config: bool, count_config: bool, skip: tuple = ()
) -> dict:
    """Targets with their values; `met` is None where this run's configuration is not theirs."""
    out = {
        k: {
            "target": f"{op} {lim}",
            "description": text,
            "value": r.get(k),
            "met": _verdict(r.get(k), op, lim, gpu_config),
        }
        for k, (op, lim, text) in TARGETS.items()
        if k not in skip
    }
    if counts:
        values = count_ratios(counts)
        composed = " (composed)" if "composed" in counts["ratios"] else ""
        for k, (op, lim, text) in COUNT_TARGETS.items():
            out[f"count_{k}"] = {
                "target": f"{op} {lim}",
                "description": text + composed,
                "value": values[k],
                "met": _verdict(values[k], op, lim, count_config),
            }
    return out
