"""ComfyUI's ModelSampling nodes with a memory (issue 21): ModelSamplingSD3 (SD3.5's shift) and
ModelSamplingFlux (FLUX's resolution-dependent shift) patch `model_sampling` on a clone.

A background made with the patched MODEL records the patched sigmas, and a layer over it keeps
everything outside its mask bit for bit. Every layer replays the memory's own schedule, so a
MODEL whose sampling was changed after the background is told about it (a warning naming the
node and the fix) and the layer is still sampled, exactly, on the memory's schedule."""
import logging

import pytest
import torch

from tools import flux_scenes as fx
from tools import scenes
from tools import sd3_scenes as s3

pytestmark = pytest.mark.host
SIZE = 256
WARNING = "sampling gives other sigmas"


def _sd3(shift: float):
    from comfy_extras.nodes_model_advanced import ModelSamplingSD3  # the host is booted by now
    return ModelSamplingSD3().patch(s3.model(), shift)[0]


def _flux(width: int):
    from comfy_extras.nodes_model_advanced import ModelSamplingFlux
    return ModelSamplingFlux().patch(fx.model(), 1.15, 0.5, width, width)[0]


CASES = {
    "sd3": (_sd3, 6.0, 3.0, s3.cond),  # shift 3 is SD3.5's own
    "flux": (_flux, 1024, 256, fx.cond),  # 1024 px is FLUX's own shift (1.15)
}


def _background(host, model, cond):
    return host.layer_ops.start_memory(model, cond(1), cond(2), SIZE, SIZE, seed=1, steps=3,
                                       cfg=3.0, sampler_name="euler", scheduler="simple")


def _sigmas(host, model):
    return host.sampling.make_schedule(model, "euler", "simple", 3, 3.0).sigmas


@pytest.mark.parametrize("family", sorted(CASES))
def test_the_patched_schedule_is_recorded_and_kept_outside_the_mask(host, family, caplog):
    patch, setting, other, cond = CASES[family]
    model = patch(setting)
    bg = _background(host, model, cond)
    assert torch.equal(bg.schedule.sigmas, _sigmas(host, model))
    assert not torch.equal(bg.schedule.sigmas, _sigmas(host, patch(other))), "a void test"
    with caplog.at_level(logging.WARNING, logger="LayerMemory"):
        added = host.layer_ops.add_layer(bg, model, cond(4),
                                         scenes.box_mask(SIZE, 0.2, 0.2, 0.6, 0.7), seed=4)
    assert not [r for r in caplog.records if WARNING in r.getMessage()]
    outside = added.top.latent_mask == 0
    assert torch.equal(added.top.trajectory.x[..., outside], bg.top.trajectory.x[..., outside])
    assert torch.equal(added.top.trajectory.final[..., outside],
                       bg.top.trajectory.final[..., outside])


@pytest.mark.parametrize("family", sorted(CASES))
def test_a_changed_shift_is_named_and_the_memory_schedule_is_used(host, family, caplog):
    patch, setting, other, cond = CASES[family]
    bg = _background(host, patch(setting), cond)
    changed = patch(other)
    with caplog.at_level(logging.WARNING, logger="LayerMemory"):
        added = host.layer_ops.add_layer(bg, changed, cond(4),
                                         scenes.box_mask(SIZE, 0.2, 0.2, 0.6, 0.7), seed=4)
    said = [r.getMessage() for r in caplog.records if WARNING in r.getMessage()]
    assert len(said) == 1 and "ModelSampling" in said[0] and "new background" in said[0]
    assert torch.equal(added.schedule.sigmas, bg.schedule.sigmas)
    outside = added.top.latent_mask == 0
    assert torch.equal(added.top.trajectory.x[..., outside], bg.top.trajectory.x[..., outside])
