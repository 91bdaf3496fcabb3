"""Issue 5: look into a layered scene: LayerMemoryHistory (undo), RenameLayer, PreviewLayers, in
the real ComfyUI."""
import os

import pytest
import torch

from tools import scenes

pytestmark = pytest.mark.host


@pytest.fixture(scope="module")
def N(host):
    return host.nodes.NODE_CLASS_MAPPINGS


@pytest.fixture(scope="module")
def preview(host):
    return host.preview


# ----------------------------------------------------------------------------------- history

def test_history_gives_each_stored_composite_and_the_truncated_memory(N, three_layers):
    memory = three_layers[-1]
    digest = scenes.memory_digest(memory)
    for k in range(len(memory.layers)):
        kept, latent = N["LayerMem_LayerMemoryHistory"].execute(memory, str(k)).result
        assert torch.equal(latent["samples"], memory.composite_latent(k)["samples"])
        assert kept.layers == memory.layers[:k + 1], \
            "the same layer objects: nothing recomputed or copied"
        assert scenes.memory_digest(kept) == scenes.memory_digest(three_layers[k]), \
            "undo == the memory at that time"
    by_name = N["LayerMem_LayerMemoryHistory"].execute(memory, "object 2").result[0]
    undo_top = N["LayerMem_LayerMemoryHistory"].execute(memory, "-2").result[0]
    assert len(by_name.layers) == 3 and len(undo_top.layers) == 3
    assert N["LayerMem_LayerMemoryHistory"].execute(memory, "-1").result[0] is memory
    assert scenes.memory_digest(memory) == digest and len(memory.layers) == 4


def test_history_refuses_what_is_not_there(host, N, three_layers):
    refused = (("4", "out of range"), ("-5", "out of range"), ("dog", "no layer is named"))
    for spec, reason in refused:
        with pytest.raises(host.errors.LayerMemoryError, match=reason):
            N["LayerMem_LayerMemoryHistory"].execute(three_layers[-1], spec)
    with pytest.raises(host.errors.LayerMemoryError, match="expected a LAYER_MEMORY"):
        N["LayerMem_LayerMemoryHistory"].execute(None, "0")


def test_adding_after_undo_is_like_adding_then(host, N, alpha, three_layers):
    """Undo back to layer 1, add there: identical to adding to the memory as it was after
    layer 1."""
    memory = three_layers[-1]
    digest = scenes.memory_digest(memory)
    undone = N["LayerMem_LayerMemoryHistory"].execute(memory, "1").result[0]
    mask = scenes.box_mask(512, 0.6, 0.6, 0.95, 0.95)
    a = N["LayerMem_AddLayer"].execute(undone, alpha, scenes.cond(90), mask, 9,
                                       name="redo").result[0]
    b = N["LayerMem_AddLayer"].execute(three_layers[1], alpha, scenes.cond(90), mask, 9,
                              name="redo").result[0]
    assert scenes.memory_digest(a) == scenes.memory_digest(b)
    assert len(a.layers) == 3 and scenes.memory_digest(memory) == digest


# ------------------------------------------------------------------------------------ rename

