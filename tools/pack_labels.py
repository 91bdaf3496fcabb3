"""The pack's UI strings (layermem_core/labels.py) for tools and tests, without ComfyUI.

`layermem_core` imports no ComfyUI and nothing above it, and `labels` imports nothing, so the
tools import it by its package name (the repository root is importable: see tools/__init__.py);
the pack's `nodes` would import ComfyUI.

    from tools.pack_labels import labels
    labels.OUTPUT_TAG
"""
from __future__ import annotations

from layermem_core import labels

__all__ = ["labels"]
