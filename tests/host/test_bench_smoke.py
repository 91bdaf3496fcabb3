"""Issue 4: the benchmark script runs end to end (CPU-sized) and writes every section. No timing assertions.

It runs in a subprocess: the script boots ComfyUI in-process itself, and a second boot inside the
test session's process (which may already host one) is not something ComfyUI supports.
"""
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.host

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "bench" / "run_bench.py"


def _timing(entry):
    assert set(entry) >= {"median_s", "min_s", "max_s", "runs", "samples_s"}
    assert entry["runs"] == len(entry["samples_s"]) >= 1
    assert all(math.isfinite(s) and s > 0 for s in entry["samples_s"])


@pytest.fixture(scope="module")
def smoke(comfy_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "smoke.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--cpu-smoke", "--comfyui", str(comfy_root), "--out", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, (f"run_bench.py --cpu-smoke failed ({proc.returncode}):\n"
                                  f"{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}")
    assert out.is_file(), proc.stdout[-4000:]
    return json.loads(out.read_text()), proc.stdout


def test_writes_every_section(smoke):
    result, _ = smoke
    assert result["kind"] == "cpu-smoke"
    env = result["environment"]
    assert env["device"].startswith("CPU") and env["torch"] and env["pack_commit"] and env["comfyui"]["version"]
    cfg = result["config"]
    assert cfg["size"] == 512 and cfg["depth"] == 1 and cfg["batch"] == 1
    m = result["measurements"]
    for key in ("txt2img", "start_memory", "bcg_edit", "lb_edit", "delete_layer"):
        _timing(m[key])
    assert set(m["add_layer"]) == {str(n) for n in cfg["layers_in_memory"]}
    for entry in m["add_layer"].values():
        _timing(entry)
        assert entry["mqd_groups"] >= 2
    assert set(m["bcg_edit"]["parts"]) == {"patch_and_sample", "vae_decode"}
    assert set(m["lb_edit"]["parts"]) == {"vae_encode", "sample", "vae_decode"}
    for part in list(m["bcg_edit"]["parts"].values()) + list(m["lb_edit"]["parts"].values()):
        _timing(part)
    assert m["cfg_batch_sizes_seen"] == [2], "cond and uncond should run as one CFG batch of 2"
    dl = m["delete_layer"]
    assert dl["regenerate_fraction"] == 0.4 and 0 < dl["layer_index"] < dl["layers_in_memory"] - 1
    fwd = m["forward"]
    _timing(fwd["stock"])
    _timing(fwd["mqd"])
    assert fwd["batch"] == 2 and 2 <= fwd["groups"] <= max(cfg["layers_in_memory"]) + 1
    growth = m["memory_growth"]
    assert growth["layers_added"] == cfg["chain"] and len(growth["rows"]) == cfg["chain"] + 1
    nbytes = [row["memory_nbytes"] for row in growth["rows"]]
    assert nbytes == sorted(nbytes) and nbytes[-1] > nbytes[0]
    assert all(row["rss_mb"] > 0 for row in growth["rows"])
    # what a layer holds matches what the trajectory of its run should take
    assert growth["nbytes_per_layer_mb"] * 1e6 == pytest.approx(growth["expected_bytes_per_layer"], rel=0.02)
    saved = growth["saved_bytes"]
    assert saved["layers"] == min(5, cfg["chain"] + 1)
    assert nbytes[saved["layers"] - 1] < saved["float32"] < nbytes[saved["layers"] - 1] + 64 * 1024, \
        "the file is the memory's tensors plus a JSON header"
    assert saved["float16"] < saved["float32"]


def test_ratios_and_targets(smoke):
    result, stdout = smoke
    r = result["ratios"]
    for key in ("addlayer5_over_txt2img", "bcg_edit_over_lb_edit", "delete_over_addlayer5", "mqd_forward_overhead_pct",
                "ram_mb_per_layer", "bcg_sample_over_lb_sample", "rss_mb_per_layer"):
        assert isinstance(r[key], float) and math.isfinite(r[key]), key
    assert r["vram_growth_pct"] is None  # no CUDA on the smoke run
    targets = result["targets"]
    assert set(targets) == {"addlayer5_over_txt2img", "bcg_edit_over_lb_edit", "delete_over_addlayer5", "ram_mb_per_layer",
                            "vram_growth_pct"}
    assert all(t["met"] is None for t in targets.values()), "a CPU smoke run must not judge the GPU targets"
    assert "AddLayer(" in stdout and "MQD forward overhead" in stdout and "JSON:" in stdout
