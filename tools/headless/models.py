"""The random test models for a headless server, written once into a cache folder.

tools/random_models.py imports ComfyUI's TAESD modules, so it runs in a child process; the
folder's name carries a hash of that file, so a changed generator writes new models.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

from tools import comfy_host
from tools.comfy_host import REPO

from .errors import HeadlessError

GENERATOR = REPO / "tools" / "random_models.py"
RANDOM_ALPHA = "random_pixart_alpha_512.safetensors"
RANDOM_SIGMA = "random_pixart_sigma_512.safetensors"


def default_cache_dir() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    return Path(cache).expanduser() / "comfyui_layer_memory"


def ensure_random_models(parent: Path, comfy_root: Path, python: str = sys.executable) -> Path:
    """The random test models in `parent/random_models-<hash of random_models.py>/`, written once.

    Files are written into a scratch folder and moved in with os.replace, so runs started at the
    same time never read a half-written file. Returns the models folder (diffusion_models/,
    vae_approx/)."""
    digest = hashlib.sha256(GENERATOR.read_bytes()).hexdigest()[:12]
    folder = parent / f"random_models-{digest}"
    marker = folder / ".complete"
    if marker.exists():
        return folder
    scratch = parent / f".scratch-{uuid.uuid4().hex}"
    try:
        write_random_models(scratch, comfy_root, python)
        for file in sorted(p for p in scratch.rglob("*") if p.is_file()):
            dest = folder / file.relative_to(scratch)
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(file, dest)
        marker.write_text("written by tools/headless\n", encoding="utf-8")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return folder


def write_random_models(models_dir: Path, comfy_root: Path, python: str = sys.executable) -> None:
    """tools/random_models.py in a child process (it imports ComfyUI's TAESD modules)."""
    code = ("import sys; from tools import comfy_host; comfy_host.use_comfyui(sys.argv[1]); "
            "import comfy.options, comfy.cli_args; comfy.cli_args.args.cpu = True; "
            "from tools import random_models; random_models.write_models(sys.argv[2])")
    argv = [python, "-c", code, str(comfy_root), str(models_dir)]
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=str(comfy_root),
                          env=comfy_host.child_env())
    if proc.returncode != 0:
        raise HeadlessError(f"writing the random models failed:\n{proc.stderr[-3000:]}")
