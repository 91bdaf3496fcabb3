"""Look back into a memory: undo to any layer, rename layers, preview the layers outlined."""
from __future__ import annotations

import torch
from comfy_api.latest import io, ui

from ..layermem_core import preview
from ..layermem_core.errors import LayerMemoryError
from ..layermem_core.memory import check_layer_name
from ..layermem_core.model_checks import require_memory
from .inspect_nodes import layer_table
from .layer_choices import choices_ui
from .types import CATEGORY, LayerMemoryType, latent_output, memory_input


def _layer_input(default: str, tooltip: str) -> io.Input:
    return io.String.Input("layer", default=default, tooltip=tooltip)


class LayerMemoryHistory(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="LayerMem_LayerMemoryHistory",
            display_name="Layer History (undo)",
            category=CATEGORY,
            description="Goes back to the scene as it was right after layer k, without any "
                        "sampling: returns the composite stored for that layer and the memory "
                        "holding layers 0..k only (undo everything added after it). The input "
                        "memory is not changed, so other branches keep all layers.",
            inputs=[
                memory_input(),
                _layer_input("-1", "The last layer to keep: index (0 = background, 1 = first "
                                   "object), a negative index from the top (-1 = all layers, -2 = "
                                   "undo the top layer), or a layer name (the top-most layer of "
                                   "that name)."),
            ],
            outputs=[
                LayerMemoryType.Output(display_name="memory",
                                       tooltip="The memory truncated after layer k: continue "
                                               "editing from there (AddLayer, DeleteLayer...)."),
                latent_output(),
            ],
        )

    @classmethod
    def execute(cls, memory, layer: str = "-1") -> io.NodeOutput:
        memory = require_memory(memory)
        index = memory.resolve(layer, "layer", allow_background=True)
        kept = memory if index == len(memory.layers) - 1 else memory.truncated(index + 1)
        return io.NodeOutput(kept, memory.composite_latent(index), ui=choices_ui(memory))


class RenameLayer(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="LayerMem_RenameLayer",
            display_name="Rename Layer",
            category=CATEGORY,
            description="Gives a layer a new name, usable wherever a layer is chosen (DeleteLayer, "
                        "Layer History). Only the name changes: no tensor is touched or copied, "
                        "and the input memory keeps its names.",
            inputs=[
                memory_input(),
                _layer_input("-1", "The layer to rename: index (0 = background, 1 = first object, "
                                   "-1 = top) or its current name."),
                io.String.Input("new_name", default="",
                                tooltip="The new name. Not a number (numbers choose layers by "
                                        "index); if several layers share a name, a name picks the "
                                        "top-most of them."),
            ],
            outputs=[LayerMemoryType.Output(display_name="memory",
                                            tooltip="A new memory with the layer renamed.")],
        )

    @classmethod
    def execute(cls, memory, layer: str, new_name: str) -> io.NodeOutput:
        memory = require_memory(memory)
        index = memory.resolve(layer, "layer", allow_background=True)
        name = str(new_name).strip()
        if not name:
            raise LayerMemoryError("new_name", "the new name is empty",
                                   "type a name, e.g. 'red car'")
        check_layer_name(name, "new_name")
        renamed = memory.renamed(index, name)
        shown = ui.PreviewText(layer_table(renamed)).as_dict()
        return io.NodeOutput(renamed, ui={**shown, **choices_ui(memory)})


def decode(vae, latent: torch.Tensor) -> torch.Tensor:
    """ComfyUI's VAEDecode: [B, C, h, w] latent to a [B, H, W, 3] IMAGE."""
    with torch.no_grad():  # ComfyUI's executor runs nodes in inference mode; a direct call may not
        images = vae.decode(latent)
    if images.dim() == 5:  # video VAEs: [B, T, H, W, 3]
        images = images.reshape(-1, images.shape[-3], images.shape[-2], images.shape[-1])
    return images.detach().to("cpu", torch.float32)


class PreviewLayers(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="LayerMem_PreviewLayers",
            display_name="Preview Layers",
            category=CATEGORY,
            description="Decodes the memory and shows where every layer is: the final composite "
                        "with each layer's mask outlined in its own colour and numbered in mask "
                        "order (1 = first object, drawn under later ones), and the composite after "
                        "each layer (0 = background only) as a batch.",
            inputs=[
                memory_input(),
                io.Vae.Input("vae", tooltip="The VAE that decodes this model's latents (the one "
                                            "its loader gives; taesd/taesdxl for quick looks)."),
                io.Int.Input("line_width", default=0, min=0, max=32, optional=True,
                             tooltip="Outline width in image pixels; 0 picks one from the image "
                                     "size."),
            ],
            outputs=[
                io.Image.Output(display_name="outlined",
                                tooltip="The final composite with every layer's mask outlined and "
                                        "numbered."),
                io.Image.Output(display_name="per_layer",
                                tooltip="One image per layer: the composite right after it (batch "
                                        "index = layer index)."),
            ],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, memory, vae, line_width: int = 0) -> io.NodeOutput:
        memory = require_memory(memory)
        if vae is None:
            raise LayerMemoryError("vae", "no VAE is connected",
                                   "connect the VAE output of the model's loader, or a VAELoader")
        latents = torch.cat([memory.composite_latent(i)["samples"]
                             for i in range(len(memory.layers))])
        per_layer = decode(vae, latents)
        outlined = preview.annotate(per_layer[-1],
                                    [layer.latent_mask for layer in memory.layers[1:]],
                                    line_width)[None]
        shown = (torch.cat([outlined, per_layer]) if per_layer.shape[1:] == outlined.shape[1:]
                 else outlined)
        return io.NodeOutput(outlined, per_layer, ui=ui.PreviewImage(shown, cls=cls))
