"""Run workflows through ComfyUI's real server, headless.

    from headless import ComfyServer, rewrite_for_random_models
    with ComfyServer(random_models=True) as server:          # starts `python main.py ...`, stops it on exit
        result = server.run(rewrite_for_random_models(prompt)[0])
        print(result.status, result.images)

`ComfyServer` prepares a base directory (`--base-directory`): `custom_nodes/` holds only a link to
this pack (plus, with `random_models`, the test-only text encoder in tests/support/test_nodes/),
`output/`, `input/`, `temp/`, `user/` and the server log `comfyui.log` live there, and models come
either from small random-weight files (`random_models=True`; written once into a cache folder,
default ~/.cache/comfyui_layer_memory/) or from the user's own model folders (default:
`<ComfyUI>/models`); both are added with `--extra-model-paths-config <base>/extra_model_paths.yaml`.
Nothing is written into the ComfyUI checkout. The server runs in its own session and is stopped on
`stop()`, on leaving the `with` block (errors and Ctrl-C included) and at interpreter exit.

`run()` posts an API-format workflow to `/prompt`, follows the websocket until ComfyUI reports
success or an error, then reads `/history`: which nodes ran, which came from ComfyUI's cache, the
error (node id, type, exception, traceback) and the image files written.
"""
from __future__ import annotations

import atexit
import copy
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import requests

try:  # websocket-client gives live progress and the exact list of executed nodes; polling /history also works
    import websocket
except ImportError:  # pragma: no cover
    websocket = None

REPO = Path(__file__).resolve().parents[1]
PACK_NAME = "comfyui_layer_memory"
TEST_NODES_DIR = REPO / "tests" / "support" / "test_nodes"
TEST_NODES_NAME = "layermem_test_nodes"
TEST_ENCODER = "LayerMemTestEncode"
NO_TEXT_ENCODER = "none (encode with another loader)"
RANDOM_ALPHA = "random_pixart_alpha_512.safetensors"
RANDOM_SIGMA = "random_pixart_sigma_512.safetensors"
HOW_TO_GET_COMFYUI = ("ComfyUI not found: pass --comfyui PATH, set COMFYUI_PATH to a ComfyUI checkout, put one at "
                      "~/ComfyUI, or install this pack in ComfyUI/custom_nodes/ (and pip install -r ComfyUI/requirements.txt)")
# model folders mapped from the user's models directory in real-model runs (folder -> subfolders)
MODEL_FOLDERS = {"checkpoints": ["checkpoints"], "diffusion_models": ["diffusion_models", "unet"],
                 "text_encoders": ["text_encoders", "clip"], "vae": ["vae"], "vae_approx": ["vae_approx"],
                 "loras": ["loras"], "embeddings": ["embeddings"], "controlnet": ["controlnet"],
                 "clip_vision": ["clip_vision"], "upscale_models": ["upscale_models"]}


class HeadlessError(RuntimeError):
    """The server could not be started or stopped working."""


class PromptRejected(HeadlessError):
    """ComfyUI's validation refused the workflow (HTTP 400 from /prompt)."""

    def __init__(self, message: str, response: dict):
        super().__init__(message)
        self.response = response


def find_comfyui(explicit: str | os.PathLike | None = None) -> Path:
    """--comfyui / $COMFYUI_PATH / ~/ComfyUI / the ComfyUI this pack is installed in."""
    import comfy_host as host_support  # the one place that knows where ComfyUI may be

    if explicit and not host_support.is_comfyui(Path(explicit).expanduser()):
        raise HeadlessError(f"{explicit} is not a ComfyUI checkout with PixArt (no main.py / comfy/ldm/pixart)")
    found = host_support.find_comfyui(explicit)
    if found is None:
        raise HeadlessError(HOW_TO_GET_COMFYUI)
    return found


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _link(target: Path, link: Path) -> None:
    if link.is_symlink() or link.exists():
        if link.resolve() == target.resolve():
            return
        if link.is_symlink():
            link.unlink()
        else:
            raise HeadlessError(f"{link} exists and is not a link to {target}")
    try:
        link.symlink_to(target, target_is_directory=True)
    except OSError:  # e.g. Windows without symlink rights: a copy does the same for one run
        shutil.copytree(target, link, ignore=shutil.ignore_patterns("__pycache__", ".git"))


