"""ComfyUI entry point of the layer-memory node pack.

Nodes are imported lazily so that `layermem_core`'s pure modules (and their unit tests) do
not need ComfyUI on the path.
"""

# The frontend extension (text outputs on the nodes, the LAYER_MEMORY wire colour). ComfyUI reads
# this before it looks at the V3 entry point (nodes.py load_custom_node), so V3 packs use it too.
WEB_DIRECTORY = "./web"


async def comfy_entrypoint():
    from .nodes import LayerMemoryExtension

    return LayerMemoryExtension()
