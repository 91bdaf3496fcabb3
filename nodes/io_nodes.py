"""SaveLayerMemory and LoadLayerMemory: a whole scene as one .safetensors file (no pickle)."""
from __future__ import annotations

import logging
import os

import folder_paths
from comfy_api.latest import io, ui

from ..layermem_core import serialization
from ..layermem_core.errors import LayerMemoryError
from ..layermem_core.labels import STORAGE_EXACT, TRAJECTORY_STORAGE, is_output_name, output_name
from ..layermem_core.model_checks import require_memory
from .memory_paths import (
    DEFAULT_PREFIX,
    checked_prefix,
    content_digest,
    is_inside,
    memory_files,
    resolve_file,
)
from .types import CATEGORY, LayerMemoryType, memory_input

log = logging.getLogger("LayerMemory")



class SaveLayerMemory(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="LayerMem_SaveLayerMemory",
            display_name="Save Layer Memory",
            category=CATEGORY,
            description="Writes the whole layer memory (every layer's prompt embeddings, masks, "
                        "seed and latent trajectory, the schedule and the model fingerprint) to "
                        "ComfyUI's output folder as one .safetensors file: tensors by name, JSON "
                        "metadata in the header, no pickle. Load it again with LoadLayerMemory "
                        "to keep editing the scene without recomputing it.",
            inputs=[
                memory_input("The memory to save (not changed)."),
                io.String.Input("filename_prefix", default="layer_memory/scene",
                                tooltip="File name prefix inside the output folder; a subfolder "
                                        "may be given with '/'. A counter is appended as for "
                                        "images (scene_00001_.safetensors); %date% variables "
                                        "such as %year% work too."),
                io.Combo.Input("trajectory_storage", options=list(TRAJECTORY_STORAGE),
                               default=STORAGE_EXACT,
                               tooltip="float32 stores the memory bit-exactly. float16 halves "
                                       "the file (the per-step latents are nearly all of it): "
                                       "the loaded memory then differs from this one by float16 "
                                       "rounding of the stored trajectories, so layers added "
                                       "after loading match the earlier ones to about 1e-3, not "
                                       "bit for bit."),
            ],
            outputs=[io.String.Output(display_name="file",
                                      tooltip="The saved file as LoadLayerMemory names it: its "
                                              "path in the output folder followed by "
                                              "' [output]'.")],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, memory, filename_prefix: str = DEFAULT_PREFIX,
                trajectory_storage: str = STORAGE_EXACT) -> io.NodeOutput:
        memory = require_memory(memory)
        if trajectory_storage not in TRAJECTORY_STORAGE:
            raise LayerMemoryError("trajectory_storage", f"{trajectory_storage!r} is not an option",
                                   f"choose one of {', '.join(TRAJECTORY_STORAGE)}")
        output_dir = folder_paths.get_output_directory()
        width, height = memory.image_size
        prefix = checked_prefix(filename_prefix)
        try:
            folder, filename, counter, subfolder, _ = folder_paths.get_save_image_path(
                prefix, output_dir, width, height)
        except Exception as e:
            raise LayerMemoryError("filename_prefix",
                                   f"{filename_prefix!r} cannot be used ({type(e).__name__})",
                                   "use a relative prefix inside the output folder, "
                                   f"e.g. {DEFAULT_PREFIX}") from None
        if not is_inside(folder, [os.path.realpath(output_dir)]):
            raise LayerMemoryError("filename_prefix",
                                   f"{filename_prefix!r} leads through a link out of the "
                                   "output folder",
                                   f"use another folder, e.g. {DEFAULT_PREFIX}")
        file = f"{filename}_{counter:05}_{serialization.EXTENSION}"
        path = os.path.join(folder, file)
        try:
            size = serialization.save(memory, path, TRAJECTORY_STORAGE[trajectory_storage])
        except OSError as e:
            raise LayerMemoryError("filename_prefix",
                                   f"the file cannot be written ({e.strerror or type(e).__name__})",
                                   "use a shorter prefix of plain names, and check that the "
                                   "output folder is writable") from None
        relative = "/".join(p for p in (subfolder.replace(os.sep, "/"), file) if p)
        name = output_name(relative)
        text = (f"Saved {relative} in the output folder: {len(memory.layers)} layers, "
                f"{width}x{height}, {size / 2 ** 20:.1f} MiB, "
                f"trajectories {TRAJECTORY_STORAGE[trajectory_storage]}.\n"
                f"LoadLayerMemory lists it as '{name}' (after a refresh); to share it, copy the "
                "file into another ComfyUI's input folder.")
        log.info("SaveLayerMemory: %s (%d bytes)", path, size)
        return io.NodeOutput(name, ui=ui.PreviewText(text))


class LoadLayerMemory(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="LayerMem_LoadLayerMemory",
            display_name="Load Layer Memory",
            category=CATEGORY,
            description="Loads a layer memory saved by SaveLayerMemory and checks the whole file "
                        "first (a truncated, corrupt, foreign or newer-version file is refused "
                        "with the reason). The model is checked when the memory is used: connect "
                        "the same model it was made with.",
            inputs=[
                io.Combo.Input("file", options=memory_files(),
                               tooltip="A .safetensors layer memory. Listed: every .safetensors "
                                       "file in ComfyUI's input folder (put shared files there, "
                                       "subfolders allowed; the upload button of this ComfyUI "
                                       "version takes only images, video and audio), then "
                                       "memories saved by SaveLayerMemory in the output folder, "
                                       "marked '[output]'. Refresh (R) after adding files."),
            ],
            outputs=[
                LayerMemoryType.Output(display_name="memory",
                                       tooltip="The loaded memory, as it was saved."),
                io.Latent.Output(display_name="latent",
                                 tooltip="The composite after the top layer; decode it with "
                                         "VAEDecode."),
                io.String.Output(display_name="layers",
                                 tooltip="One line per layer: index, name, mask area, "
                                         "tokens, seed."),
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
        """Re-run when the file's bytes change: their sha256, hashed once per version of the file
        (ComfyUI writes this value into saved pictures: no path in it)."""
        try:
            path, _ = resolve_file(file)
            return content_digest(path)
        except (OSError, LayerMemoryError):
            return float("nan")  # never equal: re-run and report the problem

    @classmethod
    def validate_inputs(cls, file: str):
        try:
            path, _ = resolve_file(file)
        except LayerMemoryError as e:
            return str(e)
        if not os.path.isfile(path):
            first = ("run the workflow that saves it first (for the continue_scene template: "
                     "run layered_scene first), or " if is_output_name(file.strip()) else "")
            return (f"[LayerMemory] input 'file': {file!r} does not exist. Fix: {first}put the "
                    ".safetensors file into ComfyUI's input folder "
                    f"({folder_paths.get_input_directory()}) and refresh, or choose another.")
        return True
