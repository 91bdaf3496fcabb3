"""Puts the real ComfyUI on sys.path (CPU) for scripts run outside the test host (why: training
builds its modules from ComfyUI's own classes, never copies)."""
from __future__ import annotations

import sys
from pathlib import Path

TOOLS = Path(__file__).resolve().parents[1]


def ensure_comfy(pytorch_attention: bool = False) -> Path:
    """Import path and `--cpu` for ComfyUI, found as the tests find it (comfy_host);
    `pytorch_attention` (training only: faster, same function) before ComfyUI picks one."""
    if str(TOOLS) not in sys.path:
        sys.path.insert(0, str(TOOLS))
    import comfy_host

    root = comfy_host.find_comfyui()
    if root is None:
        raise RuntimeError(comfy_host.HOW_TO_GET_IT)
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    if "comfy.model_management" not in sys.modules:
        import comfy.options  # noqa: F401, I001  (before cli_args, as comfy_host does)
        import comfy.cli_args

        comfy.cli_args.args.cpu = True
        comfy.cli_args.args.use_pytorch_cross_attention = pytorch_attention
    return root