def test_rename_by_index_or_name_and_use_the_name(host, N, alpha, three_layers):
    memory = three_layers[-1]
    digest = scenes.memory_digest(memory)
    out = N["LayerMem_RenameLayer"].execute(memory, "-1", "  red car ")
    renamed = out.result[0]
    assert renamed.layers[3].name == "red car" and memory.layers[3].name == "object 3"
    assert "red car" in out.ui["text"][0]
    assert out.ui["layer_choices"][3] == {"label": "3: object 3", "value": "object 3"}, \
        "the choices are the input memory's layers"
    assert renamed.layers[3].trajectory is memory.layers[3].trajectory, "only the name changed"
    again = N["LayerMem_RenameLayer"].execute(renamed, "object 1", "sky").result[0]
    assert [layer.name for layer in again.layers] == ["background", "sky", "object 2", "red car"]
    bg = N["LayerMem_RenameLayer"].execute(memory, "0", "meadow").result[0]
    assert bg.layers[0].name == "meadow"
    # the new name works in DeleteLayer (top layer: no sampling) and in the history
    by_name = N["LayerMem_DeleteLayer"].execute(again, alpha, "red car", 0.4, 0, 2).result[0]
    by_index = N["LayerMem_DeleteLayer"].execute(again, alpha, "-1", 0.4, 0, 2).result[0]
    assert scenes.memory_digest(by_name) == scenes.memory_digest(by_index)
    assert len(by_name.layers) == 3
    assert len(N["LayerMem_LayerMemoryHistory"].execute(again, "sky").result[0].layers) == 2
    refused = (("", "empty"), ("  ", "empty"), ("3", "is a number"), ("-1", "is a number"))
    for bad, reason in refused:
        with pytest.raises(host.errors.LayerMemoryError, match=reason):
            N["LayerMem_RenameLayer"].execute(memory, "1", bad)
    with pytest.raises(host.errors.LayerMemoryError, match="no layer is named"):
        N["LayerMem_RenameLayer"].execute(memory, "cat", "dog")
    assert scenes.memory_digest(memory) == digest
    assert [layer.name for layer in memory.layers] == \
        ["background", "object 1", "object 2", "object 3"]


# ----------------------------------------------------------------------------------- preview

def test_outline_and_palette(preview):
    r = torch.zeros(32, 32, dtype=torch.bool)
    r[8:24, 4:20] = True
    border = preview.outline(r, 2)
    assert border[8:10, 4:20].all() and border[22:24, 4:20].all() and border[8:24, 4:6].all()
    assert not border[10:22, 6:18].any() and not (border & ~r).any()
    edge = torch.zeros(32, 32, dtype=torch.bool)
    edge[:, :16] = True
    assert preview.outline(edge, 1)[:, 0].all(), "the image edge counts as outside"
    colours = preview.palette(8)
    assert len(set(colours)) == 8 and preview.palette(3) == colours[:3]


def test_annotate_draws_only_outlines_and_labels(preview):
    image = torch.full((128, 128, 3), 0.5)
    masks = [torch.zeros(16, 16), torch.zeros(16, 16)]
    masks[0][2:8, 2:8] = 1
    masks[1][6:14, 8:15] = 0.7  # soft masks: outlined where at least half on
    before = image.clone()
    out = preview.annotate(image, masks, line_width=2)
    assert torch.equal(image, before), "the input image is not written to"
    assert out.shape == (128, 128, 3) and out.dtype == torch.float32
    c0, c1 = (torch.tensor(c) / 255.0 for c in preview.palette(2))
    assert torch.allclose(out[40, 16], c0, atol=1 / 255)
    assert torch.allclose(out[90, 119], c1, atol=1 / 255)
    inside = out[40:50, 40:50]
    assert torch.allclose(inside, torch.full_like(inside, 0.5), atol=1 / 255), \
        "inside a region nothing is drawn"
    label = out[16 + 2:16 + 10, 16 + 2:16 + 10]
    off_c0 = (label - c0).abs().sum(-1)
    assert off_c0.lt(0.02).any() and off_c0.gt(0.5).any(), "a number on a tag"
    far = out[120:, :8]
    assert torch.allclose(far, torch.full_like(far, 0.5), atol=1 / 255)


