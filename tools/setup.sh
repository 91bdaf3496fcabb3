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

# The browser test (tests/browser) and the pictures (tools/screenshots.py): Debian's Chromium and
# playwright-core from npm into .browser/ (git-ignored). Quick when both are there. Without them
# the browser test is skipped with a loud reason (and fails under CI=true).
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q chromium >/dev/null 2>&1 \
      || { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; } \
      || echo "!!! could not install chromium with apt-get: the browser test will be skipped" >&2
  else
    echo "!!! /usr/bin/chromium missing (as root: apt-get install chromium):" \
         "the browser test will be skipped" >&2
  fi
fi
playwright_version="1.65.1"
pw_package="$here/.browser/node_modules/playwright-core/package.json"
if [ ! -f "$pw_package" ] || ! grep -q "\"version\": \"$playwright_version\"" "$pw_package"; then
  if command -v npm >/dev/null; then
    mkdir -p "$here/.browser"
    [ -f "$here/.browser/package.json" ] || echo '{"private": true}' > "$here/.browser/package.json"
    (cd "$here/.browser" \
      && npm install --no-audit --no-fund --silent "playwright-core@$playwright_version") \
      || echo "!!! npm could not install playwright-core: the browser test will be skipped" >&2
  else
    echo "!!! npm missing: the browser test will be skipped" >&2
  fi
fi
echo "setup done: ComfyUI at $comfy"
