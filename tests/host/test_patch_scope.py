"""Point 4: patches live on a clone and are gone after every run, also after an error or
interrupt."""
import pytest
import scenes

pytestmark = pytest.mark.host


def _quarter():
    """A new mask of the top-left quarter of a 512 px scene."""
    return scenes.box_mask(512, 0, 0, 0.5, 0.5)


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


def test_stock_after_interrupt(host, alpha, background):
    """ComfyUI's interrupt raises from the progress hook mid-run; the patches still come off."""
    import comfy.model_management
    import comfy.utils

    before = _stock_state(alpha)
    digest = scenes.memory_digest(background)
    calls = []

    def hook(value, total, preview, prompt_id=None, node_id=None):  # as ComfyUI's main.py does
        calls.append(value)
        comfy.model_management.throw_exception_if_processing_interrupted()

    comfy.utils.set_progress_bar_global_hook(hook)
    try:
        comfy.model_management.interrupt_current_processing(True)
        with pytest.raises(comfy.model_management.InterruptProcessingException):
            host.layer_ops.add_layer(background, alpha, scenes.cond(3), _quarter(), seed=1)
    finally:
        comfy.utils.set_progress_bar_global_hook(None)
        comfy.model_management.interrupt_current_processing(False)
    assert calls, "the run was interrupted from inside the sampler"
    _assert_stock(alpha, before)
    assert scenes.memory_digest(background) == digest


def test_stock_after_an_error_inside_the_model(host, alpha, background, monkeypatch):
    before = _stock_state(alpha)

    def boom(self, *a, **k):
        raise RuntimeError("boom inside the DiT")

    monkeypatch.setattr(host.mqd.MQDCrossAttention, "forward", boom)
    with pytest.raises(RuntimeError, match="boom"):
        host.layer_ops.add_layer(background, alpha, scenes.cond(3), _quarter(), seed=1)
    monkeypatch.undo()
    _assert_stock(alpha, before)


def test_two_memories_one_after_the_other_share_nothing(host, alpha, background, three_layers):
    mask = scenes.box_mask(512, 0.2, 0.5, 0.6, 0.9)
    first = host.layer_ops.add_layer(three_layers[3], alpha, scenes.cond(8), mask, seed=2)
    a_after = host.layer_ops.add_layer(background, alpha, scenes.cond(8), mask, seed=2)
    b_alone = host.layer_ops.add_layer(background, alpha, scenes.cond(8), mask, seed=2)
    assert scenes.memory_digest(a_after) == scenes.memory_digest(b_alone)
    assert len(first.layers) == 5
