"""Issue 13: the pack under ComfyUI's own TorchCompileModel (set_torch_compile_wrapper).

AddLayer on a compiled MODEL runs, stays bit-exact outside the mask, adds no graph break, and a
second AddLayer with the same number of layers (other prompt length, other mask) re-traces
nothing. Depth-1 random model, 512 px, the session's 3-step schedule.
"""

import compile_check as cc
import pytest

from tools import scenes

pytestmark = pytest.mark.host

BACKENDS = ["eager", "aot_eager", "inductor", "cudagraphs"]


@pytest.fixture
def pytorch_attention(monkeypatch):
    """PixArt's stock attention as ComfyUI picks it on CUDA (or with --use-pytorch-cross-attention).

    On the CPU ComfyUI defaults to its sub-quadratic attention, which asks psutil for the free
    memory in every call: dynamo breaks the graph there (it opens a file) and guards on the
    number, so stock blocks re-trace whenever free memory changes. That is ComfyUI's, not the
    pack's; with torch's SDPA the whole DiT traces as one graph and any break or re-trace left
    is ours.
    """
    import comfy.ldm.pixart.blocks as blocks
    from comfy.ldm.modules.attention import attention_pytorch

    monkeypatch.setattr(blocks, "optimized_attention", attention_pytorch)


CASES = [(b, "batched") for b in BACKENDS] + [("eager", "unbatched"), ("inductor", "unbatched")]


def _edits(cfg_mode):
    """Two AddLayer inputs with the same number of layers, other prompts and masks.

    Batched: a 6-token negative and 6-token prompts let ComfyUI batch cond and uncond.
    Unbatched: the memory's 1-token negative, prompts of 6 and 11 tokens (one key bucket).
    """
    negative = scenes.cond(43, tokens=6) if cfg_mode == "batched" else None
    second_tokens = 6 if cfg_mode == "batched" else 11
    return [
        dict(
            positive=scenes.cond(41, tokens=6),
            mask=scenes.box_mask(512, 0.2, 0.3, 0.6, 0.7),
            seed=5,
            negative=negative,
        ),
        dict(
            positive=scenes.cond(42, tokens=second_tokens),
            seed=6,
            negative=negative,
            mask=scenes.box_mask(512, 0.5, 0.1, 0.9, 0.5),
        ),
    ]


@pytest.mark.parametrize(("backend", "cfg_mode"), CASES)
def test_add_layer_under_torch_compile(
    host, alpha, background, backend, cfg_mode, pytorch_attention
):
    import torch._dynamo

    first_edit, second_edit = _edits(cfg_mode)
    with torch.inference_mode():
        eager = host.layer_ops.add_layer(background, alpha, **first_edit)
    torch._dynamo.reset()
    compiled = cc.compiled(alpha, backend)
    with torch.inference_mode():
        first = host.layer_ops.add_layer(background, compiled, **first_edit)
    graphs = cc.graphs()
    assert graphs >= 1, "the compiled diffusion model was not traced"
    assert not cc.breaks(), f"graph breaks under {backend}"
    inside = first.top.latent_mask > 0
    for got, ref in (
        (first.top.trajectory.final, background.top.trajectory.final),
        (first.top.trajectory.x, background.top.trajectory.x),
    ):
        assert torch.equal(got[..., ~inside], ref[..., ~inside]), "outside the mask must be exact"
    expected = eager.top.trajectory.final
    if backend == "inductor":  # inductor fuses and reorders float math: close, not bitwise
        torch.testing.assert_close(first.top.trajectory.final, expected, rtol=1e-3, atol=1e-3)
    else:
        torch.testing.assert_close(first.top.trajectory.final, expected, rtol=1e-5, atol=1e-5)

    with torch.inference_mode():
        host.layer_ops.add_layer(background, compiled, **second_edit)
    assert cc.graphs() == graphs, "a second AddLayer with the same number of layers re-traced"
    assert not cc.breaks()


@pytest.mark.parametrize("layout", ["bias", "bands"])
@pytest.mark.parametrize(
    "order", [[0, 1], [1, 0], [0]], ids=["cond-first", "uncond-first", "cond-only"]
)
def test_no_graph_break_in_patched_modules(host, alpha, order, layout, pytorch_attention):
    """torch._dynamo.explain over the patched DiT: no break has a frame in pixart_mqd.py.
    `bands`: the two layers hold one half of the rows each, so the run uses the band layout
    (pixart_bands.py); `bias`: owners mixed in every band, one bias over all routed keys."""
    import comfy.model_management as mm
    import torch._dynamo

    clone = alpha.clone()
    if layout == "bands":
        owners = (torch.arange(1024) >= 512).long()
        prompts = [scenes.cond(1, tokens=40)[0][0], scenes.cond(2, tokens=50)[0][0]]
    else:
        owners = torch.randint(0, 2, (1024,), generator=torch.Generator().manual_seed(0))
        prompts = [scenes.cond(1)[0][0], scenes.cond(2, tokens=9)[0][0]]
    run = host.pixart_mqd.MQDRun(owners, prompts)
    assert (run.bands is not None) == (layout == "bands")
    host.pixart_mqd.install(clone, run)
    mm.load_models_gpu([clone])
    try:
        dm = clone.model.diffusion_model
        batch = len(order)
        run.prepare(dm, torch.device("cpu"), torch.float32)
        run.select(order, batch)
        x, t = torch.randn(batch, 4, 64, 64), torch.full((batch,), 500.0)
        micro = {"c_size": torch.tensor([[512.0, 512.0]] * batch), "c_ar": torch.ones(batch, 1)}
        with torch.inference_mode():
            explained = torch._dynamo.explain(dm)(x, t, torch.randn(batch, 6, 4096), **micro)
    finally:
        clone.unpatch_model(unpatch_weights=False)
    assert explained.graph_count == 1 and explained.graph_break_count == 0
    for reason in explained.break_reasons:
        files = [frame.filename for frame in reason.user_stack]
        assert not any(f.endswith("pixart_mqd.py") for f in files), reason.reason
