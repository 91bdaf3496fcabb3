"""ComfyUI nodes of the pack (V3 schema)."""
from __future__ import annotations

from comfy_api.latest import ComfyExtension, io

from .bcg_node import BCGBlend
from .box_node import LayerBox
from .edit_nodes import EditLayer, LayerMemoryFromImage
from .history_nodes import LayerMemoryHistory, PreviewLayers, RenameLayer
from .inspect_nodes import ListLayers
from .io_nodes import LoadLayerMemory, SaveLayerMemory
from .loader import LoadPixArt
from .memory_nodes import AddLayerNode, DeleteLayerNode, LayerMemoryNode

NODES: list[type[io.ComfyNode]] = [
    LoadPixArt, LayerMemoryNode, LayerMemoryFromImage, AddLayerNode, EditLayer, BCGBlend,
    DeleteLayerNode, LayerBox,
    ListLayers, PreviewLayers, LayerMemoryHistory, RenameLayer, SaveLayerMemory, LoadLayerMemory,
]


class LayerMemoryExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return list(NODES)
