"""The printed table of a benchmark result (the JSON holds every sample)."""

from __future__ import annotations


def _ms(entry: dict | None, key: str = "median_s") -> str:
    return "-" if entry is None else f"{entry[key] * 1e3:9.1f}"


def _timing_rows(m: dict) -> list[str]:
    e = m["edits"]
    lines = [
        f"{'operation (interleaved rounds, medians)':52s} {'wall ms':>9s} {'cpu ms':>9s} "
        f"{'gpu ms':>9s} runs"
    ]
    for name, entry in e.items():
        label = name
        if name.startswith("add_layer_"):
            label = f"AddLayer, {name[10:]} layer(s) in memory ({entry['mqd_groups']} MQD groups)"
        elif name == "delete_layer":
            label = (
                f"DeleteLayer (layer {entry['layer_index']} of {entry['layers_in_memory']}, "
                f"fraction {entry['regenerate_fraction']})"
            )
        lines.append(
            f"{label:52s} {_ms(entry)} {_ms(entry['cpu'])} {_ms(entry.get('gpu'))} "
            f"{entry['runs']:4d}"
        )
        for part, p in entry.get("parts", {}).items():
            lines.append(f"{'  ' + part:52s} {_ms(p)}")
    f = m["forward"]
    for name in ("stock", "mqd"):
        lines.append(
            f"{'DiT forward, CFG batch 2, ' + name + ' (' + f['timer'] + ')':52s} "
            f"{_ms(f[name])} {_ms(f[name]['cpu'])}"
        )
    return lines


def _count_rows(counts: dict) -> list[str]:
    lines = [
        "",
        f"{'op counts and FLOPs (one run each)':52s} {'ops':>9s} {'kernels':>9s} {'GFLOP':>11s}",
    ]
    for name, c in counts.items():
        if isinstance(c, dict) and "ops" in c:
            lines.append(f"{name:52s} {c['ops']:9d} {c['kernel_ops']:9d} {c['flops'] / 1e9:11.1f}")
    for name, r in counts["ratios"].items():
        flops = "-" if r["flops"] is None else f"{r['flops']:.3f}"
        lines.append(f"{'  ' + name:52s} {r['ops']:9.3f} {r['kernel_ops']:9.3f} {flops:>11s}")
    return lines


def _compile_rows(c: dict) -> list[str]:
    lines = ["", f"compile section (TorchCompileModel, backend {c['backend']})"]
    for name, first in c["first_call_s"].items():
        lines.append(
            f"{'  ' + name + ': first call (compile) / median':52s} {first * 1e3:9.1f} "
            f"{_ms(c[name])}"
        )
    lines.append(
        f"{'  graphs / breaks / re-traces on a second edit':52s} "
        f"{c['graphs_after_first_calls']:9d} {c['graph_breaks']:9d} "
        f"{c['retraces_second_edit']:9d}"
    )
    return lines


def table(result: dict) -> str:
    m, c, env = result["measurements"], result["config"], result["environment"]
    lines = [
        f"device: {env['device']}   torch {env['torch']}   ComfyUI {env['comfyui']['version']}"
        f"   pack {env['pack_commit']}",
        f"config: {c['size']}px, {c['steps']} steps {c['sampler']}/{c['scheduler']}, cfg "
        f"{c['cfg']}, depth {c['depth']}, {c['checkpoint_dtype']}, {c['tokens']} tokens/prompt,"
        f" {c['repeats']} rounds, CFG batch seen {m['cfg_batch_sizes_seen']}",
        "",
    ]
    lines += _timing_rows(m)
    if "counts" in m:
        lines += _count_rows(m["counts"])
    if "compile" in m:
        lines += _compile_rows(m["compile"])
    lines += ["", f"{'ratio':52s} {'value':>11s}  target"]
    for v in result["targets"].values():
        value = "n/a" if v["value"] is None else f"{v['value']:.3f}"
        verdict = {True: "MET", False: "MISSED", None: "(not judged here)"}[v["met"]]
        lines.append(f"{v['description'][:52]:52s} {value:>11s}  {v['target']:8s} {verdict}")
    for key, v in result["ratios"].items():
        if key not in result["targets"] and isinstance(v, float):
            lines.append(f"{key:52s} {v:11.3f}  (reported)")
    return "\n".join(lines)
