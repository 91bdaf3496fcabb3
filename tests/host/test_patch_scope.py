"""Point 4: patches live on a clone; PixArt's blocks are the stock modules after a run.
(After errors and interrupts, for every model kind: test_family_invariants.py.)"""
import pytest

from tools import scenes

pytestmark = pytest.mark.host


def _stock_state(model):
    dm = model.model.diffusion_model
    return [(block.cross_attn, type(block.cross_attn), "forward" in vars(block.cross_attn))
            for block in dm.blocks]


def _assert_stock(model, before):
    from comfy.ldm.pixart.blocks import MultiHeadCrossAttention

    after = _stock_state(model)
    assert [a[0] for a in after] == [b[0] for b in before], \
        "a block's cross_attn is not the original module"
    assert all(t is MultiHeadCrossAttention and not own_forward for _, t, own_forward in after)
    assert not model.object_patches and not model.get_all_wrappers("apply_model")


def test_stock_after_add_and_delete(host, alpha, three_layers):
    before = _stock_state(alpha)
    host.layer_ops.add_layer(three_layers[1], alpha, scenes.cond(3),
                             scenes.box_mask(512, 0.5, 0.5, 1, 1), seed=1)
    _assert_stock(alpha, before)
    host.layer_ops.delete_layer(three_layers[3], alpha, "1", 0.4, seed=0)
    _assert_stock(alpha, before)


def test_two_memories_one_after_the_other_share_nothing(host, alpha, background, three_layers):
    mask = scenes.box_mask(512, 0.2, 0.5, 0.6, 0.9)
    first = host.layer_ops.add_layer(three_layers[3], alpha, scenes.cond(8), mask, seed=2)
    a_after = host.layer_ops.add_layer(background, alpha, scenes.cond(8), mask, seed=2)
    b_alone = host.layer_ops.add_layer(background, alpha, scenes.cond(8), mask, seed=2)
    assert scenes.memory_digest(a_after) == scenes.memory_digest(b_alone)
    assert len(first.layers) == 5
