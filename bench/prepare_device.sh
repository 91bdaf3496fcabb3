#!/usr/bin/env bash
# Stage what bench/run_bench.py needs on a bare GPU machine that has Python 3.12 + PyTorch but no
# ComfyUI and no network: a copy of ComfyUI in .comfyui/ and the three wheels ComfyUI's core imports
# that such an image lacks (torchsde + trampoline for its samplers, av for comfy_api.latest) in .whl/.
# The scenes ship in bench/data/. Run it here, in the repo, once; then carry [".comfyui", ".whl"]
# (see docs/benchmarks.md).
#   bash bench/prepare_device.sh [COMFYUI_PATH]
set -euo pipefail
cd "$(dirname "$0")/.."
SRC="${1:-${COMFYUI_PATH:-$HOME/ComfyUI}}"
[ -f "$SRC/comfy/ldm/pixart/pixartms.py" ] || { echo "no ComfyUI at $SRC" >&2; exit 1; }

mkdir -p .git/info
for p in /.comfyui/ /.whl/; do grep -qxF "$p" .git/info/exclude 2>/dev/null || echo "$p" >> .git/info/exclude; done

rm -rf .comfyui
python3 - "$SRC" <<'EOF'
import shutil, sys
skip = {".git", "__pycache__", "tests", "tests-unit", "output", "user", "custom_nodes", ".pytest_cache"}
shutil.copytree(sys.argv[1], ".comfyui", symlinks=False,
                ignore=lambda d, names: [n for n in names if n in skip or n.endswith(".pyc")])
EOF
mkdir -p .comfyui/custom_nodes

mkdir -p .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl \
  torchsde==0.2.6 trampoline==0.1.2 av==18.1.0
du -sh .comfyui .whl
ls .whl
