"""Every template gives the same bytes under each of ComfyUI's cache modes (issue 19).

ComfyUI can run with the classic cache (default), with no cache (`--cache-none`: every node of
every prompt runs again, and nothing is kept between nodes longer than needed) and with an LRU
cache (`--cache-lru N`). A memory is a value passed along edges: whichever mode decides what is
kept, every saved picture and every saved memory file must be the same, byte for byte. One
server per mode runs the templates in build_workflows.RUN_ORDER (continue_scene loads what
layered_scene saves), and the files each run writes are compared with the classic cache's; the
classic cache and --cache-none run each template twice (the re-run writes nothing with the
classic cache, and the same files again with none). LoadLayerMemory's change fingerprint is the
file's sha256, so the prompt ComfyUI writes into each picture is the same on every server.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tools import build_workflows, headless

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.e2e

API_DIR = REPO / "workflows" / "api"
STEPS = 2
MODES = {"classic": [], "none": ["--cache-none"], "lru": ["--cache-lru", "4"]}


def _digests(folder: Path, before: set[Path]) -> dict[str, str]:
    """sha256 of every file written under `folder` since `before`, by relative path with the
    save counter dropped (the second run of a prefix gets _00002_)."""
    out = {}
    for p in sorted(set(folder.rglob("*")) - before):
        if p.is_file():
            stem = p.name.rsplit("_", 2)[0] if p.name.count("_") >= 2 else p.name
            key = f"{p.parent.relative_to(folder)}/{stem}{p.suffix}"
            out.setdefault(key, []).append(hashlib.sha256(p.read_bytes()).hexdigest())
    return out


def _run_templates(server, times: int) -> list[dict[str, list[str]]]:
    """For each template in run order, `times` in a row: the digests of the files each run
    wrote."""
    runs = []
    for name in build_workflows.RUN_ORDER:
        prompt = headless.rewrite_for_random_models(
            headless.load_api_workflow(API_DIR / f"{name}_api.json"), steps=STEPS)[0]
        for _ in range(times):
            before = set(server.output_dir.rglob("*"))
            result = server.run(prompt, timeout=600)
            assert result.ok, f"{name}: {result.describe_error()}"
            runs.append({"template": name, "files": _digests(server.output_dir, before)})
    return runs


@pytest.fixture(scope="module")
def runs(comfy_root, tmp_path_factory) -> dict[str, list]:
    models = tmp_path_factory.mktemp("cache_models")
    found = {}
    for mode, args in MODES.items():
        srv = headless.ComfyServer(tmp_path_factory.mktemp(f"cache_{mode}"), comfy_root=comfy_root,
                                   random_models=True, random_models_cache=models,
                                   extra_args=args)
        try:
            srv.start()
            # a re-run of an unchanged prompt: all cached (classic), all run again (none)
            found[mode] = _run_templates(srv, 1 if mode == "lru" else 2)
        finally:
            srv.stop()
    return found


def _by_template(found: list) -> dict[str, tuple[dict, dict | None]]:
    """template -> (files of its first run, files of its re-run or None)."""
    out: dict[str, list] = {}
    for r in found:
        out.setdefault(r["template"], []).append(r["files"])
    return {name: (runs[0], runs[1] if len(runs) > 1 else None) for name, runs in out.items()}


def test_the_classic_cache_writes_every_file_once(runs):
    for name, (first, again) in _by_template(runs["classic"]).items():
        assert first and any(k.endswith(".png") for k in first), f"{name} wrote no picture"
        assert again == {}, f"{name}: an unchanged prompt wrote {sorted(again)} again"


@pytest.mark.parametrize("mode", ["none", "lru"])
def test_every_template_saves_the_same_bytes_in_every_cache_mode(runs, mode):
    classic, other = _by_template(runs["classic"]), _by_template(runs[mode])
    assert list(other) == list(classic)
    for name, (first, again) in other.items():
        ref = classic[name][0]
        differ = sorted(k for k in first.keys() | ref.keys() if first.get(k) != ref.get(k))
        assert not differ, (f"{name}: these files differ between the classic cache and "
                            f"{' '.join(MODES[mode])}: {differ}")
        if mode == "none":  # it re-runs every node: the same files, the same bytes
            assert again == first, f"{name}: --cache-none re-ran but did not write every file"
