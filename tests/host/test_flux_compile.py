"""FLUX MQD under ComfyUI's TorchCompileModel (aot_eager on the CPU): the routed run gives what
the eager one gives, with no graph break, and a second edit re-traces nothing (issue 21)."""
import pytest
from compile_check import check_joint_compile, clear_dynamo

from tools import flux_scenes as fs

pytestmark = pytest.mark.host


@pytest.fixture(autouse=True)
def _dynamo_left_clean():
    yield
    clear_dynamo()


def test_flux_mqd_under_torch_compile_matches_eager(host):
    check_joint_compile(host.layer_ops, fs.model(), fs, stock_may_break=False)
