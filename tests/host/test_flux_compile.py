"""FLUX MQD under ComfyUI's TorchCompileModel (aot_eager on the CPU): the routed run gives what
the eager one gives, with no graph break (issue 21)."""
import pytest
import torch._dynamo
from compile_check import breaks, compiled, graphs

from tools import flux_scenes as fs
from tools import scenes

pytestmark = pytest.mark.host


def test_flux_mqd_under_torch_compile_matches_eager(host):
    torch._dynamo.reset()
    lo = host.layer_ops
    eager = fs.model()
    bg = lo.start_memory(eager, fs.cond(1), fs.cond(2), fs.SIZE, fs.SIZE, seed=1, steps=2,
                         cfg=3.0, sampler_name="euler", scheduler="simple")
    mask = scenes.box_mask(fs.SIZE, 0.2, 0.2, 0.7, 0.7)
    want = lo.add_layer(bg, eager, fs.cond(4), mask, seed=4)
    before, traced = breaks(), graphs()
    got = lo.add_layer(bg, compiled(eager, "aot_eager"), fs.cond(4), mask, seed=4)
    assert graphs() > traced, "nothing was compiled"
    assert breaks() == before, f"graph breaks: {breaks()}"
    torch.testing.assert_close(got.top.trajectory.final, want.top.trajectory.final,
                               rtol=1e-4, atol=1e-4)
