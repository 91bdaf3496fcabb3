"""UNet MQD under ComfyUI's own TorchCompileModel (set_torch_compile_wrapper), SD 1.5 and SDXL.

AddLayer on a compiled MODEL runs, stays bit-exact outside the mask, matches the eager routed
result, adds no graph break, and a second AddLayer with the same number of layers (a prompt of
another CLIP chunk count, another mask) re-traces nothing. Small random UNets (tools/
unet_scenes.py), 2 steps.
"""

import compile_check as cc
import pytest
import torch

from tools import scenes
from tools import unet_scenes as us

pytestmark = pytest.mark.host

STEPS = 2
BACKENDS = ["eager", "aot_eager", "inductor", "cudagraphs"]
# Inductor compiles for minutes on a CPU: once per family (SD 1.5 batched, SDXL unbatched).
CASES = [(f, b, "batched") for f in ("sd15", "sdxl") for b in BACKENDS
         if (f, b) != ("sdxl", "inductor")] + [
    ("sd15", "eager", "unbatched"),
    ("sdxl", "inductor", "unbatched"),
]


@pytest.fixture
def pytorch_attention(monkeypatch):
    """The UNet's stock attention as ComfyUI picks it on CUDA (--use-pytorch-cross-attention).

    On the CPU ComfyUI defaults to its sub-quadratic attention, which asks psutil for the free
    memory in every call: dynamo breaks the graph there and guards on the number. That is
    ComfyUI's, not the pack's; with torch's SDPA any break or re-trace left is ours.
    """
    import comfy.ldm.modules.attention as attention

    monkeypatch.setattr(attention, "optimized_attention", attention.attention_pytorch)
    monkeypatch.setattr(attention, "optimized_attention_masked", attention.attention_pytorch)


@pytest.fixture(scope="module")
def backgrounds(host):
    """One background memory per family (77-token prompt and negative)."""
    out = {}
    for family in ("sd15", "sdxl"):
        size = us.SIZE[family]
        out[family] = host.layer_ops.start_memory(
            us.model(family), us.cond(family, 1), us.cond(family, 2), size, size, seed=11,
            steps=STEPS, cfg=5.0, sampler_name="dpmpp_2m", scheduler="karras")
    return out


def _edits(family: str, cfg_mode: str) -> list[dict]:
    """Two AddLayer inputs with the same number of layers, other prompts and masks.

    Batched: prompts of one and two CLIP chunks (77, 154 tokens) next to a 77-token negative,
    which ComfyUI repeats to batch cond and uncond. Unbatched: prompts of 100 and 120 tokens,
    which ComfyUI cannot batch with a 77-token negative (lcm ratio over 4).
    """
    size = us.SIZE[family]
    tokens = (77, 154) if cfg_mode == "batched" else (100, 120)
    boxes = [(0.2, 0.3, 0.6, 0.7), (0.5, 0.1, 0.9, 0.5)]
    return [
        dict(positive=us.cond(family, 41 + i, tokens=tokens[i]), seed=5 + i,
             mask=scenes.box_mask(size, *boxes[i]))
        for i in range(2)
    ]


def _assert_exact_outside(new, below):
    inside = new.top.latent_mask > 0
    for got, ref in ((new.top.trajectory.final, below.top.trajectory.final),
                     (new.top.trajectory.x, below.top.trajectory.x)):
        assert torch.equal(got[..., ~inside], ref[..., ~inside]), "outside the mask must be exact"


@pytest.mark.parametrize(("family", "backend", "cfg_mode"), CASES)
def test_add_layer_under_torch_compile(host, backgrounds, family, backend, cfg_mode,
                                       pytorch_attention):
    import torch._dynamo

    background = backgrounds[family]
    model = us.model(family)
    first_edit, second_edit = _edits(family, cfg_mode)
    with torch.inference_mode():
        eager = host.layer_ops.add_layer(background, model, **first_edit)
    torch._dynamo.reset()
    compiled = cc.compiled(model, backend)
    with torch.inference_mode():
        first = host.layer_ops.add_layer(background, compiled, **first_edit)
    graphs = cc.graphs()
    assert graphs >= 1, "the compiled diffusion model was not traced"
    assert not cc.breaks(), f"graph breaks under {backend}: {cc.breaks()}"
    _assert_exact_outside(first, background)
    # Float rounding only: inductor fuses and reorders float math, and a compiled run pads the
    # routed keys to another bucket (COMPILED_KEY_BUCKET) than an eager one, so SDPA reduces
    # over another key count (the padding itself is -inf and adds nothing)
    tol = 1e-3
    torch.testing.assert_close(first.top.trajectory.final, eager.top.trajectory.final,
                               rtol=tol, atol=tol)

    with torch.inference_mode():
        second = host.layer_ops.add_layer(background, compiled, **second_edit)
    assert cc.graphs() == graphs, "a second AddLayer with the same number of layers re-traced"
    assert not cc.breaks()
    _assert_exact_outside(second, background)


@pytest.mark.parametrize("order", [[1, 0], [0]], ids=["cfg-batch", "cond-only"])
@pytest.mark.parametrize("family", ["sd15", "sdxl"])
def test_no_graph_break_in_patched_blocks(host, family, order, pytorch_attention):
    """torch._dynamo.explain over the patched UNet, routed as the run's wrapper routes a call:
    one graph, no break (a break in a pack file would name it)."""
    import torch._dynamo

    mqd_unet = host.unet_mqd
    model = us.model(family)
    hw = (us.SIZE[family] // 8,) * 2
    mask = torch.zeros(hw)
    mask[: hw[0] // 2, : hw[1] // 2] = 1.0
    run = mqd_unet.UNetMQDRun([mask], [us.cond(family, 1)[0][0], us.cond(family, 2, 154)[0][0]],
                              us.cond(family, 3)[0][0])
    clone = model.clone()
    mqd_unet.install(clone, run)
    batch, dm = len(order), model.model.diffusion_model
    context = torch.randn(batch, 77, us.WIDTH[family])
    x = torch.randn(batch, 4, *hw)
    options = dict(clone.model_options["transformer_options"], cond_or_uncond=order)
    kwargs = {"y": torch.randn(batch, 2816)} if family == "sdxl" else {}
    with run.routing(dm, order, x, context, torch.float32) as routed:
        with torch.inference_mode():
            explained = torch._dynamo.explain(dm)(
                x, torch.full((batch,), 500.0), context=routed, transformer_options=options,
                **kwargs)
    for reason in explained.break_reasons:
        files = [frame.filename for frame in reason.user_stack]
        assert not any("layermem_core" in f for f in files), reason.reason
    assert explained.graph_count == 1 and explained.graph_break_count == 0
