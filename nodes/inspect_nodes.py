"""What is in a memory: a table of its layers."""
from __future__ import annotations

from comfy_api.latest import io, ui

from ..layermem_core.model_checks import require_memory
from .types import CATEGORY, memory_input


def layer_table(memory) -> str:
    """The layer table shown on ListLayers/RenameLayer and given by LoadLayerMemory.

    No prompt column: no node receives a layer's prompt text (only its embedding), so the layer's
    name is its label."""
    c, h, w = memory.latent_shape
    s = memory.schedule
    lines = [f"{w * 8}x{h * 8}, {s.steps} steps {s.sampler_name}/{s.scheduler}, cfg {s.cfg:g}, "
             f"model {memory.fingerprint.image_model}",
             "order | name | mask area | tokens | seed"]
    for row in memory.describe():
        lines.append(f"{row['index']} | {row['name']} | {row['mask_area'] * 100:.1f}% | "
                     f"{row['tokens']} | {row['seed']}")
    return "\n".join(lines)


class ListLayers(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="LayerMem_ListLayers",
            display_name="List Layers",
            category=CATEGORY,
            description="Lists the memory's layers in mask order (0 = background): name, mask "
                        "area, token count, seed. The table is shown on the node after a run.",
            inputs=[memory_input()],
            outputs=[io.String.Output(display_name="table", tooltip="One line per layer.")],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, memory) -> io.NodeOutput:
        text = layer_table(require_memory(memory))
        return io.NodeOutput(text, ui=ui.PreviewText(text))
