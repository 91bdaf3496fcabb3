"""Point 1: what a layer stores, and that the memory is a value nobody mutates."""

import pytest
import torch
from executor import cached_nodes, cached_output, classic_executor, register_test_cond

from tools import scenes
from tools.random_models import ALPHA_512

pytestmark = pytest.mark.host


def test_layer_contents(three_layers):
    memory = three_layers[-1]
    bg = memory.layers[0]
    assert bg.latent_mask.eq(1).all() and bg.token_mask.all(), \
        "layer 0 is the background with a full mask"
    for layer in memory.layers:
        assert layer.positive.embedding.shape[-1] == 4096
        assert layer.negative.embedding.shape[-1] == 4096
        assert dict(layer.positive.extras) == {"width": 512, "height": 512}, \
            "PixArt-alpha size conditions kept"
        assert layer.latent_mask.shape == (64, 64) and layer.token_mask.shape == (32, 32)
        t = layer.trajectory
        assert t.calls == memory.schedule.steps, "one model call per step for dpmpp_2m"
        assert torch.allclose(t.sigmas.float(), memory.schedule.sigmas[:-1])
        for tensor in (t.x, t.final, layer.latent_mask, layer.positive.embedding):
            assert tensor.device.type == "cpu", "trajectories are kept off the GPU"
        assert t.x.shape == (memory.schedule.steps, 4, 64, 64)
    assert [layer.seed for layer in memory.layers] == [11, 30, 31, 32]


def test_nodes_leave_their_input_bit_identical(host, alpha, three_layers):
    N = host.nodes.NODE_CLASS_MAPPINGS
    memory = three_layers[2]
    digest = scenes.memory_digest(memory)
    mask = scenes.box_mask(512, 0.5, 0.5, 0.9, 0.9)
    a = N["LayerMem_AddLayer"].execute(memory, alpha, scenes.cond(50), mask, 1).result[0]
    b = N["LayerMem_AddLayer"].execute(memory, alpha, scenes.cond(51), mask, 2).result[0]
    d = N["LayerMem_DeleteLayer"].execute(memory, alpha, "1", 0.4, 0, 2).result[0]
    N["LayerMem_ListLayers"].execute(memory)
    N["LayerMem_BCGBlend"].execute(alpha, memory, mask, 0, 0)
    assert scenes.memory_digest(memory) == digest
    assert [len(m.layers) for m in (memory, a, b, d)] == [3, 4, 4, 2]
    assert a is not memory and b is not memory and d is not memory


def _two_branch_graph(host):
    """LoadPixArt -> LayerMemory, listed alone, and two AddLayer branches on that one memory."""
    from comfy_execution.graph_utils import GraphBuilder

    register_test_cond(host)
    g = GraphBuilder()
    loader = g.node("LayerMem_LoadPixArt", unet_name=ALPHA_512.filename,
                    text_encoder=host.labels.NO_TEXT_ENCODER, vae_name="taesd",
                    weight_dtype="default")
    pos, neg = g.node("LayerMemTestCond", seed=1), g.node("LayerMemTestCond", seed=2)
    start = g.node("LayerMem_LayerMemory", model=loader.out(0), positive=pos.out(0),
                   negative=neg.out(0),
                   width=512, height=512, seed=3, steps=2, cfg=4.5, sampler_name="euler",
                   scheduler="normal", name="background")
    canvas = g.node("SolidMask", value=0.0, width=512, height=512)
    box = g.node("SolidMask", value=1.0, width=128, height=128)
    mask = g.node("MaskComposite", destination=canvas.out(0), source=box.out(0), x=64, y=64,
                  operation="add")
    branches = []
    for s in (5, 6):
        add = g.node("LayerMem_AddLayer", memory=start.out(0), model=loader.out(0),
                     positive=g.node("LayerMemTestCond", seed=s).out(0), mask=mask.out(0), seed=s,
                     use_mqd=True, grow=0, feather=0, unblended_fraction=0.0)
        branches.append(g.node("LayerMem_ListLayers", memory=add.out(0)))
    listing = g.node("LayerMem_ListLayers", memory=start.out(0))
    return g.finalize(), start.id, listing.id, [b.id for b in branches]


def test_two_branches_from_one_memory_in_one_graph(host):
    """ComfyUI's real executor hands the same cached memory object to two AddLayer branches."""
    prompt, start, listing, branches = _two_branch_graph(host)
    executor = classic_executor()
    executor.execute(prompt, "start-only", {}, [listing])
    assert executor.success, executor.status_messages
    memory = cached_output(executor, start)
    digest = scenes.memory_digest(memory)

    executor.execute(prompt, "branches", {}, branches)
    assert executor.success, executor.status_messages
    assert start in cached_nodes(executor), \
        "the memory came from ComfyUI's cache, the same object for both branches"
    assert cached_output(executor, start) is memory
    assert scenes.memory_digest(memory) == digest and len(memory.layers) == 1
