"""Qwen-Image MQD under ComfyUI's TorchCompileModel (aot_eager on the CPU, issue 21): the routed
run (its text-id patch sits inside the compiled diffusion model) gives what the eager one gives,
adds no graph break the stock compiled model does not have, and a second edit (another mask,
seed) re-traces nothing. The second edit keeps the prompt's length: a prompt of another length
re-traces the stock compiled Qwen-Image too (its text and CFG batching change shape; measured
here: 14 graphs, then 27 after a 20-token prompt, without the pack's patches)."""
import pytest
from compile_check import check_joint_compile, clear_dynamo

from tools import qwen_scenes as qs

pytestmark = pytest.mark.host


@pytest.fixture(autouse=True)
def _dynamo_left_clean():
    yield
    clear_dynamo()


def test_qwen_image_mqd_under_torch_compile_matches_eager(host):
    check_joint_compile(host.layer_ops, qs.model(), qs, stock_may_break=True)
