#!/usr/bin/env bash
# Install what the pack, its tests and a headless ComfyUI need into the current Python.
# ComfyUI itself is not on the package registries: it is found at $COMFYUI_PATH, ~/ComfyUI,
# or as the parent of the custom_nodes/ folder this pack sits in (see README).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
py="${PYTHON:-python3}"

comfy="${COMFYUI_PATH:-$HOME/ComfyUI}"
if [ ! -f "$comfy/main.py" ] && [ "$(basename "$(dirname "$here")")" = "custom_nodes" ]; then
  comfy="$(dirname "$(dirname "$here")")"
fi
if [ ! -f "$comfy/main.py" ]; then
  echo "!!! ComfyUI not found at \$COMFYUI_PATH or ~/ComfyUI (nor as the parent of custom_nodes/)." >&2
  echo "!!! Put a ComfyUI checkout there (git clone https://github.com/Comfy-Org/ComfyUI) and run this again." >&2
  exit 3
fi

# torch first, pinned to the releases this machine keeps on disk (a CUDA build; it also runs on the CPU).
"$py" -m pip install -q "torch==2.14.1" "torchvision==0.29.1"
# ComfyUI's own requirements, less torchaudio (only two audio node files need it).
grep -v -E '^(torch|torchvision|torchaudio)([<>=~ ].*)?$' "$comfy/requirements.txt" > "${TMPDIR:-/tmp}/layermem-comfy-req.txt"
"$py" -m pip install -q -r "${TMPDIR:-/tmp}/layermem-comfy-req.txt"
"$py" -m pip install -q -r "$here/requirements.txt" -r "$here/requirements-test.txt"
echo "setup done: ComfyUI at $comfy"
