"""The custom edge type and the input definitions several nodes share."""
from __future__ import annotations

from comfy_api.latest import io

from ..layermem_core.labels import CATEGORY

__all__ = ["CATEGORY", "LayerMemoryType", "memory_input", "model_input", "seed_input", "grow_input",
           "memory_output", "latent_output"]

LayerMemoryType = io.Custom("LAYER_MEMORY")


def memory_input(
        tooltip: str = "The layer-wise memory (never changed: every node returns a new one).",
) -> io.Input:
    return LayerMemoryType.Input("memory", tooltip=tooltip)


def model_input() -> io.Input:
    return io.Model.Input("model", tooltip="The PixArt MODEL the memory was made with "
                                           "(PixArt-alpha 512/1024 or PixArt-Sigma).")


def seed_input(tooltip: str = "Noise seed for this sampling run.") -> io.Input:
    return io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF,
                        control_after_generate=True, tooltip=tooltip)


def grow_input(default: int, tooltip: str) -> io.Input:
    return io.Int.Input("grow", default=default, min=0, max=64, step=1, tooltip=tooltip)


def memory_output() -> io.Output:
    return LayerMemoryType.Output(display_name="memory",
                                  tooltip="A new memory with the change recorded.")


def latent_output() -> io.Output:
    return io.Latent.Output(display_name="latent",
                            tooltip="The composite after this step; decode it with VAEDecode.")
