"""SaveLayerMemory and LoadLayerMemory: a whole scene as one .safetensors file (no pickle)."""
from __future__ import annotations

import logging
import os

import folder_paths
from comfy_api.latest import io, ui

from ..layermem_core import serialization
from ..layermem_core.errors import LayerMemoryError
from ..layermem_core.model_checks import require_memory
from .types import CATEGORY, LayerMemoryType, memory_input

log = logging.getLogger("LayerMemory")

TRAJECTORY_STORAGE = {"float32 (exact)": "float32", "float16 (half size)": "float16"}
OUTPUT_TAG = " [output]"


def _walk(base: str, keep) -> list[str]:
    """Files under `base` (relative, with '/') ending in .safetensors, for which keep(path) holds."""
    found = []
    if not os.path.isdir(base):
        return found
    for root, dirs, files in os.walk(base):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for f in files:
            if f.lower().endswith(serialization.EXTENSION) and not f.startswith("."):
                full = os.path.join(root, f)
                if keep(full):
                    found.append(os.path.relpath(full, base).replace(os.sep, "/"))
    return sorted(found)


_PEEKED: dict[str, tuple[tuple[int, int], bool]] = {}


def _is_memory_file(path: str) -> bool:
    """Whether a file's header says it is a layer memory; cached by size and mtime (the list is rebuilt often)."""
    try:
        st = os.stat(path)
    except OSError:
        return False
    key = (st.st_size, st.st_mtime_ns)
    hit = _PEEKED.get(path)
    if hit is None or hit[0] != key:
        if len(_PEEKED) > 4096:
            _PEEKED.clear()
        hit = _PEEKED[path] = (key, serialization.peek(path) is not None)
    return hit[1]


def memory_files() -> list[str]:
    """Every .safetensors file in the input folder, then the layer memories saved in the output folder."""
    inputs = _walk(folder_paths.get_input_directory(), lambda p: True)
    outputs = _walk(folder_paths.get_output_directory(), _is_memory_file)
    return inputs + [name + OUTPUT_TAG for name in outputs]


def resolve_file(file: str) -> tuple[str, str]:
    """(full path, name for messages) of a combo value; '... [output]' is in the output folder, else the input folder."""
    name, base = folder_paths.annotated_filepath(file.strip())
    base = base or folder_paths.get_input_directory()
    path = os.path.abspath(os.path.join(base, name))
    try:
        inside = os.path.commonpath((os.path.abspath(base), path)) == os.path.abspath(base)
    except ValueError:  # another drive (Windows)
        inside = False
    if not inside:
        raise LayerMemoryError("file", f"{file!r} points outside ComfyUI's {os.path.basename(base)} folder",
                               "choose a file from the list")
    return path, file.strip()


