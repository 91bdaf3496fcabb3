"""Where memory files live: listing them, resolving a chosen name, and checking a save prefix.

No file can break the list (LoadLayerMemory's schema is built from it: an exception here answers
/object_info with 500 and hides the node): a file that cannot be read is left out and logged
once. Every path is resolved with its links followed and must lie inside ComfyUI's input or
output folder.
"""
from __future__ import annotations

import hashlib
import logging
import os
import unicodedata

import folder_paths

from ..layermem_core import serialization
from ..layermem_core.errors import LayerMemoryError
from ..layermem_core.labels import output_name
from ..layermem_core.regular_file import NotARegularFile, open_regular, require_regular

log = logging.getLogger("LayerMemory")

DEFAULT_PREFIX = "layer_memory/scene"
MAX_NAME_BYTES = 200  # a file name may have 255; the counter and extension take 19 more
_CHOOSE = "choose a file from the list"
_PEEKED: dict[str, tuple[tuple[int, int], bool]] = {}
_LOGGED: set[tuple[str, str]] = set()
_DIGESTS: dict[tuple, str] = {}


def _log_once(path: str, reason: str) -> None:
    if (path, reason) not in _LOGGED and len(_LOGGED) < 10_000:
        _LOGGED.add((path, reason))
        log.warning("LoadLayerMemory: %s is left out of the list: %s", path, reason)


def _real_bases() -> list[str]:
    return [os.path.realpath(d) for d in (folder_paths.get_input_directory(),
                                           folder_paths.get_output_directory())]


def is_inside(path: str, bases: list[str]) -> bool:
    """Whether `path`, with every link followed, lies inside one of the (real) `bases`."""
    real = os.path.realpath(path)
    for base in bases:
        try:
            if os.path.commonpath((base, real)) == base:
                return True
        except ValueError:  # another drive (Windows)
            continue
    return False


def _lexically_inside(path: str, folder: str) -> bool:
    try:
        return os.path.commonpath((folder, path)) == folder
    except ValueError:  # another drive (Windows)
        return False


def _is_memory_file(path: str) -> bool:
    """Whether a file's header says it is a layer memory; cached by size and mtime."""
    st = require_regular(path)
    key = (st.st_size, st.st_mtime_ns)
    hit = _PEEKED.get(path)
    if hit is None or hit[0] != key:
        if len(_PEEKED) > 4096:
            _PEEKED.clear()
        hit = _PEEKED[path] = (key, serialization.peek(path) is not None)
    return hit[1]


def _walk(base: str, memories_only: bool, bases: list[str]) -> list[str]:
    """Files under `base` ending in .safetensors (relative, with '/'), links kept inside; no
    FIFO, socket or device (opening one would block the listing)."""
    found: list[str] = []
    if not os.path.isdir(base):
        return found
    for root, dirs, files in os.walk(base):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for f in files:
            if not f.lower().endswith(serialization.EXTENSION) or f.startswith("."):
                continue
            full = os.path.join(root, f)
            try:
                if not is_inside(full, bases):
                    _log_once(full, "it links to a file outside ComfyUI's input and output folders")
                elif _is_memory_file(full) if memories_only else bool(require_regular(full)):
                    found.append(os.path.relpath(full, base).replace(os.sep, "/"))
            except NotARegularFile as e:
                _log_once(full, str(e))
            except (OSError, ValueError) as e:
                _log_once(full, f"it cannot be read ({type(e).__name__})")
    return sorted(found)


def memory_files() -> list[str]:
    """Every .safetensors file in the input folder, then the layer memories in the output folder.
    Never raises: the node's schema is built from this list."""
    try:
        bases = _real_bases()
        inputs = _walk(folder_paths.get_input_directory(), False, bases)
        outputs = _walk(folder_paths.get_output_directory(), True, bases)
        return inputs + [output_name(name) for name in outputs]
    except Exception:  # noqa: BLE001 - whatever happens, the node stays available
        log.exception("LoadLayerMemory: listing the memory files failed; the list is empty")
        return []


