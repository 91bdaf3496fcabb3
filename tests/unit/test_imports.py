"""Issue 20: the support code is one importable package; nothing reaches the pack's modules by a
route no import shows (a `sys.path` edit, a module loaded by its file path)."""
import pkgutil
import re
from pathlib import Path

import layermem_core

REPO = Path(__file__).resolve().parents[2]
SKIP = {".git", ".browser", ".comfyui", ".whl", "node_modules", "__pycache__"}
PATH_EDIT = re.compile(r"sys\.path\s*(\.insert|\.append|\.extend|\[[^\]]*\]\s*=|\s*\+=)")
BY_FILE = re.compile("spec_from" + "_file_location")  # (split: this file is searched too)
# the one sys.path edit: the ComfyUI host itself (comfy_host.use_comfyui); and another
# checkout's core, which bench/edit_memory.py --core loads under a name of its own
ALLOWED = {PATH_EDIT: {"tools/comfy_host.py"}, BY_FILE: {"bench/edit_memory.py"}}


def _sources():
    for path in sorted(REPO.rglob("*.py")):
        rel = path.relative_to(REPO)
        if not SKIP.intersection(rel.parts):
            yield rel.as_posix(), path.read_text(encoding="utf-8")


def test_only_comfy_host_edits_sys_path_and_nothing_loads_modules_by_file():
    found = {pattern: sorted(rel for rel, text in _sources() if pattern.search(text))
             for pattern in ALLOWED}
    for pattern, allowed in ALLOWED.items():
        assert set(found[pattern]) <= allowed, (
            f"{pattern.pattern!r} outside {sorted(allowed)}: {found[pattern]}; import the pack's "
            "support code as a package (`from tools import X`, tools/__init__.py says how)")


def test_core_modules_have_distinct_last_names():
    """comfy_host.boot hands out the core's modules by their last name (host.pixart_mqd)."""
    names = [info.name.rsplit(".", 1)[-1]
             for info in pkgutil.walk_packages(layermem_core.__path__, prefix="layermem_core.")]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)
    assert {"families", "pixart_mqd", "unet_mqd", "flux_mqd", "verb_toolkit", "crop",
            "crop_run", "layer_ops"} <= set(names)
