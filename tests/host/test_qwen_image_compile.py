"""Qwen-Image MQD under ComfyUI's TorchCompileModel (aot_eager on the CPU, issue 21): the routed
run (its text-id patch sits inside the compiled diffusion model) gives what the eager one gives,
adds no graph break the stock compiled model does not have, and a second edit (another mask,
seed) re-traces nothing. The second edit keeps the prompt's length: a prompt of another length
re-traces the stock compiled Qwen-Image too (its text and CFG batching change shape; measured
here: 14 graphs, then 27 after a 20-token prompt, without the pack's patches)."""
import pytest
import torch._dynamo
from compile_check import breaks, compiled, graphs

from tools import qwen_scenes as qs
from tools import scenes

pytestmark = pytest.mark.host


@pytest.fixture(autouse=True)
def _dynamo_left_clean():
    """dynamo's counters outlive `torch._dynamo.reset()`: clear them for the tests after."""
    yield
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()


def _start(lo, model):
    return lo.start_memory(model, qs.cond(1), qs.cond(2), qs.SIZE, qs.SIZE, seed=1, steps=2,
                           cfg=3.0, sampler_name="euler", scheduler="simple")


def test_qwen_image_mqd_under_torch_compile_matches_eager(host):
    torch._dynamo.reset()
    lo = host.layer_ops
    eager = qs.model()
    bg = _start(lo, eager)
    before = breaks()
    _start(lo, compiled(eager, "aot_eager"))
    stock_breaks = set(breaks()) - set(before)
    torch._dynamo.reset()
    mask = scenes.box_mask(qs.SIZE, 0.2, 0.2, 0.7, 0.7)
    want = lo.add_layer(bg, eager, qs.cond(4), mask, seed=4)
    before, traced = breaks(), graphs()
    model = compiled(eager, "aot_eager")
    got = lo.add_layer(bg, model, qs.cond(4), mask, seed=4)
    assert graphs() > traced, "nothing was compiled"
    new = {k for k, v in breaks().items() if v != before.get(k)}
    assert new <= stock_breaks, f"graph breaks of MQD's own: {new - stock_breaks}"
    torch.testing.assert_close(got.top.trajectory.final, want.top.trajectory.final,
                               rtol=1e-4, atol=1e-4)
    traced = graphs()
    lo.add_layer(bg, model, qs.cond(5), scenes.box_mask(qs.SIZE, 0.4, 0.1, 0.9, 0.6),
                 seed=5)
    assert graphs() == traced, "a second edit re-traced the model"
