"""LayerMemory (start a scene), AddLayer and DeleteLayer."""
from __future__ import annotations

from comfy_api.latest import io

from ..layermem_core import crop, layer_ops
from ..layermem_core.labels import CATEGORY
from .layer_choices import choices_ui
from .types import (
    background_name_input,
    compute_inputs,
    encoders_text,
    grow_input,
    layer_outputs,
    memory_input,
    model_input,
    schedule_inputs,
    seed_input,
    size_input,
)


class LayerMemoryNode(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="LayerMem_LayerMemory",
            display_name="Layer Memory (background)",
            category=CATEGORY,
            description="Generates the background and starts a layer-wise memory that records the "
                        "latent trajectory of every step. The schedule (sigmas, sampler, cfg) "
                        "chosen here is fixed for the memory's life.",
            inputs=[
                model_input(),
                io.Conditioning.Input("positive", tooltip="Background prompt, encoded by the "
                                                          "model's text encoder ("
                                                          f"{encoders_text()})."),
                io.Conditioning.Input("negative", tooltip="Negative prompt; later layers reuse it "
                                                          "unless they bring their own."),
                size_input("width"),
                size_input("height"),
                seed_input("Noise seed of the background."),
                *schedule_inputs("every layer"),
                background_name_input("background"),
            ],
            outputs=layer_outputs(),
        )

    @classmethod
    def execute(cls, model, positive, negative, width, height, seed, steps, cfg, sampler_name,
                scheduler, name: str = "background") -> io.NodeOutput:
        memory = layer_ops.start_memory(model, positive, negative, width, height, seed, steps, cfg,
                                        sampler_name, scheduler, name=name)
        return io.NodeOutput(memory, memory.composite_latent())


class AddLayerNode(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="LayerMem_AddLayer",
            display_name="Add Layer (MQD + BCG)",
            category=CATEGORY,
            description="Places a new object inside a rough mask, in front of every earlier layer. "
                        "Outside the mask the composite follows the memory's stored trajectory "
                        "(BCG); inside the model's cross-attention each region attends to its own "
                        "layer's prompt (MQD).",
            inputs=[
                memory_input(),
                model_input(),
                io.Conditioning.Input("positive", tooltip="The object's prompt, encoded by the "
                                                          "model's text encoder."),
                io.Mask.Input("mask", tooltip="Rough region of the object, any size with the "
                                              "image's aspect ratio; resized to the latent grid."),
                seed_input("Noise seed of this layer."),
                io.Boolean.Input("use_mqd", default=True,
                                 tooltip="Route each region's cross-attention to its own layer's "
                                         "prompt. Off: the whole image attends to the new prompt "
                                         "(the '+BCG' arm)."),
                grow_input(0, "Grow the mask by this many latent pixels (8 image pixels each) "
                              "before use."),
                io.Int.Input("feather", default=0, min=0, max=32,
                             tooltip="Soften the mask edge over this many latent pixels; soft "
                                     "edges blend by their value."),
                io.Float.Input("unblended_fraction", default=0.0, min=0.0, max=0.95, step=0.05,
                               tooltip="Fraction of final steps left unblended so the edges "
                                       "harmonise. 0 keeps everything outside the mask exact."),
                io.Conditioning.Input("negative", optional=True,
                                      tooltip="Negative prompt for this layer; default: the top "
                                              "layer's."),
                io.String.Input("name", default="", optional=True,
                                tooltip="Layer name, usable in DeleteLayer; default 'layer N'. "
                                        "Not a number (numbers choose layers by index). "
                                        "Putting the prompt text here helps ListLayers."),
                io.Int.Input("position", default=-1, min=-1, max=4096, optional=True,
                             tooltip="Where the layer goes in the stack: -1 = on top (default); "
                                     "1 = right above the background, pushing the layers from 1 "
                                     "up one place. Newer layers stay in front of it, bit-exact "
                                     "inside their masks."),
                *compute_inputs("the mask"),
            ],
            outputs=layer_outputs(),
        )

    @classmethod
    def execute(cls, memory, model, positive, mask, seed, use_mqd=True, grow=0, feather=0,
                unblended_fraction=0.0, negative=None, name: str = "",
                position: int = -1, compute: str = crop.WHOLE,
                context_margin: int = crop.DEFAULT_MARGIN) -> io.NodeOutput:
        new = layer_ops.add_layer(memory, model, positive, mask, seed, grow_pixels=grow,
                                  feather_pixels=feather, use_mqd=use_mqd,
                                  unblended_fraction=unblended_fraction, negative=negative,
                                  name=name, position=position, compute=compute,
                                  context_margin=context_margin)
        return io.NodeOutput(new, new.composite_latent())


class DeleteLayerNode(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="LayerMem_DeleteLayer",
            display_name="Delete Layer",
            category=CATEGORY,
            description="Removes a layer from every stored composite (also where newer layers hid "
                        "it or blended over it), so it never comes back through history or later "
                        "deletions. In its visible region the composite from before it is restored "
                        "part-way through the schedule and denoised to the end with MQD routing "
                        "that region to what lies below. Everything else stays bit-identical. "
                        "Deleting the top layer costs no sampling.",
            inputs=[
                memory_input(),
                model_input(),
                io.String.Input("layer", default="-1",
                                tooltip="Layer index (1 = first object, -1 = top) or layer name. "
                                        "The background (0) cannot be deleted."),
                io.Float.Input("regenerate_fraction", default=0.4, min=0.0, max=1.0, step=0.05,
                               tooltip="Fraction of final steps regenerated in the freed region "
                                       "(0.4 = the paper's tau = 8 of 20). 1.0 regenerates from "
                                       "the first step; 0 shows exactly what was below the layer, "
                                       "with no sampling."),
                seed_input("Noise seed (used by ancestral and SDE samplers)."),
                grow_input(2, "Grow the freed region by this many latent pixels (never into newer "
                              "layers) so edges heal."),
                io.Float.Input("unblended_fraction", default=0.0, min=0.0, max=0.95, step=0.05,
                               optional=True,
                               tooltip="Fraction of final steps in which the whole picture is "
                                       "denoised freely so the edges settle (at most "
                                       "regenerate_fraction). 0 keeps everything outside the freed "
                                       "region bit-exact; 0.2 with regenerate_fraction 0.4 is the "
                                       "paper's deletion (blend until tau/2, then free)."),
                *compute_inputs("the freed region (the heal)"),
            ],
            outputs=layer_outputs(),
        )

    @classmethod
    def execute(cls, memory, model, layer, regenerate_fraction, seed, grow=2,
                unblended_fraction=0.0, compute: str = crop.WHOLE,
                context_margin: int = crop.DEFAULT_MARGIN) -> io.NodeOutput:
        new = layer_ops.delete_layer(memory, model, layer, regenerate_fraction=regenerate_fraction,
                                     seed=seed, heal_grow_pixels=grow,
                                     unblended_fraction=unblended_fraction, compute=compute,
                                     context_margin=context_margin)
        return io.NodeOutput(new, new.composite_latent(),
                             ui=choices_ui(memory, allow_background=False))