def default_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser() / "comfyui_layer_memory"


def ensure_random_models(parent: Path, comfy_root: Path, python: str = sys.executable) -> Path:
    """The random test models in `parent/random_models-<hash of random_models.py>/`, written once.

    Files are written into a scratch folder and moved in with os.replace, so runs started at the same
    time never read a half-written file. Returns the models folder (diffusion_models/, vae_approx/)."""
    source = REPO / "tools" / "random_models.py"
    folder = parent / f"random_models-{hashlib.sha256(source.read_bytes()).hexdigest()[:12]}"
    marker = folder / ".complete"
    if marker.exists():
        return folder
    scratch = parent / f".scratch-{uuid.uuid4().hex}"
    try:
        write_random_models(scratch, comfy_root, python)
        for file in sorted(p for p in scratch.rglob("*") if p.is_file()):
            dest = folder / file.relative_to(scratch)
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(file, dest)
        marker.write_text("written by tools/headless.py\n", encoding="utf-8")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return folder


def write_random_models(models_dir: Path, comfy_root: Path, python: str = sys.executable) -> None:
    """tools/random_models.py in a child process (it imports ComfyUI's TAESD modules)."""
    code = ("import sys; sys.path[:0] = [sys.argv[1], sys.argv[2]]; import comfy.options, comfy.cli_args; "
            "comfy.cli_args.args.cpu = True; import random_models; random_models.write_models(sys.argv[3])")
    proc = subprocess.run([python, "-c", code, str(REPO / "tools"), str(comfy_root), str(models_dir)],
                          capture_output=True, text=True, cwd=str(comfy_root))
    if proc.returncode != 0:
        raise HeadlessError(f"writing the random models failed:\n{proc.stderr[-3000:]}")


# ---------------------------------------------------------------------------------------------- results
@dataclass
class RunResult:
    prompt_id: str
    status: str  # "success", "error" or "interrupted"
    seconds: float
    executed: list[str]  # node ids in the order ComfyUI ran them
    cached: list[str]  # node ids ComfyUI took from its cache
    images: list[Path]  # files written by output nodes (SaveImage: output folder)
    outputs: dict  # /history outputs: node id -> ui dict
    messages: list  # /history status messages ([event, data] pairs)
    error: dict | None = None  # execution_error data: node_id, node_type, exception_type, exception_message, traceback
    prompt: dict = field(default_factory=dict, repr=False)
    # ComfyUI runs the output nodes that validate and silently drops the others; their errors land here
    node_errors: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "success" and not self.node_errors

    def describe_error(self, with_traceback: bool | None = None) -> str:
        """What went wrong: output nodes ComfyUI dropped at validation, and the node that failed while running
        ('node 13 (AddLayer 'title') failed: Type: message', plus the traceback's last lines; by default only
        for unexpected exceptions: the pack's LayerMemoryError already says what to fix)."""
        parts = []
        if self.node_errors:
            parts.append(format_rejection({"error": {"message": "some output nodes failed validation and did not run"},
                                           "node_errors": self.node_errors}, self.prompt))
        if self.error is not None:
            e = self.error
            node = _node_label(self.prompt, str(e.get("node_id")), e.get("node_type"))
            kind = str(e.get("exception_type", "Error")).rsplit(".", 1)[-1]  # ComfyUI gives the full module path
            text = f"{node} failed: {kind}: {str(e.get('exception_message', '')).strip()}"
            show = kind != "LayerMemoryError" if with_traceback is None else with_traceback
            tail = "".join(e.get("traceback") or []).rstrip().splitlines()[-8:]
            if show and tail:
                text += "\n  traceback (last lines):\n    " + "\n    ".join(tail)
            parts.append(text)
        elif self.status != "success":
            parts.append(f"ComfyUI reported '{self.status}' without details")
        return "\n".join(parts)


def _node_label(prompt: dict, node_id: str, class_type: str | None = None) -> str:
    node = prompt.get(node_id, {})
    class_type = class_type or node.get("class_type", "?")
    title = node.get("_meta", {}).get("title")
    return f"node {node_id} ({class_type}" + (f" '{title}'" if title and title != class_type else "") + ")"


