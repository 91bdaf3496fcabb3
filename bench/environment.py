"""Where a result came from: device, torch, ComfyUI and pack commits."""

from __future__ import annotations

import os
import platform
import re
import subprocess
from pathlib import Path

import torch


def _git(path: Path, *args: str) -> str | None:
    proc = subprocess.run(
        ["git", "-C", str(path), *args], capture_output=True, text=True, timeout=30
    )
    return proc.stdout.strip() if proc.returncode == 0 else None


def git_commit(path: Path) -> str | None:
    """HEAD of the checkout rooted at `path` (not of one it sits in), '+dirty' if changed."""
    try:
        top = _git(path, "rev-parse", "--show-toplevel")
        if top is None or Path(top).resolve() != Path(path).resolve():
            return None
        sha = _git(path, "rev-parse", "HEAD")
        dirty = _git(path, "status", "--porcelain", "--untracked-files=no")
        return None if sha is None else sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def comfyui_version(root: Path) -> dict:
    vfile = root / "comfyui_version.py"
    m = (
        re.search(r"__version__\s*=\s*['\"]([^'\"]+)", vfile.read_text())
        if vfile.is_file()
        else None
    )
    return {
        "path": str(root),
        "version": m.group(1) if m else None,
        "commit": git_commit(root) or os.environ.get("COMFYUI_COMMIT"),
    }


def device_name(device: str) -> str:
    if device == "cuda":
        return torch.cuda.get_device_name(0)
    cpu = platform.processor() or platform.machine()
    return f"CPU {cpu} ({torch.get_num_threads()} torch threads)"


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower() or "device"


def describe(device: str, comfy_root: Path, repo: Path, pack_commit: str | None) -> dict:
    return {
        "device": device_name(device),
        "torch": torch.__version__,
        "cuda": torch.version.cuda if device == "cuda" else None,
        "python": platform.python_version(),
        "comfyui": comfyui_version(comfy_root),
        "pack_commit": git_commit(repo) or pack_commit or "unknown",
        "torch_threads": torch.get_num_threads(),
        "attention": attention_name(),
    }


def attention_name() -> str | None:
    """The attention function ComfyUI's models call (torch SDPA is what CUDA runs)."""
    import sys

    module = sys.modules.get("comfy.ldm.modules.attention")
    fn = getattr(module, "optimized_attention", None)
    return None if fn is None else f"comfy.ldm.modules.attention.{fn.__name__}"
