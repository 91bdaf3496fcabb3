"""Run API-format workflows through ComfyUI's real server, headless, and list the images they wrote.

    python3 -m tools.run_workflow workflows/api/layered_scene_api.json --random-models
    python3 -m tools.run_workflow workflows/api/layered_scene_api.json \\
        workflows/api/continue_scene_api.json --random-models
    python3 -m tools.run_workflow workflows/api/sd15_layered_scene_api.json --toy-world
    python3 -m tools.run_workflow my_scene_api.json      # your models, from <ComfyUI>/models

Several workflows run one after the other in one ComfyUI, in the order given: continue_scene
loads the layer memory that layered_scene saves in the output folder, so it comes second.

--random-models runs anywhere (CPU, no downloads): small random-weight PixArt/TAESD files, a
test text encoder instead of T5-XXL, 512 px and a few steps. The pictures are noise; the point
is that every node, link and ComfyUI code path runs. --toy-world runs an SD 1.5 workflow on the
toy world's model (tools/toyworld/: a small SD 1.5 UNet, text encoder and VAE trained in this
repository on flat-colour shapes; docs/toyworld.md), on the CPU, at 128 px, 12 steps, its prompts
turned into the toy world's words ("grass", "a red circle", ...): pictures that can be read,
made to show the mechanism, not the quality of any real model. Without either flag the workflow
runs as it is, with the files named in it, from your ComfyUI models folder (or --models-dir), on
the GPU ComfyUI finds (--cpu without one).

Exit status: 0 all workflows succeeded, 1 a workflow was rejected or failed, 2 the server could
not start.
"""
from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

from tools import headless
from tools.pack_labels import labels

EXIT_STATUS = ("Exit status: 0 all workflows succeeded, 1 a workflow was rejected or failed, "
               "2 the server could not start.")
LOAD_HINT = ("hint: this workflow loads a layer memory from the output folder ('... [output]'); "
             "run the workflow that saves it first, in the same command (e.g. "
             "workflows/api/layered_scene_api.json workflows/api/continue_scene_api.json), or put "
             "a memory file into the input folder and choose it")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("Exit status")[0].strip(),
                                epilog=EXIT_STATUS,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("workflows", nargs="+", type=Path,
                   help="API-format workflow JSON files (Workflow > Export (API) in ComfyUI)")
    p.add_argument("--random-models", action="store_true",
                   help="use random test models and the test text encoder, 512 px, few steps "
                        "(implies --cpu)")
    p.add_argument("--toy-world", action="store_true",
                   help="run an SD 1.5 workflow on the toy world's model, 128 px, 12 steps, its "
                        "prompts in the toy world's words (implies --cpu)")
    p.add_argument("--steps", type=int, default=3,
                   help="sampling steps with --random-models (default 3)")
    p.add_argument("--size", type=int, default=512,
                   help="image size (smaller side) with --random-models "
                        "(default 512, the least PixArt takes)")
    p.add_argument("--comfyui", help="ComfyUI checkout (default: $COMFYUI_PATH, ~/ComfyUI, "
                                     "or the one this pack is installed in)")
    p.add_argument("--base-dir", type=Path, help="ComfyUI --base-directory for this run "
                                                 "(default: a new temporary folder, kept)")
    p.add_argument("--models-dir", type=Path,
                   help="models folder for real runs (default: <ComfyUI>/models)")
    p.add_argument("--random-models-cache", type=Path,
                   help="where the random models are written once "
                        "(default: ~/.cache/comfyui_layer_memory)")
    p.add_argument("--output-dir", type=Path, help="where images go (default: <base-dir>/output)")
    p.add_argument("--cpu", action="store_true", help="run ComfyUI with --cpu")
    p.add_argument("--port", type=int, help="server port (default: a free one)")
    p.add_argument("--timeout", type=float, default=3600,
                   help="seconds per workflow (default 3600)")
    p.add_argument("--comfy-arg", action="append", default=[], metavar="ARG",
                   help="extra argument for ComfyUI's main.py, repeatable "
                        "(e.g. --comfy-arg=--lowvram)")
    p.add_argument("-q", "--quiet", action="store_true", help="no per-node progress")
    args = p.parse_args(argv)
    if args.random_models and args.toy_world:
        p.error("--random-models and --toy-world are two different models: choose one")
    return args


def _progress(prompt: dict, quiet: bool):
    start = time.monotonic()

    def on_event(kind: str, data: dict) -> None:
        if quiet:
            return
        t = time.monotonic() - start
        if kind == "execution_cached" and data.get("nodes"):
            print(f"  {t:6.1f}s  cached: {', '.join(data['nodes'])}", flush=True)
        elif kind == "executing" and data.get("node") is not None:
            label = headless.node_label(prompt, str(data["node"]))
            print(f"  {t:6.1f}s  running {label}", flush=True)
    return on_event


def _memory_files(prompt: dict) -> list[str]:
    """The files the workflow's LoadLayerMemory nodes load from the output folder."""
    files = [str(n["inputs"].get("file", "")) for n in prompt.values()
             if n["class_type"] == "LayerMem_LoadLayerMemory"]
    return [f for f in files if labels.is_output_name(f)]