def content_digest(path: str) -> str:
    """sha256 of a file's bytes, computed once per version of the file (size, modification time,
    inode): LoadLayerMemory's change fingerprint. ComfyUI writes a node's fingerprint into every
    saved picture's prompt metadata, so it must not hold the server's folders (a path or inode
    would leak them into shared pictures) and should be the same on every machine."""
    st = require_regular(path)
    key = (path, st.st_size, st.st_mtime_ns, st.st_ino)
    if key not in _DIGESTS:
        if len(_DIGESTS) > 256:
            _DIGESTS.clear()
        h = hashlib.sha256()
        with open_regular(path) as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        _DIGESTS[key] = h.hexdigest()
    return _DIGESTS[key]


def resolve_file(file: str) -> tuple[str, str]:
    """(real path, name for messages) of a combo value: '... [output]' in the output folder,
    else the input folder; refused when it (or a link on its way) leads outside both."""
    if not isinstance(file, str) or "\x00" in file:
        raise LayerMemoryError("file", "the file name is not valid text", _CHOOSE)
    name, base = folder_paths.annotated_filepath(file.rstrip())
    base = base or folder_paths.get_input_directory()
    path = os.path.abspath(os.path.join(base, name))
    if not os.path.exists(path) and name.strip() != name:  # typed by hand with spaces around it
        path = os.path.abspath(os.path.join(base, name.strip()))
    shown, folder = file.strip(), os.path.abspath(base)
    if not _lexically_inside(path, folder):
        raise LayerMemoryError("file", f"{shown!r} points outside ComfyUI's "
                               f"{os.path.basename(base)} folder", _CHOOSE)
    if not is_inside(path, _real_bases()):
        raise _outside_error(shown, base)
    try:
        if os.path.exists(path):
            require_regular(path)
    except NotARegularFile as e:
        raise LayerMemoryError("file", f"{shown!r} is a {e.kind}, not a memory file",
                               "choose a .safetensors file saved by SaveLayerMemory") from None
    return os.path.realpath(path), shown


def _outside_error(shown: str, base: str) -> LayerMemoryError:
    """Why a file inside its own folder is still not loaded: the folder (a ' [temp]' name), or a
    link on the way out of the input and output folders."""
    if not is_inside(base, _real_bases()):
        return LayerMemoryError("file", f"{shown!r} names a file in ComfyUI's "
                                f"{os.path.basename(os.path.normpath(base))} folder; memories "
                                "are loaded only from the input and output folders",
                                "save the memory with SaveLayerMemory (it goes to the output "
                                "folder) or copy the file into the input folder, then choose it "
                                "from the list")
    return LayerMemoryError("file", f"{shown!r} is a link to a file outside ComfyUI's input and "
                            "output folders", "choose a file from the list, or copy the file in")


def checked_prefix(prefix: str | None) -> str:
    """SaveLayerMemory's prefix, normalised (spaces around each part removed; blank gives the
    default) or refused when the file it names could not be listed and loaded back."""
    text = prefix or ""
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise LayerMemoryError("filename_prefix", "it holds a control character (such as NUL)",
                               f"use letters, digits, '_', '-' and '/' (e.g. {DEFAULT_PREFIX})")
    hidden = next((c for c in text if unicodedata.category(c) == "Cf"), None)
    if hidden is not None:
        raise LayerMemoryError("filename_prefix", f"it holds the invisible format character "
                               f"U+{ord(hidden):04X} (such as a right-to-left override), which "
                               "makes the file name display differently from what it is",
                               f"use letters, digits, '_', '-' and '/' (e.g. {DEFAULT_PREFIX})")
    if text.strip().startswith(("/", "\\")) or (len(text) > 1 and text[1] == ":"):
        raise LayerMemoryError("filename_prefix", "it is an absolute path",
                               f"use a prefix inside the output folder, e.g. {DEFAULT_PREFIX}")
    parts = [p.strip() for p in text.split("/") if p.strip()]
    for part in parts:
        if part.startswith("."):
            raise LayerMemoryError("filename_prefix", f"the part {part[:40]!r} starts with '.' "
                                   "(hidden, or a step out of the output folder)",
                                   f"use e.g. {DEFAULT_PREFIX}")
        try:
            size = len(part.encode("utf-8"))
        except UnicodeEncodeError:
            size = MAX_NAME_BYTES + 1
        if size > MAX_NAME_BYTES:
            raise LayerMemoryError("filename_prefix", f"a part of it is {size} bytes long (at "
                                   f"most {MAX_NAME_BYTES} per folder or file name)",
                                   "use a shorter prefix")
    return "/".join(parts) or DEFAULT_PREFIX
