"""The pack's support code (finding and booting ComfyUI, random models, scenes, workflows, the
headless server, the toy world) as one package: `from tools import comfy_host`.

The repository root is made importable in one place per way of running: pytest's `pythonpath`
(pytest.ini), `python3 -m tools.<script>` / `python3 -m bench.<script>` run from the repository
root, and `comfy_host.child_env()` for the child processes the tools start. Nothing edits
`sys.path` but `comfy_host.use_comfyui`, which puts the ComfyUI host itself on it.
"""
