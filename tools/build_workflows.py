"""Writes the example workflows in both of ComfyUI's formats from one description.

    python3 -m tools.build_workflows          # (re)write the workflows/ files
    python3 -m tools.build_workflows --check  # exit 1 if a file differs from what this writes

Every workflow comes from here, the SDXL one included. `workflows/<n>_<name>.json` is the UI
format (drag it onto the canvas, or open it from Workflow > Browse Templates);
`workflows/api/<name>_api.json` is the API format a pipeline posts to `/prompt`. What the graphs
hold: tools/example_workflows.py and tools/picture_workflow.py, their notes:
tools/workflow_notes/, the serializer: tools/workflow_graph.py, the node types:
tools/workflow_nodes.py. tests/e2e/test_workflows_valid.py checks the files against the real
ComfyUI and this pack, and that this script reproduces them.

Why `workflows/api/`: ComfyUI lists every `*.json` directly inside a pack's `workflows/` (or
`example_workflows/`) folder as a template and hands it to the frontend's graph loader, which
cannot read the API format; one folder deeper it is not listed.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tools.example_workflows import GRAPHS, RUN_ORDER, UI_NAMES

REPO = Path(__file__).resolve().parents[1]
WORKFLOWS = REPO / "workflows"
WORKFLOW_IDS = {"layered_scene": "5f0c6b52-7a1e-4c1e-9a53-1a7e2c0d4b11",
                "continue_scene": "9b3e2d41-5c6f-4a8e-b1d7-2f4a6c8e0d23",
                "edit_picture": "3c8f1a27-6d4e-4b9a-8e15-7a2b9c4d6e31",
                "sdxl_layered_scene": "0b6d7a4e-2c1f-5e8a-9d3b-4f6a8c2e1d57",
                "flux_layered_scene": "7e2a9c14-3b5d-4f6e-8a1c-5d7b9e3f2a68",
                "sd35_layered_scene": "4a9d2e6b-8c3f-4b7a-9e5d-1f6c8a2b3d79",
                "sd15_layered_scene": "c2e7a95d-1b4f-4d8e-a6c3-8f9b2d5e7a14"}
__all__ = ["RUN_ORDER", "UI_NAMES", "outputs", "ui_path", "api_path", "main"]


def ui_path(name: str) -> Path:
    return WORKFLOWS / f"{UI_NAMES[name]}.json"


def api_path(name: str) -> Path:
    return WORKFLOWS / "api" / f"{name}_api.json"


def _dump(data: dict) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def outputs() -> dict[Path, str]:
    """Every file this script writes, with its text."""
    files = {}
    for name, make in GRAPHS.items():
        g = make()
        files[ui_path(name)] = _dump(g.ui(WORKFLOW_IDS[name]))
        files[api_path(name)] = _dump(g.api())
    return files


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--check", action="store_true",
                   help="only compare; exit 1 when a file is missing or differs")
    args = p.parse_args(argv)
    written = outputs()
    extra = sorted({*WORKFLOWS.glob("*.json"), *(WORKFLOWS / "api").glob("*.json")} - set(written))
    for path in extra:  # a workflow this script no longer writes (renamed or removed)
        if not args.check:
            path.unlink()
            print(f"removed {path.relative_to(REPO)}")
    stale = list(extra) if args.check else []
    for path, text in written.items():
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == text:
            continue
        stale.append(path)
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path.relative_to(REPO)}")
    if args.check and stale:
        names = ", ".join(str(p.relative_to(REPO)) for p in stale)
        print(f"out of date or not written by this script: {names} "
              "(run python3 -m tools.build_workflows)")
        return 1
    if not stale:
        print("workflows are up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
