"""The toy world's test-only nodes as a ComfyUI custom node folder.

`headless.ComfyServer(toy_world=True)` (and `tools/run_workflow.py --toy-world`) links this
folder into the server's custom_nodes, as --random-models links tools/random_text_encoder/; the
server runs with the repository root on PYTHONPATH (comfy_host.child_env), so the nodes are
imported by their package name. Never shipped to users.
"""
from tools.toyworld.nodes import NODE_CLASS_MAPPINGS

__all__ = ["NODE_CLASS_MAPPINGS"]
