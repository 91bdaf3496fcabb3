"""Following a queued prompt until ComfyUI is done with it: its websocket, else polling /history.

The websocket (websocket-client) gives live progress and the exact order the nodes ran in;
without it, /history is polled and a finished run is read from there alone.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable

import requests

from .errors import HeadlessError

try:
    import websocket
except ImportError:  # pragma: no cover
    websocket = None

FINAL_EVENTS = ("execution_success", "execution_error", "execution_interrupted")
OnEvent = Callable[[str, dict], None]


def connect(port: int, client_id: str):
    """The server's websocket for `client_id`, or None without websocket-client."""
    if websocket is None:
        return None
    ws = websocket.create_connection(f"ws://127.0.0.1:{port}/ws?clientId={client_id}", timeout=30)
    ws.settimeout(1.0)
    return ws


def wait_until_done(server, prompt_id: str, ws, started: float, timeout: float,
                    on_event: OnEvent | None) -> list[str]:
    """Block until the prompt finished; returns the node ids in the order they ran (websocket)."""
    executed: list[str] = []
    while True:
        _check_running(server, started + timeout, timeout)
        if _finished(server, prompt_id, ws, executed, on_event):
            return executed


def _check_running(server, deadline: float, timeout: float) -> None:
    if not server.running:
        raise HeadlessError(f"ComfyUI died while running the workflow; log {server.log_path}:\n"
                            f"{server.log_tail()}")
    if time.monotonic() > deadline:
        requests.post(server.url + "/interrupt", timeout=10)
        raise HeadlessError(f"the workflow did not finish within {timeout:.0f} s (interrupted)")


def _finished(server, prompt_id: str, ws, executed: list[str], on_event: OnEvent | None) -> bool:
    if ws is None:
        time.sleep(0.25)
        return server.history(prompt_id) is not None
    try:
        raw = ws.recv()
    except websocket.WebSocketTimeoutException:  # quiet for a second: it may have finished already
        return server.history(prompt_id) is not None
    if not isinstance(raw, str):  # binary frames are preview images
        return False
    return _on_message(json.loads(raw), prompt_id, executed, on_event)


def _on_message(msg: dict, prompt_id: str, executed: list[str], on_event: OnEvent | None) -> bool:
    kind, data = msg.get("type"), msg.get("data") or {}
    if data.get("prompt_id") != prompt_id:
        return False
    if kind == "executing" and data.get("node") is not None and data["node"] not in executed:
        executed.append(str(data["node"]))
    if on_event:
        on_event(kind, data)
    return kind in FINAL_EVENTS


def history_entry(server, prompt_id: str) -> dict:
    """The /history entry of a finished prompt (stored right after the final websocket message)."""
    for _ in range(200):
        entry = server.history(prompt_id)
        if entry is not None:
            return entry
        time.sleep(0.1)
    raise HeadlessError(f"prompt {prompt_id} finished but has no /history entry")
