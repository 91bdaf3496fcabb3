"""The printed table of a benchmark result, one family column (the JSON holds every sample)."""

from __future__ import annotations

W = 52  # label width


def _ms(entry: dict | None, key: str = "median_s") -> str:
    return "        -" if entry is None else f"{entry[key] * 1e3:9.1f}"


def _label(name: str, entry: dict) -> str:
    if name.startswith("add_layer_"):
        return f"AddLayer, {name[10:]} layer(s) in memory ({entry['mqd_groups']} MQD groups)"
    if name == "delete_layer":
        return (
            f"DeleteLayer (layer {entry['layer_index']} of {entry['layers_in_memory']}, "
            f"fraction {entry['regenerate_fraction']})"
        )
    return name


def _timing_rows(fam: str, m: dict) -> list[str]:
    lines = []
    for name, entry in m["edits"].items():
        lines.append(
            f"{fam:7s}{_label(name, entry):{W}s} {_ms(entry)} {_ms(entry['cpu'])} "
            f"{_ms(entry.get('gpu'))} {entry['runs']:4d}"
        )
        for part, p in entry.get("parts", {}).items():
            lines.append(f"{fam:7s}{'  ' + part:{W}s} {_ms(p)}")
    f = m["forward"]
    model = "DiT" if fam == "pixart" else "UNet"
    for name in ("stock", "mqd"):
        label = f"{model} forward, CFG batch 2, {name} ({f['timer']})"
        lines.append(f"{fam:7s}{label:{W}s} {_ms(f[name])} {_ms(f[name]['cpu'])}")
    return lines


def _count_rows(fam: str, counts: dict) -> list[str]:
    composed = "composed" in counts["ratios"]
    lines = []
    for name, c in counts.items():
        if isinstance(c, dict) and "model_calls" in c:
            c = dict(c["composed"], label=f"{name} ({c['model_calls']} calls)")
        if isinstance(c, dict) and "ops" in c:
            label = c.get("label", name)
            lines.append(
                f"{fam:7s}{label:{W}s} {c['ops']:9d} {c['kernel_ops']:9d} {c['flops'] / 1e9:11.1f}"
            )
    ratios = counts["ratios"]["composed"] if composed else counts["ratios"]
    for name, r in ratios.items():
        flops = "-" if r["flops"] is None else f"{r['flops']:.3f}"
        lines.append(
            f"{fam:7s}{'  ' + name:{W}s} {r['ops']:9.3f} {r['kernel_ops']:9.3f} {flops:>11s}"
        )
    if composed:
        for name, c in counts["full_unet_per_call"].items():
            if isinstance(c, dict):
                label = f"  one full-UNet call, {name}"
                lines.append(
                    f"{fam:7s}{label:{W}s} {c['ops']:9d} {c['kernel_ops']:9d} "
                    f"{c['flops'] / 1e9:11.1f}"
                )
        ok = "equal" if counts["meta_check"]["equal"] else "DIFFER"
        lines.append(
            f"{fam:7s}  composed: full UNet at {counts['full_size']} px (meta) x "
            f"{counts['steps']} steps + the rest of a small-UNet run; meta vs real counts: {ok}"
        )
    return lines


def _compile_rows(c: dict) -> list[str]:
    lines = ["", f"compile section, pixart (TorchCompileModel, backend {c['backend']})"]
    for name, first in c["first_call_s"].items():
        lines.append(
            f"{'  ' + name + ': first call (compile) / median':{W}s} {first * 1e3:9.1f} "
            f"{_ms(c[name])}"
        )
    lines.append(
        f"{'  graphs / breaks / re-traces on a second edit':{W}s} "
        f"{c['graphs_after_first_calls']:9d} {c['graph_breaks']:9d} "
        f"{c['retraces_second_edit']:9d}"
    )
    return lines


def _ratio_rows(fam: str, result: dict) -> list[str]:
    lines = []
    for v in result["targets"][fam].values():
        value = "n/a" if v["value"] is None else f"{v['value']:.3f}"
        verdict = {True: "MET", False: "MISSED", None: "(not judged here)"}[v["met"]]
        text = v["description"][:W]
        lines.append(f"{fam:7s}{text:{W}s} {value:>11s}  {v['target']:8s} {verdict}")
    for key, v in result["ratios"][fam].items():
        if key not in result["targets"][fam] and isinstance(v, float):
            lines.append(f"{fam:7s}{key:{W}s} {v:11.3f}  (reported)")
    return lines


def _header(result: dict) -> list[str]:
    m, c, env = result["measurements"], result["config"], result["environment"]
    lines = [
        f"device: {env['device']}   torch {env['torch']}   ComfyUI {env['comfyui']['version']}"
        f"   pack {env['pack_commit']}",
        f"config: {c['steps']} steps {c['sampler']}/{c['scheduler']}, cfg {c['cfg']}, "
        f"{c['checkpoint_dtype']}, {c['repeats']} interleaved rounds",
    ]
    for fam, model in result["models"].items():
        size = c["size"] if fam == "pixart" else c["sdxl_size"]
        lines.append(
            f"  {fam}: {model['architecture']}, {size}px, CFG batch seen "
            f"{m[fam]['cfg_batch_sizes_seen']}"
        )
    return lines


def table(result: dict) -> str:
    m = result["measurements"]
    lines = _header(result) + [
        "",
        f"{'family':7s}{'operation (interleaved rounds, medians)':{W}s} {'wall ms':>9s} "
        f"{'cpu ms':>9s} {'gpu ms':>9s} runs",
    ]
    for fam in m:
        lines += _timing_rows(fam, m[fam])
    if any("counts" in mf for mf in m.values()):
        lines += ["", f"{'family':7s}{'op counts and FLOPs (one run each)':{W}s} {'ops':>9s} "
                  f"{'kernels':>9s} {'GFLOP':>11s}"]
        for fam in m:
            if "counts" in m[fam]:
                lines += _count_rows(fam, m[fam]["counts"])
    if "compile" in m.get("pixart", {}):
        lines += _compile_rows(m["pixart"]["compile"])
    lines += ["", f"{'family':7s}{'ratio':{W}s} {'value':>11s}  target"]
    for fam in m:
        lines += _ratio_rows(fam, result)
    return "\n".join(lines)
