"""ComfyUI entry point of the layer-memory node pack.

Nodes are imported lazily so that `layermem_core`'s pure modules (and their unit tests) do
not need ComfyUI on the path.
"""



async def comfy_entrypoint():
    from .nodes import LayerMemoryExtension

    return LayerMemoryExtension()
