"""ComfyServer: ComfyUI's real server (`python main.py ...`) in its own session, and its API."""
from __future__ import annotations

import atexit
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import requests

from tools import comfy_host

from . import base_folder, follow, models
from .errors import HeadlessError, PromptRejected
from .results import RunResult, format_rejection, result_from_history

HOW_TO_GET_COMFYUI = ("ComfyUI not found: pass --comfyui PATH, set COMFYUI_PATH to a ComfyUI "
                      "checkout, put one at ~/ComfyUI, or install this pack in "
                      "ComfyUI/custom_nodes/ (and pip install -r ComfyUI/requirements.txt)")
PathLike = str | os.PathLike


def find_comfyui(explicit: PathLike | None = None) -> Path:
    """--comfyui / $COMFYUI_PATH / ~/ComfyUI / the ComfyUI this pack is installed in."""
    if explicit and not comfy_host.is_comfyui(Path(explicit).expanduser()):
        raise HeadlessError(f"{explicit} is not a ComfyUI checkout with PixArt "
                            "(no main.py / comfy/ldm/pixart)")
    found = comfy_host.find_comfyui(explicit)
    if found is None:
        raise HeadlessError(HOW_TO_GET_COMFYUI)
    return found


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _resolved(path: PathLike | None, default: Path) -> Path:
    return Path(path).resolve() if path else default


class ComfyServer:
    """One ComfyUI server; stopped on stop(), on leaving `with`, and at interpreter exit."""

    def __init__(self, base_dir: PathLike | None = None, *, comfy_root: PathLike | None = None,
                 random_models: bool = False, random_models_cache: PathLike | None = None,
                 toy_world: bool = False,
                 models_dir: PathLike | None = None, output_dir: PathLike | None = None,
                 port: int | None = None, cpu: bool | None = None, extra_args: tuple | list = (),
                 python: str = sys.executable, startup_timeout: float = 300.0):
        self.comfy_root = find_comfyui(comfy_root)
        self.base = _resolved(base_dir, None) or Path(tempfile.mkdtemp(prefix="layermem_headless_"))
        self.random_models = random_models
        self.toy_world = toy_world  # the toy world's nodes (its weights are in the repository)
        self.user_models = _resolved(models_dir, self.comfy_root / "models")
        self.random_models_cache = _resolved(random_models_cache, models.default_cache_dir())
        self.output_dir = _resolved(output_dir, self.base / "output")
        self.port = port
        self.cpu = (random_models or toy_world) if cpu is None else cpu
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

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def prepare(self) -> None:
        """Base directory with links to this pack (and the test nodes), models, model paths."""
        base_folder.prepare(self.base, self.output_dir, with_test_nodes=self.random_models,
                            with_toy_nodes=self.toy_world)
        if self.random_models:
            t0 = time.monotonic()
            self.models = models.ensure_random_models(self.random_models_cache, self.comfy_root,
                                                      self.python)
            self.timings["random_models_s"] = time.monotonic() - t0
            folders = base_folder.RANDOM_MODEL_FOLDERS
        elif self.toy_world:  # the toy nodes load the repository's weights: no model files
            self.models = self.base / "models"
            folders = base_folder.RANDOM_MODEL_FOLDERS
        else:
            self.models = self.user_models
            folders = base_folder.MODEL_FOLDERS
        base_folder.write_model_paths(self.base, self.models, folders)

    def command(self) -> list[str]:
        cmd = [self.python, "main.py", "--listen", "127.0.0.1", "--port", str(self.port),
               "--base-directory", str(self.base), "--output-directory", str(self.output_dir),
               "--database-url", f"sqlite:///{self.base / 'user' / 'comfyui.db'}",
               "--disable-auto-launch"]
        if self.cpu:
            cmd.append("--cpu")
        cmd += ["--extra-model-paths-config", str(self.base / "extra_model_paths.yaml")]
        return cmd + self.extra_args

    def start(self) -> None:
        """Prepare, launch, wait until the pack's nodes are served (a new port if one is taken)."""
        if self.proc is not None:
            return
        self.prepare()
        t0 = time.monotonic()
        attempts = 1 if self.port else 3
        for attempt in range(attempts):
            if attempts > 1:
                self.port = free_port()
            self._launch()
            try:
                self._wait_ready()
                break
            except HeadlessError:
                in_use = "address already in use" in self.log_tail(4000).lower()
                self.stop()
                if not in_use or attempt == attempts - 1:
                    raise
        self.timings["server_start_s"] = time.monotonic() - t0

    def _launch(self) -> None:
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.command(), cwd=str(self.comfy_root), stdout=self._log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True, env=comfy_host.child_env())
        atexit.register(self.stop)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while not self._answers():
            if time.monotonic() > deadline:
                raise HeadlessError(f"ComfyUI did not answer within {self.startup_timeout:.0f} s; "
                                    f"log {self.log_path}:\n{self.log_tail()}")
            time.sleep(0.5)
        needed = (["LayerMem_LayerMemory"]
                  + ([base_folder.TEST_ENCODER] if self.random_models else [])
                  + ([base_folder.TOY_LOADER] if self.toy_world else []))
        for node in needed:
            if node not in requests.get(f"{self.url}/object_info/{node}", timeout=30).json():
                raise HeadlessError(f"ComfyUI started but node {node} is missing: the custom "
                                    "node pack failed to import. From the log:\n"
                                    + self._import_errors())

    def _answers(self) -> bool:
        """Whether the server serves the pack's nodes yet; raises if it exited while starting."""
        if self.proc.poll() is not None:
            tail = self.log_tail()
            no_gpu = not self.cpu and ("NVIDIA driver" in tail or "CUDA" in tail)
            hint = "\nhint: ComfyUI found no usable GPU; run on the CPU (--cpu)" if no_gpu else ""
            raise HeadlessError(f"ComfyUI exited with code {self.proc.returncode} while starting; "
                                f"log {self.log_path}:\n{tail}{hint}")
        try:
            return requests.get(f"{self.url}/object_info/LayerMemory", timeout=5).status_code == 200
        except requests.RequestException:
            return False

    def _import_errors(self) -> str:
        keys = (comfy_host.PACK_NAME, base_folder.TEST_NODES_NAME, base_folder.TOY_NODES_NAME,
                "Traceback", "Error")
        lines = [ln for ln in self.log_tail(200_000).splitlines() if any(k in ln for k in keys)]
        return "\n".join(lines[-30:])

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

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_bytes()[-chars:].decode("utf-8", "replace")
        except OSError:
            return ""

    def image_folder(self, kind: str) -> Path:
        """Where the server writes images of a type: 'output' or 'temp' (previews)."""
        return self.output_dir if kind == "output" else self.base / kind

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
        """POST /prompt; the prompt id. Raises PromptRejected when no output node is valid."""
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
            on_event: follow.OnEvent | None = None) -> RunResult:
        """Queue the workflow and wait for it. Raises PromptRejected / HeadlessError; node errors
        are in the result."""
        if not self.running:
            raise HeadlessError("the server is not running")
        client_id = uuid.uuid4().hex
        ws = follow.connect(self.port, client_id)
        t0 = time.monotonic()
        try:
            queued = self._post_prompt(prompt, client_id)
            prompt_id = queued["prompt_id"]
            executed = follow.wait_until_done(self, prompt_id, ws, t0, timeout, on_event)
            entry = follow.history_entry(self, prompt_id)
        finally:
            if ws is not None:
                ws.close()
        result = result_from_history(prompt, prompt_id, entry, executed, time.monotonic() - t0,
                                     ws is not None, self.image_folder)
        result.node_errors = queued.get("node_errors") or {}
        return result
