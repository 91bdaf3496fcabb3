"""The server's --base-directory: links to this pack (and the test text encoder) and model paths.

Nothing is written into the ComfyUI checkout: custom_nodes/, input/, temp/, user/ and the
extra_model_paths.yaml that points ComfyUI at the models all live in the base directory.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from tools.comfy_host import PACK_NAME, REPO

from .errors import HeadlessError

# the test-only stand-in for T5-XXL, a custom node folder of its own (never part of the pack)
TEST_NODES_DIR = REPO / "tools" / "random_text_encoder"
TEST_NODES_NAME = "layermem_test_nodes"
TEST_ENCODER = "LayerMemTestEncode"
# the toy world's test-only nodes (tools/toyworld/nodes.py), a custom node folder of their own
TOY_NODES_DIR = REPO / "tools" / "toyworld" / "custom_node"
TOY_NODES_NAME = "layermem_toyworld_nodes"
TOY_LOADER = "LayerMemToyWorldLoader"
# model folders mapped from the user's models directory in real-model runs (folder -> subfolders)
MODEL_FOLDERS = {"checkpoints": ["checkpoints"], "diffusion_models": ["diffusion_models", "unet"],
                 "text_encoders": ["text_encoders", "clip"], "vae": ["vae"],
                 "vae_approx": ["vae_approx"], "loras": ["loras"], "embeddings": ["embeddings"],
                 "controlnet": ["controlnet"], "clip_vision": ["clip_vision"],
                 "upscale_models": ["upscale_models"]}
# pictures the example workflows load (LoadImage), copied into the server's input folder
EXAMPLE_INPUTS = REPO / "example_inputs"
RANDOM_MODEL_FOLDERS = {"diffusion_models": ["diffusion_models"], "vae_approx": ["vae_approx"]}


def link(target: Path, link_path: Path) -> None:
    """`link_path` -> `target` (a folder); a copy where symlinks are not allowed."""
    if link_path.is_symlink() or link_path.exists():
        if link_path.resolve() == target.resolve():
            return
        if not link_path.is_symlink():
            raise HeadlessError(f"{link_path} exists and is not a link to {target}")
        link_path.unlink()
    try:
        link_path.symlink_to(target, target_is_directory=True)
    except OSError:  # e.g. Windows without symlink rights: a copy does the same for one run
        shutil.copytree(target, link_path, ignore=shutil.ignore_patterns("__pycache__", ".git"))


def prepare(base: Path, output_dir: Path, with_test_nodes: bool,
            with_toy_nodes: bool = False) -> None:
    """The folders ComfyUI writes to, and custom_nodes/ with only this pack (and the test nodes,
    the toy world's nodes)."""
    for sub in ("custom_nodes", "input", "temp", "user", "models"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    output_dir.mkdir(parents=True, exist_ok=True)
    link(REPO, base / "custom_nodes" / PACK_NAME)
    for picture in sorted(EXAMPLE_INPUTS.glob("*.*")):
        if not (base / "input" / picture.name).exists():
            shutil.copyfile(picture, base / "input" / picture.name)
    if with_test_nodes:
        link(TEST_NODES_DIR, base / "custom_nodes" / TEST_NODES_NAME)
    if with_toy_nodes:
        link(TOY_NODES_DIR, base / "custom_nodes" / TOY_NODES_NAME)


def write_model_paths(base: Path, models: Path, folders: dict[str, list[str]]) -> Path:
    """base/extra_model_paths.yaml mapping ComfyUI's model folders into `models`."""
    lines = ["layer_memory_headless:", f"  base_path: {json.dumps(str(models))}"]
    for folder, subs in folders.items():
        lines.append(f"  {folder}: {json.dumps(chr(10).join(subs))}")
    path = base / "extra_model_paths.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
