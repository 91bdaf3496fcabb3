"""The custom edge type and the input definitions several nodes share."""
from __future__ import annotations

import comfy.samplers
from comfy_api.latest import io

from ..layermem_core import crop, families
from ..layermem_core.labels import CATEGORY

__all__ = ["CATEGORY", "LayerMemoryType", "memory_input", "model_input", "seed_input", "grow_input",
           "schedule_inputs", "background_name_input", "memory_output", "latent_output",
           "layer_outputs", "size_input", "encoders_text", "compute_inputs"]

LayerMemoryType = io.Custom("LAYER_MEMORY")


def memory_input(
        tooltip: str = "The layer-wise memory (never changed: every node returns a new one).",
) -> io.Input:
    return LayerMemoryType.Input("memory", tooltip=tooltip)


def model_input() -> io.Input:
    return io.Model.Input("model", tooltip="The MODEL the memory was made with ("
                                           f"{families.loaders()}).")


def encoders_text() -> str:
    """Which text encoder each family's prompts come from, for tooltips."""
    return "; ".join(f"{f.label}: {f.encoder}" for f in families.FAMILIES.values())


def size_input(side: str) -> io.Input:
    """Width or height of a new memory, with every family's size rule in the tooltip."""
    import nodes as comfy_nodes

    rules = "; ".join(f"{f.label}: a multiple of {f.size_multiple}, at least {f.min_size}"
                      for f in families.FAMILIES.values())
    return io.Int.Input(side, default=1024, min=64, max=comfy_nodes.MAX_RESOLUTION, step=8,
                        tooltip=f"Image {side} in pixels. {rules}.")


def background_name_input(default: str) -> io.Input:
    return io.String.Input("name", default=default, optional=True,
                           tooltip="Name of the background layer.")


def seed_input(tooltip: str = "Noise seed for this sampling run.") -> io.Input:
    return io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF,
                        control_after_generate=True,
                        tooltip=tooltip + " Its control starts on 'fixed' (a re-run keeps the "
                                          "scene); 'randomize' samples anew each run.")


def grow_input(default: int, tooltip: str) -> io.Input:
    return io.Int.Input("grow", default=default, min=0, max=64, step=1, tooltip=tooltip)


def memory_output() -> io.Output:
    return LayerMemoryType.Output(display_name="memory",
                                  tooltip="A new memory with the change recorded.")


def latent_output() -> io.Output:
    return io.Latent.Output(display_name="latent",
                            tooltip="The composite after this step; decode it with VAEDecode.")


def layer_outputs() -> list[io.Output]:
    """What every node that changes a memory returns: the new memory and its top composite."""
    return [memory_output(), latent_output()]


def schedule_inputs(later: str = "every layer") -> list[io.Input]:
    """Steps, cfg, sampler and scheduler: fixed when a memory starts, replayed by `later`."""
    return [
        io.Int.Input("steps", default=20, min=1, max=200,
                     tooltip=f"Denoising steps; {later} uses the same."),
        io.Float.Input("cfg", default=4.5, min=0.0, max=30.0, step=0.1, round=0.01,
                       tooltip=f"Classifier-free guidance scale for {later}."),
        io.Combo.Input("sampler_name", options=comfy.samplers.SAMPLER_NAMES, default="dpmpp_2m",
                       tooltip=f"Sampler for {later}. Fixed-step samplers (euler, dpmpp_2m, "
                               "ancestral and SDE ones too) keep earlier layers bit-exact outside "
                               "each new mask; dpm_adaptive is refused (its number of model "
                               "calls is not fixed by steps)."),
        io.Combo.Input("scheduler", options=comfy.samplers.SCHEDULER_NAMES, default="karras",
                       tooltip=f"Sigma schedule for {later}."),
    ]


def compute_inputs(region: str) -> list[io.Input]:
    """`compute` and `context_margin` (issue 25), optional: old workflows compute over the whole
    picture as before."""
    return [
        io.Combo.Input("compute", options=list(crop.COMPUTE_CHOICES), default=crop.WHOLE,
                       optional=True,
                       tooltip=f"'{crop.WHOLE}': the model runs over the whole picture. "
                               f"'{crop.AROUND}': only over the crop around {region} plus "
                               "context_margin (cheaper for small masks; at least 512 px a side "
                               "for PixArt); everything outside the crop stays bit-exact. A crop "
                               "of almost the whole picture runs over the whole picture."),
        io.Int.Input("context_margin", default=crop.DEFAULT_MARGIN, min=0, max=8192, step=8,
                     optional=True,
                     tooltip="Pixels of context around the region's bounding box that the model "
                             "sees when computing around the mask."),
    ]
