"""What a run did, read from ComfyUI's /history, and its errors as text a person can act on."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


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
    # execution_error data: node_id, node_type, exception_type, exception_message, traceback
    error: dict | None = None
    prompt: dict = field(default_factory=dict, repr=False)
    # ComfyUI runs the output nodes that validate and silently drops the others: their errors,
    node_errors: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "success" and not self.node_errors

    def describe_error(self, with_traceback: bool | None = None) -> str:
        """What went wrong: output nodes ComfyUI dropped at validation, and the node that failed
        while running ('node 13 (AddLayer 'title') failed: Type: message', plus the traceback's
        last lines; by default only for unexpected exceptions: the pack's LayerMemoryError
        already says what to fix)."""
        parts = []
        if self.node_errors:
            dropped = {"message": "some output nodes failed validation and did not run"}
            parts.append(format_rejection({"error": dropped, "node_errors": self.node_errors},
                                          self.prompt))
        if self.error is not None:
            parts.append(_describe_failure(self.prompt, self.error, with_traceback))
        elif self.status != "success":
            parts.append(f"ComfyUI reported '{self.status}' without details")
        return "\n".join(parts)


def _describe_failure(prompt: dict, error: dict, with_traceback: bool | None) -> str:
    node = node_label(prompt, str(error.get("node_id")), error.get("node_type"))
    # ComfyUI gives the exception's full module path
    kind = str(error.get("exception_type", "Error")).rsplit(".", 1)[-1]
    text = f"{node} failed: {kind}: {str(error.get('exception_message', '')).strip()}"
    show = kind != "LayerMemoryError" if with_traceback is None else with_traceback
    tail = "".join(error.get("traceback") or []).rstrip().splitlines()[-8:]
    if show and tail:
        text += "\n  traceback (last lines):\n    " + "\n    ".join(tail)
    return text


def node_label(prompt: dict, node_id: str, class_type: str | None = None) -> str:
    """'node 13 (AddLayer 'title')': how messages name a node of `prompt`."""
    node = prompt.get(node_id, {})
    class_type = class_type or node.get("class_type", "?")
    title = node.get("_meta", {}).get("title")
    named = f" '{title}'" if title and title != class_type else ""
    return f"node {node_id} ({class_type}{named})"


def format_rejection(response: dict, prompt: dict) -> str:
    """ComfyUI's /prompt 400 answer, one line per failing node input."""
    err = response.get("error", {})
    message = err.get("message", err) if isinstance(err, dict) else err
    details = f" ({err.get('details')})" if isinstance(err, dict) and err.get("details") else ""
    lines = [f"ComfyUI rejected the workflow: {message}{details}"]
    for node_id, info in (response.get("node_errors") or {}).items():
        label = node_label(prompt, str(node_id), info.get("class_type"))
        for e in info.get("errors", []):
            lines.append(f"  {label}: {e.get('message')}{_short_details(e)}")
    return "\n".join(lines)


def _short_details(error: dict) -> str:
    details = str(error.get("details", ""))
    if len(details) > 300:
        details = details[:300] + " ..."
    return f": {details}" if details else ""


def result_from_history(prompt: dict, prompt_id: str, entry: dict, executed: list[str],
                        seconds: float, from_ws: bool, folder: Callable[[str], Path]) -> RunResult:
    """The RunResult of one /history entry; `folder` gives the folder of an image type (output,
    temp); without the websocket (`from_ws` False), every node not cached counts as executed."""
    status = entry.get("status") or {}
    messages = status.get("messages") or []
    cached, error, state = _read_messages(messages, status.get("status_str") or "unknown")
    if not from_ws:
        done = set(error.get("executed", [])) if error else None
        executed = [n for n in prompt if n not in cached and (done is None or n in done)]
    outputs = entry.get("outputs") or {}
    return RunResult(prompt_id=prompt_id, status=state, seconds=seconds, executed=executed,
                     cached=cached, images=_images(prompt, outputs, folder), outputs=outputs,
                     messages=messages, error=error, prompt=prompt)


def _read_messages(messages: list, state: str) -> tuple[list[str], dict | None, str]:
    """(cached node ids, execution_error data, final state) from /history status messages."""
    cached: list[str] = []
    error = None
    for kind, data in messages:
        if kind == "execution_cached":
            cached += [str(n) for n in data.get("nodes", [])]
        elif kind == "execution_error":
            error = data
        elif kind == "execution_interrupted":
            state = "interrupted"
    return cached, error, state


def _images(prompt: dict, outputs: dict, folder: Callable[[str], Path]) -> list[Path]:
    """Image files the output nodes wrote, in the workflow's node order."""
    in_order = [n for n in prompt if n in outputs] + [n for n in outputs if n not in prompt]
    images = []
    for node_out in (outputs[n] for n in in_order):
        for img in node_out.get("images", []):
            where = folder(img.get("type", "temp")) / img.get("subfolder", "")
            images.append(where / img["filename"])
    return images
