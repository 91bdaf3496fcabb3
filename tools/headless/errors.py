"""The two failures a headless run reports as exceptions (node errors go into the RunResult)."""
from __future__ import annotations


class HeadlessError(RuntimeError):
    """The server could not be started or stopped working."""


class PromptRejected(HeadlessError):
    """ComfyUI's validation refused the workflow (HTTP 400 from /prompt)."""

    def __init__(self, message: str, response: dict):
        super().__init__(message)
        self.response = response
