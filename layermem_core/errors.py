"""One error type, so every refusal names the input and the fix in the same shape."""
from __future__ import annotations


class LayerMemoryError(ValueError):
    """Raised before any sampling starts; no memory object is changed when it is."""

    def __init__(self, input_name: str, problem: str, fix: str):
        self.input_name = input_name
        self.problem = problem
        self.fix = fix
        super().__init__(f"[LayerMemory] input '{input_name}': {problem}. Fix: {fix}")