def format_rejection(response: dict, prompt: dict) -> str:
    """ComfyUI's /prompt 400 answer, one line per failing node input."""
    err = response.get("error", {})
    lines = [f"ComfyUI rejected the workflow: {err.get('message', err) if isinstance(err, dict) else err}"
             + (f" ({err.get('details')})" if isinstance(err, dict) and err.get("details") else "")]
    for node_id, info in (response.get("node_errors") or {}).items():
        for e in info.get("errors", []):
            details = str(e.get("details", ""))
            if len(details) > 300:
                details = details[:300] + " ..."
            lines.append(f"  {_node_label(prompt, str(node_id), info.get('class_type'))}: {e.get('message')}"
                         + (f": {details}" if details else ""))
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- server
class ComfyServer:
    def __init__(self, base_dir: str | os.PathLike | None = None, *, comfy_root: str | os.PathLike | None = None,
                 random_models: bool = False, random_models_cache: str | os.PathLike | None = None,
                 models_dir: str | os.PathLike | None = None,
                 output_dir: str | os.PathLike | None = None, port: int | None = None, cpu: bool | None = None,
                 extra_args: tuple | list = (), python: str = sys.executable, startup_timeout: float = 300.0):
        self.comfy_root = find_comfyui(comfy_root)
        self.base = Path(base_dir).resolve() if base_dir else Path(tempfile.mkdtemp(prefix="layermem_headless_"))
        self.random_models = random_models
        self.user_models = Path(models_dir).resolve() if models_dir else self.comfy_root / "models"
        self.random_models_cache = Path(random_models_cache).resolve() if random_models_cache else default_cache_dir()
        self.output_dir = Path(output_dir).resolve() if output_dir else self.base / "output"
        self.port = port
        self.cpu = random_models if cpu is None else cpu
        self.extra_args = list(extra_args)
        self.python = python
        self.startup_timeout = startup_timeout
        self.log_path = self.base / "comfyui.log"
        self.models: Path | None = None  # the models folder the server reads (set by prepare())
        self.proc: subprocess.Popen | None = None
        self._log = None
        self.timings: dict[str, float] = {}

    # -------------------------------------------------------------- lifecycle
    def __enter__(self) -> ComfyServer:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def prepare(self) -> None:
        """Base directory with links to this pack (and the test nodes), models, extra model paths."""
        for sub in ("custom_nodes", "input", "temp", "user", "models"):
            (self.base / sub).mkdir(parents=True, exist_ok=True)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        _link(REPO, self.base / "custom_nodes" / PACK_NAME)
        if self.random_models:
            _link(TEST_NODES_DIR, self.base / "custom_nodes" / TEST_NODES_NAME)
            t0 = time.monotonic()
            self.models = ensure_random_models(self.random_models_cache, self.comfy_root, self.python)
            self.timings["random_models_s"] = time.monotonic() - t0
            folders = {"diffusion_models": ["diffusion_models"], "vae_approx": ["vae_approx"]}
        else:
            self.models = self.user_models
            folders = MODEL_FOLDERS
        lines = ["layer_memory_headless:", f"  base_path: {json.dumps(str(self.models))}"]
        for folder, subs in folders.items():
            lines.append(f"  {folder}: {json.dumps(chr(10).join(subs))}")
        (self.base / "extra_model_paths.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")

    def command(self) -> list[str]:
        cmd = [self.python, "main.py", "--listen", "127.0.0.1", "--port", str(self.port),
               "--base-directory", str(self.base), "--output-directory", str(self.output_dir),
               "--database-url", f"sqlite:///{self.base / 'user' / 'comfyui.db'}", "--disable-auto-launch"]
        if self.cpu:
            cmd.append("--cpu")
        cmd += ["--extra-model-paths-config", str(self.base / "extra_model_paths.yaml")]
        return cmd + self.extra_args

    def start(self) -> None:
        if self.proc is not None:
            return
        self.prepare()
        t0 = time.monotonic()
        attempts = 1 if self.port else 3
        for attempt in range(attempts):
            if attempts > 1:
                self.port = free_port()
            self._log = open(self.log_path, "ab")
            self.proc = subprocess.Popen(self.command(), cwd=str(self.comfy_root), stdout=self._log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
            atexit.register(self.stop)
            try:
                self._wait_ready()
                break
            except HeadlessError:
                in_use = "address already in use" in self.log_tail(4000).lower()
                self.stop()
                if not in_use or attempt == attempts - 1:
                    raise
        self.timings["server_start_s"] = time.monotonic() - t0

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while True:
            if self.proc.poll() is not None:
                tail = self.log_tail()
                hint = ("\nhint: ComfyUI found no usable GPU; run on the CPU (--cpu)"
                        if not self.cpu and ("NVIDIA driver" in tail or "CUDA" in tail) else "")
                raise HeadlessError(f"ComfyUI exited with code {self.proc.returncode} while starting; "
                                    f"log {self.log_path}:\n{tail}{hint}")
            try:
                r = requests.get(f"{self.url}/object_info/LayerMemory", timeout=5)
                if r.status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise HeadlessError(f"ComfyUI did not answer within {self.startup_timeout:.0f} s; "
                                    f"log {self.log_path}:\n{self.log_tail()}")
            time.sleep(0.5)
        needed = ["LayerMemory"] + ([TEST_ENCODER] if self.random_models else [])
        for node in needed:
            if node not in requests.get(f"{self.url}/object_info/{node}", timeout=30).json():
                lines = [ln for ln in self.log_tail(200_000).splitlines()
                         if PACK_NAME in ln or TEST_NODES_NAME in ln or "Traceback" in ln or "Error" in ln]
                raise HeadlessError(f"ComfyUI started but node {node} is missing: the custom node pack failed to "
                                    "import. From the log:\n" + "\n".join(lines[-30:]))

    def stop(self) -> None:
        """Terminate the server (SIGTERM, then SIGKILL after 15 s). Safe to call twice."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=15)
        if self._log is not None:
            self._log.close()
            self._log = None
        atexit.unregister(self.stop)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_bytes()[-chars:].decode("utf-8", "replace")
        except OSError:
            return ""

    # -------------------------------------------------------------- HTTP
    def get(self, path: str, **kw):
        r = requests.get(self.url + path, timeout=kw.pop("timeout", 30), **kw)
        r.raise_for_status()
        return r.json()

    def object_info(self, node_class: str | None = None) -> dict:
        return self.get("/object_info" + (f"/{node_class}" if node_class else ""), timeout=120)

    def history(self, prompt_id: str) -> dict | None:
        return self.get(f"/history/{prompt_id}").get(prompt_id)

    def queue(self, prompt: dict, client_id: str | None = None) -> str:
        """POST /prompt; returns the prompt id. Raises PromptRejected when no output node is valid."""
        return self._post_prompt(prompt, client_id)["prompt_id"]

    def _post_prompt(self, prompt: dict, client_id: str | None) -> dict:
        body = {"prompt": prompt, "client_id": client_id or uuid.uuid4().hex}
        r = requests.post(self.url + "/prompt", json=body, timeout=120)
        try:
            data = r.json()
        except ValueError:
            raise HeadlessError(f"/prompt answered {r.status_code}: {r.text[:500]}") from None
        if r.status_code != 200:
            raise PromptRejected(format_rejection(data, prompt), data)
        return data

    def run(self, prompt: dict, timeout: float = 1800.0,
            on_event: Callable[[str, dict], None] | None = None) -> RunResult:
        """Queue the workflow and wait for it. Raises PromptRejected / HeadlessError; node errors are in the result."""
        if not self.running:
            raise HeadlessError("the server is not running")
        client_id = uuid.uuid4().hex
        ws = None
        if websocket is not None:
            ws = websocket.create_connection(f"ws://127.0.0.1:{self.port}/ws?clientId={client_id}", timeout=30)
            ws.settimeout(1.0)
        t0 = time.monotonic()
        executed: list[str] = []
        try:
            queued = self._post_prompt(prompt, client_id)
            prompt_id = queued["prompt_id"]
            deadline = t0 + timeout
            while True:
                if not self.running:
                    raise HeadlessError(f"ComfyUI died while running the workflow; log {self.log_path}:\n{self.log_tail()}")
                if time.monotonic() > deadline:
                    requests.post(self.url + "/interrupt", timeout=10)
                    raise HeadlessError(f"the workflow did not finish within {timeout:.0f} s (interrupted)")
                finished = False
                if ws is not None:
                    try:
                        raw = ws.recv()
                    except websocket.WebSocketTimeoutException:
                        raw = None
                    if isinstance(raw, str):
                        msg = json.loads(raw)
                        kind, data = msg.get("type"), msg.get("data") or {}
                        if data.get("prompt_id") == prompt_id:
                            if kind == "executing" and data.get("node") is not None and data["node"] not in executed:
                                executed.append(str(data["node"]))
                            finished = kind in ("execution_success", "execution_error", "execution_interrupted")
                            if on_event:
                                on_event(kind, data)
                    elif raw is None:
                        finished = self.history(prompt_id) is not None
                else:
                    time.sleep(0.25)
                    finished = self.history(prompt_id) is not None
                if finished:
                    break
            entry = None
            for _ in range(200):  # history is stored right after the final websocket message
                entry = self.history(prompt_id)
                if entry is not None:
                    break
                time.sleep(0.1)
            if entry is None:
                raise HeadlessError(f"prompt {prompt_id} finished but has no /history entry")
        finally:
            if ws is not None:
                ws.close()
        result = self._result(prompt, prompt_id, entry, executed, time.monotonic() - t0, ws is not None)
        result.node_errors = queued.get("node_errors") or {}
        return result

    def _result(self, prompt, prompt_id, entry, executed, seconds, from_ws) -> RunResult:
        status = entry.get("status") or {}
        messages = status.get("messages") or []
        cached: list[str] = []
        error = None
        state = status.get("status_str") or "unknown"
        for kind, data in messages:
            if kind == "execution_cached":
                cached += [str(n) for n in data.get("nodes", [])]
            elif kind == "execution_error":
                error = data
            elif kind == "execution_interrupted":
                state = "interrupted"
        if not from_ws:  # without the websocket: every node of the prompt that was not cached
            done = set(error.get("executed", [])) if error else None
            executed = [n for n in prompt if n not in cached and (done is None or n in done)]
        images = []
        outputs = entry.get("outputs") or {}
        in_order = [n for n in prompt if n in outputs] + [n for n in outputs if n not in prompt]
        for node_out in (outputs[n] for n in in_order):  # images in the workflow's node order
            for img in node_out.get("images", []):
                root = self.output_dir if img.get("type") == "output" else self.base / img.get("type", "temp")
                images.append(root / img.get("subfolder", "") / img["filename"])
        return RunResult(prompt_id=prompt_id, status=state, seconds=seconds, executed=executed, cached=cached,
                         images=images, outputs=entry.get("outputs") or {}, messages=messages, error=error,
                         prompt=prompt)


# ---------------------------------------------------------------------------------------------- workflows
def is_ui_format(workflow: dict) -> bool:
    return isinstance(workflow.get("nodes"), list) and "links" in workflow


def load_api_workflow(path: str | os.PathLike) -> dict:
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if is_ui_format(data):
        raise HeadlessError(f"{path} is in ComfyUI's UI format; this needs the API format "
                            "(in ComfyUI: Workflow > Export (API), or use workflows/api/*_api.json)")
    if "prompt" in data and isinstance(data["prompt"], dict) and "class_type" not in data["prompt"]:
        data = data["prompt"]  # a saved /prompt body
    bad = [k for k, v in data.items() if not (isinstance(v, dict) and "class_type" in v)]
    if bad:
        raise HeadlessError(f"{path} is not an API-format workflow (entries without class_type: {bad[:5]})")
    return data


def _is_link(value) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], str) and isinstance(value[1], int)


def rewrite_for_random_models(prompt: dict, steps: int = 3, size: int = 512) -> tuple[dict, list[str]]:
    """The workflow for the random test models and the test text encoder; returns (prompt, list of changes).

    - LoadPixArt: the random PixArt-alpha 512 (Sigma when the file name says so), no text encoder, TAESD;
    - CLIPTextEncodePixArtAlpha, and CLIPTextEncode fed by LoadPixArt: LayerMemTestEncode with the same text;
    - sizes: LayerMemory (and EmptyLatentImage) width/height, text-encoder width/height, SolidMask sizes,
      MaskComposite x/y and a PreviewLayers line_width > 0 scaled by size / (smaller side of the first
      LayerMemory), e.g. 1024 -> 512. A workflow without LayerMemory (one that continues a memory from
      LoadLayerMemory) takes the scene size from its first PixArt text encoder instead: the loaded memory
      is then the one a rewritten workflow saved, at `size`;
    - steps of LayerMemory (and KSampler / KSamplerAdvanced / BasicScheduler) -> `steps`.

    SaveLayerMemory and LoadLayerMemory stay as they are: a memory saved by a rewritten workflow was made
    with the random model, and the rewritten workflow that loads it (same file name) uses that model too.
    """
    p = copy.deepcopy(prompt)
    changes: list[str] = []
    sizes = [(n["inputs"].get("width"), n["inputs"].get("height")) for n in p.values() if n["class_type"] == "LayerMemory"]
    sizes = [s for s in sizes if all(isinstance(v, int) for v in s)]
    if not sizes:  # e.g. LoadLayerMemory -> AddLayer: the prompts carry the scene's size
        sizes = [(n["inputs"].get("width"), n["inputs"].get("height")) for n in p.values()
                 if n["class_type"] == "CLIPTextEncodePixArtAlpha"]
        sizes = [s for s in sizes if all(isinstance(v, int) for v in s)]
    scale = size / min(sizes[0]) if sizes and min(sizes[0]) > size else 1.0

    def scaled(v, grid: int = 1, minimum: int = 0) -> int:
        return max(minimum, int(round(v * scale / grid)) * grid)

    def set_input(node_id, node, name, value):
        old = node["inputs"].get(name)
        if old != value and not _is_link(old):
            node["inputs"][name] = value
            changes.append(f"{_node_label(prompt, node_id)}: {name} {old!r} -> {value!r}")

    image_size = (scaled(sizes[0][0], 16, size), scaled(sizes[0][1], 16, size)) if sizes else (size, size)
    pixart_loaders = {nid for nid, n in p.items() if n["class_type"] == "LoadPixArt"}
    for nid, node in p.items():
        ct, inputs = node["class_type"], node["inputs"]
        if ct == "LoadPixArt":
            sigma = "sigma" in str(inputs.get("unet_name", "")).lower()
            set_input(nid, node, "unet_name", RANDOM_SIGMA if sigma else RANDOM_ALPHA)
            set_input(nid, node, "text_encoder", NO_TEXT_ENCODER)
            set_input(nid, node, "vae_name", "taesdxl" if sigma else "taesd")
        elif ct == "CLIPTextEncodePixArtAlpha" or (
                ct == "CLIPTextEncode" and _is_link(inputs.get("clip")) and inputs["clip"][0] in pixart_loaders):
            w = scaled(inputs["width"]) if isinstance(inputs.get("width"), int) else inputs.get("width", image_size[0])
            h = scaled(inputs["height"]) if isinstance(inputs.get("height"), int) else inputs.get("height", image_size[1])
            node["class_type"] = TEST_ENCODER
            node["inputs"] = {"text": inputs.get("text", ""), "width": w, "height": h}
            changes.append(f"{_node_label(prompt, nid)}: -> {TEST_ENCODER} (same text, {w}x{h})")
        elif ct in ("LayerMemory", "EmptyLatentImage"):
            for name in ("width", "height"):
                if isinstance(inputs.get(name), int):
                    grid, least = (16, size) if ct == "LayerMemory" else (8, 8)
                    set_input(nid, node, name, scaled(inputs[name], grid, least))
            if ct == "LayerMemory" and isinstance(inputs.get("steps"), int):
                set_input(nid, node, "steps", steps)
        elif ct in ("KSampler", "KSamplerAdvanced", "BasicScheduler") and isinstance(inputs.get("steps"), int):
            set_input(nid, node, "steps", steps)
        elif ct == "SolidMask":
            for name in ("width", "height"):
                if isinstance(inputs.get(name), int):
                    set_input(nid, node, name, scaled(inputs[name], 1, 1))
        elif ct == "MaskComposite":
            for name in ("x", "y"):
                if isinstance(inputs.get(name), int):
                    set_input(nid, node, name, scaled(inputs[name]))
        elif ct == "PreviewLayers" and isinstance(inputs.get("line_width"), int) and inputs["line_width"] > 0:
            set_input(nid, node, "line_width", scaled(inputs["line_width"], 1, 1))
    return p, changes