def test_preview_node(host, N, three_layers, vae, temp_dir, preview):
    memory = three_layers[-1]
    digest = scenes.memory_digest(memory)
    out = N["LayerMem_PreviewLayers"].execute(memory, vae)
    outlined, per_layer = out.result
    assert outlined.shape == (1, 512, 512, 3) and per_layer.shape == (4, 512, 512, 3)
    for k in (0, 3):  # the same code path for every k; VAE decoding is the slow part of this test
        expected = host.nodes.VAEDecode().decode(vae, memory.composite_latent(k))[0]
        # decoded as one batch here, one by one by VAEDecode: CPU kernels differ in the last bits
        assert torch.allclose(per_layer[k], expected[0], atol=1e-4), \
            f"per_layer[{k}] is the composite after layer {k}"
    lw = preview.default_line_width(512, 512)
    for k, layer in enumerate(memory.layers[1:]):
        border = preview.outline(preview.region(layer.latent_mask, (512, 512)), lw)
        colour = torch.tensor(preview.palette(3)[k]) / 255.0
        newer = torch.zeros(512, 512, dtype=torch.bool)
        for later in memory.layers[k + 2:]:
            newer |= preview.outline(preview.region(later.latent_mask, (512, 512)), lw)
        own = border & ~newer
        hit = (outlined[0][own] - colour).abs().max(-1).values <= 1 / 255 + 1e-6
        assert own.any() and hit.float().mean() > 0.9, \
            "outlined in its colour (number tags may cover a little)"
    far = torch.ones(512, 512, dtype=torch.bool)
    for layer in memory.layers[1:]:
        grown = torch.nn.functional.max_pool2d(layer.latent_mask[None, None], 9, 1, 4)[0, 0]
        far &= ~preview.region(grown, (512, 512))
    assert far.any() and torch.allclose(outlined[0][far], per_layer[-1][far], atol=1 / 255 + 1e-6)
    images = out.ui.as_dict()["images"]
    assert len(images) == 5
    assert all(os.path.isfile(os.path.join(temp_dir, i["subfolder"], i["filename"]))
               for i in images)
    assert scenes.memory_digest(memory) == digest


def test_preview_line_width(N, three_layers, vae, temp_dir, preview):
    memory = three_layers[1]
    outlined, per_layer = N["LayerMem_PreviewLayers"].execute(memory, vae, 6).result
    colour = torch.tensor(preview.palette(1)[0]) / 255.0
    region = preview.region(memory.layers[1].latent_mask, (512, 512))
    ys, xs = torch.nonzero(region, as_tuple=True)
    row = int(ys.float().mean())  # a row through the middle of the box, away from its number tag
    left = int(xs.min())
    drawn = (outlined[0, row, left - 2:left + 10] - colour).abs().max(-1).values <= 1 / 255 + 1e-6
    assert drawn.tolist() == [False] * 2 + [True] * 6 + [False] * 4


def test_preview_of_a_background_only_memory(N, background, vae, temp_dir):
    outlined, per_layer = N["LayerMem_PreviewLayers"].execute(background, vae).result
    assert per_layer.shape[0] == 1
    assert torch.allclose(outlined[0], per_layer[0], atol=1 / 255 + 1e-6), "no layer, nothing drawn"


def test_new_nodes_are_registered_with_tooltips(host):
    new_nodes = ("LayerMem_SaveLayerMemory", "LayerMem_LoadLayerMemory",
                 "LayerMem_LayerMemoryHistory", "LayerMem_RenameLayer",
                 "LayerMem_PreviewLayers")
    for node_id in new_nodes:
        cls = host.nodes.NODE_CLASS_MAPPINGS[node_id]
        info = cls.INPUT_TYPES()
        for group in ("required", "optional"):
            for name, spec in info.get(group, {}).items():
                assert spec[1].get("tooltip"), f"{node_id}.{name} has no tooltip"
        assert cls.CATEGORY == "layer_memory" and cls.DESCRIPTION
        schema = cls.GET_SCHEMA()
        assert all(o.tooltip for o in schema.outputs), node_id
    assert host.nodes.NODE_CLASS_MAPPINGS["LayerMem_SaveLayerMemory"].OUTPUT_NODE
    assert host.nodes.NODE_CLASS_MAPPINGS["LayerMem_PreviewLayers"].OUTPUT_NODE
