"""SD3 / SD3.5 MQD under ComfyUI's TorchCompileModel (aot_eager on the CPU, issue 21): the routed
run gives what the eager one gives, adds no graph break of its own, and a second edit (another
mask and seed) re-traces nothing.

On the CPU ComfyUI's attention is sub-quadratic, which asks psutil for free memory: a graph
break in the stock model. SD3.5 Large's attention calls are all routed (to SDPA), so its run
must have none; SD3.5 Medium's image-only attn2 stays on the backend, so its run may break
where the stock compiled model breaks, and nowhere else."""
import pytest
from compile_check import check_joint_compile, clear_dynamo

from tools import sd3_scenes as s3

pytestmark = pytest.mark.host


@pytest.fixture(autouse=True)
def _dynamo_left_clean():
    yield
    clear_dynamo()


@pytest.mark.parametrize("variant", ["large35", "medium35"])
def test_sd3_mqd_under_torch_compile_matches_eager(host, variant):
    check_joint_compile(host.layer_ops, s3.model(variant), s3,
                        stock_may_break=variant == "medium35")
