"""API-format workflow files: telling them from UI-format files, and reading them."""
from __future__ import annotations

import json
import os
from pathlib import Path

from .errors import HeadlessError


def is_ui_format(workflow: dict) -> bool:
    return isinstance(workflow.get("nodes"), list) and "links" in workflow


def is_link(value) -> bool:
    """An API-format input fed by another node: [node id, output index]."""
    return (isinstance(value, list) and len(value) == 2 and isinstance(value[0], str)
            and isinstance(value[1], int))


def load_api_workflow(path: str | os.PathLike) -> dict:
    """The prompt of an API-format file (or of a saved /prompt body); refuses a UI-format file."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if is_ui_format(data):
        raise HeadlessError(f"{path} is in ComfyUI's UI format; this needs the API format (in "
                            "ComfyUI: Workflow > Export (API), or use workflows/api/*_api.json)")
    if "prompt" in data and isinstance(data["prompt"], dict) and "class_type" not in data["prompt"]:
        data = data["prompt"]  # a saved /prompt body
    bad = [k for k, v in data.items() if not (isinstance(v, dict) and "class_type" in v)]
    if bad:
        raise HeadlessError(f"{path} is not an API-format workflow "
                            f"(entries without class_type: {bad[:5]})")
    return data
