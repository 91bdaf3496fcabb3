"""The pack's UI strings (layermem_core/labels.py) for tools and tests, without ComfyUI.

The pack's own package name depends on the folder it is cloned into, and importing its
`nodes` would import ComfyUI; labels.py imports nothing, so it is loaded by its path.

    from pack_labels import labels
    labels.OUTPUT_TAG
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

LABELS_FILE = Path(__file__).resolve().parents[1] / "layermem_core" / "labels.py"
MODULE_NAME = "layermem_labels"


def _load() -> ModuleType:
    if MODULE_NAME in sys.modules:
        return sys.modules[MODULE_NAME]
    spec = importlib.util.spec_from_file_location(MODULE_NAME, LABELS_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules[MODULE_NAME] = module
    return module


labels = _load()