class SaveLayerMemory(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SaveLayerMemory",
            display_name="Save Layer Memory",
            category=CATEGORY,
            description="Writes the whole layer memory (every layer's prompt embeddings, masks, seed and latent "
                        "trajectory, the schedule and the model fingerprint) to ComfyUI's output folder as one "
                        ".safetensors file: tensors by name, JSON metadata in the header, no pickle. Load it again "
                        "with LoadLayerMemory to keep editing the scene without recomputing it.",
            inputs=[
                memory_input("The memory to save (not changed)."),
                io.String.Input("filename_prefix", default="layer_memory/scene",
                                tooltip="File name prefix inside the output folder; a subfolder may be given with '/'. "
                                        "A counter is appended as for images (scene_00001_.safetensors); %date% "
                                        "variables such as %year% work too."),
                io.Combo.Input("trajectory_storage", options=list(TRAJECTORY_STORAGE), default="float32 (exact)",
                               tooltip="float32 stores the memory bit-exactly. float16 halves the file (the per-step "
                                       "latents are nearly all of it): the loaded memory then differs from this one "
                                       "by float16 rounding of the stored trajectories, so layers added after "
                                       "loading match the earlier ones to about 1e-3, not bit for bit."),
            ],
            outputs=[io.String.Output(display_name="file",
                                      tooltip="The saved file as LoadLayerMemory names it: its path in the output "
                                              "folder followed by ' [output]'.")],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, memory, filename_prefix: str = "layer_memory/scene",
                trajectory_storage: str = "float32 (exact)") -> io.NodeOutput:
        memory = require_memory(memory)
        if trajectory_storage not in TRAJECTORY_STORAGE:
            raise LayerMemoryError("trajectory_storage", f"{trajectory_storage!r} is not an option",
                                   f"choose one of {', '.join(TRAJECTORY_STORAGE)}")
        output_dir = folder_paths.get_output_directory()
        width, height = memory.image_size
        try:
            folder, filename, counter, subfolder, _ = folder_paths.get_save_image_path(
                filename_prefix or "layer_memory/scene", output_dir, width, height)
        except Exception as e:
            raise LayerMemoryError("filename_prefix", f"{filename_prefix!r} cannot be used ({e})",
                                   "use a relative prefix inside the output folder, e.g. layer_memory/scene") from None
        file = f"{filename}_{counter:05}_{serialization.EXTENSION}"
        path = os.path.join(folder, file)
        size = serialization.save(memory, path, TRAJECTORY_STORAGE[trajectory_storage])
        relative = "/".join(p for p in (subfolder.replace(os.sep, "/"), file) if p)
        name = relative + OUTPUT_TAG
        text = (f"Saved {relative} in the output folder: {len(memory.layers)} layers, {width}x{height}, "
                f"{size / 2 ** 20:.1f} MiB, trajectories {TRAJECTORY_STORAGE[trajectory_storage]}.\n"
                f"LoadLayerMemory lists it as '{name}' (after a refresh); to share it, copy the file into another "
                f"ComfyUI's input folder.")
        log.info("SaveLayerMemory: %s (%d bytes)", path, size)
        return io.NodeOutput(name, ui=ui.PreviewText(text))


class LoadLayerMemory(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="LoadLayerMemory",
            display_name="Load Layer Memory",
            category=CATEGORY,
            description="Loads a layer memory saved by SaveLayerMemory and checks the whole file first (a truncated, "
                        "corrupt, foreign or newer-version file is refused with the reason). The model is checked "
                        "when the memory is used: connect the same PixArt model it was made with.",
            inputs=[
                io.Combo.Input("file", options=memory_files(),
                               tooltip="A .safetensors layer memory. Listed: every .safetensors file in ComfyUI's input "
                                       "folder (put shared files there, subfolders allowed; the upload button of "
                                       "this ComfyUI version takes only images, video and audio), then memories "
                                       "saved by SaveLayerMemory in the output folder, marked '[output]'. "
                                       "Refresh (R) after adding files."),
            ],
            outputs=[
                LayerMemoryType.Output(display_name="memory", tooltip="The loaded memory, as it was saved."),
                io.Latent.Output(display_name="latent", tooltip="The composite after the top layer; decode it with VAEDecode."),
                io.String.Output(display_name="layers", tooltip="One line per layer: index, name, mask area, seed, prompt."),
            ],
        )

    @classmethod
    def execute(cls, file: str) -> io.NodeOutput:
        from .inspect_nodes import layer_table

        path, name = resolve_file(file)
        memory = serialization.load(path, name, "file")
        return io.NodeOutput(memory, memory.composite_latent(), layer_table(memory))

    @classmethod
    def fingerprint_inputs(cls, file: str):
        """Re-run when the file is replaced or edited (size, modification time, inode), without hashing it."""
        try:
            path, _ = resolve_file(file)
            st = os.stat(path)
        except (OSError, LayerMemoryError):
            return float("nan")  # never equal: re-run and report the problem
        return f"{path}|{st.st_size}|{st.st_mtime_ns}|{st.st_ino}"

    @classmethod
    def validate_inputs(cls, file: str):
        try:
            path, _ = resolve_file(file)
        except LayerMemoryError as e:
            return str(e)
        if not os.path.isfile(path):
            first = ("run the workflow that saves it first (for the continue_scene template: run layered_scene "
                     "first), or " if file.strip().endswith(OUTPUT_TAG) else "")
            return (f"[LayerMemory] input 'file': {file!r} does not exist. Fix: {first}put the .safetensors file "
                    f"into ComfyUI's input folder ({folder_paths.get_input_directory()}) and refresh, or choose another.")
        return True
