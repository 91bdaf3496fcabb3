"""Qwen-Image (issue 21): not a supported family yet. A Qwen-Image MODEL built with the classes
ComfyUI's loader picks is refused before any sampling, naming the model input, its kind and the
fix (no memory is made)."""
import pytest
from refusals import refused

from tools import qwen_scenes as qs

pytestmark = pytest.mark.host


def test_qwen_image_is_refused_before_sampling(host):
    model = qs.model()
    assert type(model.model).__name__ == "QwenImage"
    refused(host, host.layer_ops.start_memory, model, qs.cond(1), qs.cond(2), qs.SIZE, qs.SIZE,
            seed=1, steps=2, cfg=3.0, sampler_name="euler", scheduler="simple",
            match="QwenImage.*qwen_image", input_name="model")
