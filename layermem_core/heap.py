"""Give the heap that earlier sampling runs freed back to the OS, before a run on the CPU.

Measured (issue 12, item 8: 512 px, 3 steps, random PixArt-alpha, CPU, 6 chained AddLayer calls
with every output kept alive as ComfyUI's cache keeps it): the live CPU tensors grow by 0.67 MB
per layer (the memory's own data, 0.61 MB, plus the 0.07 MB LATENT output) and the Python heap
by 5 kB, but RSS by 2.4 to 5.2 MB. The rest is glibc's: each run's activations are freed into
the brk heap, whose pages the long-lived layer tensors allocated between them keep from being
returned (mallinfo2: +0.70 MB in use, +1.66 MB free per layer). `malloc_trim(0)` before each run
releases those free pages (about 30 ms here with a 430 MB heap): RSS then grows 0.75 MB per
layer. Only done when sampling on the CPU (on a GPU the activations are not in this heap), and
only where glibc is the allocator; elsewhere this does nothing.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import sys

_TRIM = None


def _malloc_trim():
    global _TRIM
    if _TRIM is None:
        _TRIM = False
        if sys.platform.startswith("linux"):
            try:
                _TRIM = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
            except (OSError, AttributeError):  # musl and others have no malloc_trim
                _TRIM = False
    return _TRIM


def release_free_heap(model) -> None:
    """malloc_trim(0) when `model` samples on the CPU and the C library has it."""
    device = getattr(model, "load_device", None)
    if getattr(device, "type", device) != "cpu":
        return
    trim = _malloc_trim()
    if trim:
        trim(0)