def _stale_loads(prompts: list, output_dir: Path) -> list[str]:
    """Warnings for a LoadLayerMemory whose '... [output]' file exists before the run although an
    earlier workflow of this command saves under that prefix: the counter moves on, so it would
    load the old file."""
    warnings = []
    for i, (path, prompt) in enumerate(prompts):
        prefixes = {str(n["inputs"].get("filename_prefix")) + "_" for _, earlier in prompts[:i]
                    for n in earlier.values() if n["class_type"] == "LayerMem_SaveLayerMemory"}
        for file in _memory_files(prompt):
            if any(file.startswith(pre) for pre in prefixes) \
                    and (output_dir / labels.output_path(file)).exists():
                warnings.append(f"warning: {path} loads '{file}', which exists in {output_dir} "
                                "already: the earlier workflow saves a new file with the next "
                                "counter, and this one loads the old file (use a fresh "
                                "--output-dir to continue what this command saves)")
    return warnings


def _texts(prompt: dict, result: headless.RunResult) -> list[tuple[str, str]]:
    """Text the output nodes showed (SaveLayerMemory's file name, ListLayers' table), in the
    workflow's order."""
    found = []
    for nid in prompt:
        for text in (result.outputs.get(nid) or {}).get("text", []):
            if isinstance(text, str) and text.strip():
                found.append((nid, text.strip()))
    return found


def _load_prompts(args: argparse.Namespace) -> list[tuple[Path, dict]]:
    """Every workflow of the command, rewritten for the random models or the toy world when
    asked."""
    prompts = []
    for path in args.workflows:
        prompt = headless.load_api_workflow(path)
        changes = None
        if args.random_models:
            prompt, changes = headless.rewrite_for_random_models(prompt, steps=args.steps,
                                                                 size=args.size)
            print(f"{path}: rewritten for the random test models ({len(changes)} changes)")
        elif args.toy_world:
            prompt, changes = headless.rewrite_for_toy_world(prompt)
            print(f"{path}: rewritten for the toy world ({len(changes)} changes)")
        if changes is not None:
            if not args.quiet:
                for c in changes:
                    print(f"    {c}")
        prompts.append((path, prompt))
    return prompts


def _server(args: argparse.Namespace) -> headless.ComfyServer:
    return headless.ComfyServer(args.base_dir, comfy_root=args.comfyui,
                                random_models=args.random_models,
                                random_models_cache=args.random_models_cache,
                                toy_world=args.toy_world,
                                models_dir=args.models_dir, output_dir=args.output_dir,
                                port=args.port,
                                cpu=True if (args.cpu or args.random_models or args.toy_world)
                                else None,
                                extra_args=args.comfy_arg)


def _report(server: headless.ComfyServer, prompt: dict, result: headless.RunResult) -> None:
    saved = [img for img in result.images if server.output_dir in img.parents]
    previews = [img for img in result.images if img not in saved]  # PreviewImage etc.: temp/
    more = f" (+{len(previews)} previews in {previews[0].parent})" if previews else ""
    print(f"{'done' if result.ok else 'FAILED'} in {result.seconds:.1f} s: "
          f"{len(result.executed)} nodes ran, {len(result.cached)} cached; "
          f"{len(saved)} images saved{more}" + (":" if saved else ""))
    for img in saved:
        print(f"    {img}")
    for nid, text in _texts(prompt, result):
        lines = "\n".join(f"    {line}" for line in text.splitlines())
        print(f"  {headless.node_label(prompt, nid)}:\n{lines}")
    if not result.ok:
        print(result.describe_error(), file=sys.stderr)


def _run_one(server: headless.ComfyServer, prompt: dict, args: argparse.Namespace) -> bool:
    """Run one workflow and print what it did; False when it was rejected or failed."""
    try:
        result = server.run(prompt, timeout=args.timeout, on_event=_progress(prompt, args.quiet))
    except headless.PromptRejected as e:
        print(str(e), file=sys.stderr)
        if _memory_files(prompt):
            print(LOAD_HINT, file=sys.stderr)
        return False
    _report(server, prompt, result)
    return result.ok


def _run_all(server: headless.ComfyServer, prompts: list, args: argparse.Namespace) -> int:
    """Start the server and run the workflows in order; the exit status."""
    server.start()
    t = server.timings
    models = (f" (random models in {server.models}: {t['random_models_s']:.1f} s)"
              if "random_models_s" in t else "")
    print(f"server up at {server.url} in {t['server_start_s']:.1f} s{models}")
    failures = 0
    for path, prompt in prompts:
        print(f"running {path} ({len(prompt)} nodes)", flush=True)
        failures += not _run_one(server, prompt, args)
    return 1 if failures else 0


def main(argv=None) -> int:
    args = parse_args(argv)
    # so that the server is stopped on kill, too
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        prompts = _load_prompts(args)
    except (OSError, ValueError, headless.HeadlessError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    t_total = time.monotonic()
    try:
        server = _server(args)
    except headless.HeadlessError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"ComfyUI: {server.comfy_root}\n"
          f"base directory: {server.base}  (server log: {server.log_path})")
    for warning in _stale_loads(prompts, server.output_dir):
        print(warning, file=sys.stderr)
    try:
        status = _run_all(server, prompts, args)
    except KeyboardInterrupt:
        print("interrupted; stopping ComfyUI", file=sys.stderr)
        return 130
    except headless.HeadlessError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    finally:
        server.stop()
    print(f"total {time.monotonic() - t_total:.1f} s; images are in {server.output_dir}")
    return status


if __name__ == "__main__":
    sys.exit(main())
