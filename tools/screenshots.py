"""Remakes the pictures: README screenshots (docs/images/<workflow>.jpg) and the template thumbnails
(workflows/<n>_<workflow>.jpg, which ComfyUI's template browser shows on each template's card).

    bash tools/setup.sh && python3 -m tools.screenshots
    python3 -m tools.screenshots --only sd15_layered_scene   # one template's pictures

Starts ComfyUI's real server with the random test models and the toy world's nodes
(tools/headless.py), then tools/frontend_run.js opens each template in the real frontend
(headless Chromium), runs it with the Queue button and photographs it. The SD 1.5 template
(TOY_WORLD) runs on the toy world's model (tools/toyworld/: trained in this repository on
flat-colour shapes, 128 px), so its pictures can be read: they show the mechanism, not the
quality of any real model. The other families have no toy model: their images are noise, the
random models'. Run it again when the graphs or the frontend change.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from tools import headless

REPO = Path(__file__).resolve().parents[1]
MAX_BYTES = 150_000
TOY_WORLD = ("sd15_layered_scene",)  # templates run on the toy world's model


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--comfyui", help="ComfyUI checkout (default: $COMFYUI_PATH, ~/ComfyUI)")
    p.add_argument("--only", metavar="NAME",
                   help="only the template whose name contains NAME (the others' pictures stay)")
    args = p.parse_args(argv)
    base = Path(tempfile.mkdtemp(prefix="layermem_screenshots_"))
    with headless.ComfyServer(base, comfy_root=args.comfyui, random_models=True,
                              toy_world=True) as server:
        report = base / "report.json"
        cmd = ["node", str(REPO / "tools" / "frontend_run.js"), server.url, "--pictures",
               "--report", str(report)]
        cmd += ["--only", args.only] if args.only else []
        for name in TOY_WORLD:
            cmd += ["--toy-world", name]
        done = subprocess.run(cmd, cwd=REPO, env={**os.environ, "PYTHON": sys.executable})
    if done.returncode:
        print(f"frontend_run.js failed (exit {done.returncode}); log: {base / 'comfyui.log'}")
        return 1
    errors = [(w["name"], w["errors"]) for w in json.loads(report.read_text())["workflows"]
              if w["errors"] or w["missing_nodes"]]
    if errors:
        print(f"a template failed in the frontend: {errors}; report: {report}")
        return 1
    pictures = [*sorted((REPO / "docs" / "images").glob("*.jpg")),
                *sorted((REPO / "workflows").glob("*.jpg"))]
    too_big = [f"{p.relative_to(REPO)} ({p.stat().st_size // 1000} kB)" for p in pictures
               if p.stat().st_size > MAX_BYTES]
    for picture in pictures:
        print(f"{picture.relative_to(REPO)}: {picture.stat().st_size // 1000} kB")
    if too_big:
        print("over 150 kB: " + ", ".join(too_big))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
