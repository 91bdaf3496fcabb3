"""The pack loads in the real ComfyUI with its nodes, and a whole scene runs through them."""
import pytest

from tools import scenes
from tools.random_models import ALPHA_512

pytestmark = pytest.mark.host

NODE_IDS = ["LayerMem_LoadPixArt", "LayerMem_LayerMemory", "LayerMem_AddLayer",
            "LayerMem_BCGBlend", "LayerMem_DeleteLayer", "LayerMem_ListLayers",
            "LayerMem_PreviewLayers", "LayerMem_LayerMemoryHistory", "LayerMem_RenameLayer",
            "LayerMem_SaveLayerMemory",
            "LayerMem_LoadLayerMemory", "LayerMem_LayerMemoryBox"]


def _load_pixart(host):
    """LoadPixArt with the random PixArt-alpha 512, no text encoder and TAESD."""
    node = host.nodes.NODE_CLASS_MAPPINGS["LayerMem_LoadPixArt"]
    return node.execute(ALPHA_512.filename, host.labels.NO_TEXT_ENCODER, "taesd", "default")


def test_nodes_registered_with_tooltips(host):
    for node_id in NODE_IDS:
        assert node_id in host.nodes.NODE_CLASS_MAPPINGS, node_id
        cls = host.nodes.NODE_CLASS_MAPPINGS[node_id]
        info = cls.INPUT_TYPES()
        for group in ("required", "optional"):
            for name, spec in info.get(group, {}).items():
                assert spec[1].get("tooltip"), f"{node_id}.{name} has no tooltip"
        assert cls.CATEGORY == "layer_memory"
        assert cls.DESCRIPTION


def test_load_pixart_through_comfy_loaders(host):
    model, clip, vae = _load_pixart(host).result
    assert type(model.model.diffusion_model).__name__ == "PixArtMS"
    assert clip is None
    assert vae is not None


def test_scene_through_nodes(host):
    N = host.nodes.NODE_CLASS_MAPPINGS
    model = _load_pixart(host).result[0]
    memory, latent = N["LayerMem_LayerMemory"].execute(model, scenes.cond(1), scenes.negative(),
                                                       512, 512, 0,
                                              2, 4.5, "euler", "normal").result
    assert latent["samples"].shape == (1, 4, 64, 64)
    mask = scenes.box_mask(512, 0.2, 0.2, 0.6, 0.6)
    memory2, latent2 = N["LayerMem_AddLayer"].execute(memory, model, scenes.cond(2), mask, 5).result
    assert len(memory2.layers) == 2 and len(memory.layers) == 1
    text = N["LayerMem_ListLayers"].execute(memory2).result[0]
    assert "layer 1" in text and "background" in text
