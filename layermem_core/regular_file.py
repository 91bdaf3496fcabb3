"""Opening a memory file only when it is a plain file.

A FIFO named `x.safetensors` in the input or output folder blocks `open()` until a writer comes
(and a listing that peeks at headers would hang /object_info with it); a character device such as
/dev/zero never ends. Both are refused by their kind, before any read: the path is checked with
stat first (no open of a device at all), then opened without blocking and checked again on the
open descriptor (the name may have been swapped in between).

Pure module: the standard library only.
"""
from __future__ import annotations

import os
import stat
from typing import BinaryIO

_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_BINARY = getattr(os, "O_BINARY", 0)  # Windows


class NotARegularFile(OSError):
    """The path names a folder, FIFO, socket or device, not a file."""

    def __init__(self, kind: str):
        super().__init__(f"it is a {kind}, not a regular file")
        self.kind = kind


def kind_of(mode: int) -> str:
    """What a stat mode names, in words a user knows."""
    if stat.S_ISDIR(mode):
        return "folder"
    if stat.S_ISFIFO(mode):
        return "FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    return "special file"


def require_regular(path: str) -> os.stat_result:
    """The stat of `path` (links followed); NotARegularFile unless it is a plain file."""
    st = os.stat(path)
    if not stat.S_ISREG(st.st_mode):
        raise NotARegularFile(kind_of(st.st_mode))
    return st


def open_regular(path: str) -> BinaryIO:
    """`path` opened for binary reading, refused unless it is a plain file (never blocks)."""
    require_regular(path)
    fd = os.open(path, os.O_RDONLY | _NONBLOCK | _BINARY)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotARegularFile(kind_of(st.st_mode))
        if _NONBLOCK:
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
