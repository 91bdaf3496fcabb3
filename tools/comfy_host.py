"""Find and boot the real ComfyUI host for tests, in-process, on the CPU.

The host is looked up at $COMFYUI_PATH, then ~/ComfyUI, then as the parent of the
`custom_nodes/` folder this pack sits in. Nothing of ComfyUI is stubbed.
"""
from __future__ import annotations

import asyncio
import importlib
import os
import pkgutil
import sys
from pathlib import Path
from types import SimpleNamespace

REPO = Path(__file__).resolve().parents[1]
PACK_NAME = "comfyui_layer_memory"
HOW_TO_GET_IT = ("ComfyUI host not found: set COMFYUI_PATH to a ComfyUI checkout (or put one at "
                 "~/ComfyUI, or install this pack in ComfyUI/custom_nodes/) and install its "
                 "requirements; see README 'Tests'.")
_BOOTED: list[SimpleNamespace] = []  # the host boot() made in this process, once made
MODEL_FOLDERS = ("diffusion_models", "vae_approx", "vae", "text_encoders", "checkpoints")


def is_comfyui(path: Path) -> bool:
    """A ComfyUI checkout new enough to have PixArt."""
    pixart = path / "comfy" / "ldm" / "pixart" / "pixartms.py"
    return pixart.is_file() and (path / "main.py").is_file()


def comfyui_candidates(*explicit: str | os.PathLike | None) -> list[Path]:
    """Where ComfyUI is looked for, in order: explicit paths, $COMFYUI_PATH, ~/ComfyUI, the
    parent of custom_nodes/."""
    candidates = [Path(e).expanduser() for e in explicit if e]
    if os.environ.get("COMFYUI_PATH"):
        candidates.append(Path(os.environ["COMFYUI_PATH"]).expanduser())
    candidates.append(Path("~/ComfyUI").expanduser())
    if REPO.parent.name == "custom_nodes":
        candidates.append(REPO.parent.parent)
    return candidates


def find_comfyui(*explicit: str | os.PathLike | None) -> Path | None:
    return next((c.resolve() for c in comfyui_candidates(*explicit) if is_comfyui(c)), None)


def use_comfyui(comfy_root: Path) -> None:
    """Put the ComfyUI host first on `sys.path`: the one `sys.path` edit of the pack's tools.

    First, not only present: the repository root is importable too (pytest.ini's `pythonpath`,
    `python3 -m` from the root), and its `nodes/` package must not hide ComfyUI's `nodes`."""
    root = str(comfy_root)
    if sys.path[:1] != [root]:
        while root in sys.path:
            sys.path.remove(root)
        sys.path.insert(0, root)
    loaded = sys.modules.get("nodes")
    if loaded is not None and Path(getattr(loaded, "__file__", "") or "").parent == REPO / "nodes":
        raise RuntimeError("the pack's nodes/ package was imported as `nodes` before ComfyUI's; "
                           "boot ComfyUI first")


def child_env(env: dict | None = None) -> dict:
    """`env` (default: this process's) for a child Python that imports the pack's tools
    (`from tools import random_models`): the repository root first on PYTHONPATH."""
    env = dict(os.environ if env is None else env)
    rest = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != str(REPO)]
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *rest])
    return env


def core_modules(package) -> dict:
    """Every module of the pack's `layermem_core` as ComfyUI loaded it (`package`), by the last
    part of its name: `families.pixart_mqd` is `pixart_mqd`, the `families` package `families`.
    Walked, not listed: a module added to the core is there without an edit here."""
    modules = {package.__name__.rsplit(".", 1)[-1]: package}
    for info in pkgutil.walk_packages(package.__path__, prefix=package.__name__ + "."):
        short = info.name.rsplit(".", 1)[-1]
        if short in modules:
            raise RuntimeError(f"two core modules are named {short!r}; rename one (the host "
                               "hands out the core's modules by their last name)")
        modules[short] = importlib.import_module(info.name)
    return modules


def _use_folders(folder_paths, models_dir: Path) -> None:
    """ComfyUI reads models from `models_dir` and writes output/input/temp beside it."""
    for folder in MODEL_FOLDERS:
        path = models_dir / folder
        path.mkdir(parents=True, exist_ok=True)
        folder_paths.add_model_folder_path(folder, str(path), is_default=True)
    for sub in ("output", "input", "temp"):
        (models_dir.parent / sub).mkdir(parents=True, exist_ok=True)
    folder_paths.set_output_directory(str(models_dir.parent / "output"))
    folder_paths.set_input_directory(str(models_dir.parent / "input"))
    folder_paths.set_temp_directory(str(models_dir.parent / "temp"))


def _load_pack(nodes, custom_nodes_dir: Path) -> str:
    """Load this pack with ComfyUI's own custom-node loader; returns its module name."""
    link = custom_nodes_dir / PACK_NAME
    if not link.exists():
        link.symlink_to(REPO, target_is_directory=True)
    asyncio.run(nodes.init_extra_nodes(init_custom_nodes=False, init_api_nodes=False))
    ok = asyncio.run(nodes.load_custom_node(str(link), module_parent="custom_nodes"))
    if not ok:
        raise RuntimeError("ComfyUI failed to load the pack; see the log above")
    return str(link).replace(".", "_x_")


def boot(comfy_root: Path, models_dir: Path, custom_nodes_dir: Path,
         cpu: bool = True, pytorch_attention: bool = False) -> SimpleNamespace:
    """Import ComfyUI (on the CPU unless `cpu=False`), register `models_dir`, load this pack with
    ComfyUI's own custom-node loader. The result has the pack's core modules as attributes, by
    their last name (`host.layer_ops`, `host.pixart_mqd`), and the core package as `host.core`
    (`host.core.families.flux_mqd`): the modules ComfyUI loaded, under the name it gave them.

    `pytorch_attention` is ComfyUI's `--use-pytorch-cross-attention`: torch SDPA for every
    model's attention, which ComfyUI picks by itself on CUDA with torch 2 (on the CPU it picks
    its sub-quadratic attention). Counts meant to track a GPU need it; it only takes effect in a
    process that has not imported comfy.model_management yet."""
    use_comfyui(comfy_root)
    import comfy.options  # noqa: F401  (args are parsed from [] unless enabled)
    import comfy.cli_args

    comfy.cli_args.args.cpu = bool(cpu)
    if pytorch_attention:
        if "comfy.model_management" in sys.modules:
            raise RuntimeError("pytorch_attention: ComfyUI's attention is already chosen in this "
                               "process; boot first, in a fresh process")
        comfy.cli_args.args.use_pytorch_cross_attention = True
    import folder_paths

    _use_folders(folder_paths, models_dir)
    import utils.extra_config  # noqa: F401  (ComfyUI's utils, before `nodes` puts comfy/ first)
    import nodes

    module_name = _load_pack(nodes, custom_nodes_dir)
    core = importlib.import_module(f"{module_name}.layermem_core")
    modules = core_modules(core)
    del modules["layermem_core"]
    host = SimpleNamespace(root=comfy_root, nodes=nodes, folder_paths=folder_paths,
                           module_name=module_name, pack=sys.modules[module_name], core=core,
                           **modules)
    _BOOTED[:] = [host]
    return host


def booted() -> SimpleNamespace:
    """The host `boot()` made in this process (the latest): what support code that runs only
    inside a booted host (the family kits) reads the pack's modules from, as ComfyUI loaded them."""
    if not _BOOTED:
        raise RuntimeError("ComfyUI is not booted in this process; call comfy_host.boot() first "
                           "(the tests' `host` fixture does)")
    return _BOOTED[0]
