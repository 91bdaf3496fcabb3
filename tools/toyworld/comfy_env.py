"""Puts the real ComfyUI on sys.path (CPU) for scripts run outside the test host (why: training
builds its modules from ComfyUI's own classes, never copies)."""
from __future__ import annotations

import sys
from pathlib import Path

from tools import comfy_host


def ensure_comfy(pytorch_attention: bool = False) -> Path:
    """Import path and `--cpu` for ComfyUI, found as the tests find it (comfy_host);
    `pytorch_attention` (training only: faster, same function) before ComfyUI picks one."""
    root = comfy_host.find_comfyui()
    if root is None:
        raise RuntimeError(comfy_host.HOW_TO_GET_IT)
    comfy_host.use_comfyui(root)
    if "comfy.model_management" not in sys.modules:
        import comfy.options  # noqa: F401, I001  (before cli_args, as comfy_host does)
        import comfy.cli_args

        comfy.cli_args.args.cpu = True
        comfy.cli_args.args.use_pytorch_cross_attention = pytorch_attention
    return root


def boot_toy_host(prefix: str):
    """The real ComfyUI booted in-process in a fresh temp folder, with the toy world's test nodes
    registered: what the bench and the picture scripts run the pack's nodes on."""
    import tempfile

    from . import nodes

    work = Path(tempfile.mkdtemp(prefix=prefix))
    for sub in ("models", "custom_nodes"):
        (work / sub).mkdir()
    host = comfy_host.boot(comfy_host.find_comfyui(), work / "models", work / "custom_nodes")
    nodes.register(host.nodes)
    return host

