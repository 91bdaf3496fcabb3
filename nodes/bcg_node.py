"""BCGBlend: Background Consistency Guidance for ComfyUI's stock samplers."""
from __future__ import annotations

from comfy_api.latest import io

from ..layermem_core import bcg, checks, masks, model_checks
from .types import CATEGORY, grow_input, memory_input, model_input


class BCGBlend(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="LayerMem_BCGBlend",
            display_name="BCG Blend (patch MODEL)",
            category=CATEGORY,
            description="Patches a MODEL so that KSampler / SamplerCustomAdvanced sample inside "
                        "the mask while everything outside follows the memory's stored trajectory. "
                        "With the memory's steps, sampler and scheduler (denoise 1.0) it is exact; "
                        "otherwise it falls back to latent blending with the memory's final latent "
                        "re-noised, and says so in the log.",
            inputs=[
                model_input(),
                memory_input("The memory whose top layer the region outside the mask follows."),
                io.Mask.Input("mask", tooltip="Region the sampler may change; any size with the "
                                              "image's aspect ratio."),
                grow_input(0, "Grow the mask by this many latent pixels."),
                io.Int.Input("feather", default=0, min=0, max=32,
                             tooltip="Soften the mask edge over this many latent pixels."),
            ],
            outputs=[io.Model.Output(display_name="MODEL",
                                     tooltip="A patched clone; the input MODEL is unchanged. "
                                             "Sample an empty latent of the memory's size, "
                                             "batch 1.")],
        )

    @classmethod
    def execute(cls, model, memory, mask, grow=0, feather=0) -> io.NodeOutput:
        memory = model_checks.require_memory(memory)
        model_checks.require_same_model(memory, model)
        checks.require_finite_mask(mask)
        latent_mask = masks.prepare_layer_mask(mask, memory.latent_hw, grow, feather)
        patched = model.clone()
        bcg.install(patched,
                    bcg.BCGSpec(free_mask=latent_mask, reference=memory.top.trajectory,
                                schedule_sigmas=memory.schedule.sigmas,
                                sampler_name=memory.schedule.sampler_name, label="BCGBlend"))
        return io.NodeOutput(patched)
