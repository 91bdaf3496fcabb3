"""SD 1.5 / SDXL specifics on small UNets: SDXL's pooled output and size extras kept per layer,
and saved and loaded with the family.

BCG, MQD, the stack verbs, value semantics and patch scope are checked for every model kind in
test_family_invariants.py.
"""

import pytest
import torch

from tools import scenes
from tools import unet_scenes as us

pytestmark = pytest.mark.host
STEPS = 3
FAMILIES = ["sd15", "sdxl"]


def _start(host, family, sampler="dpmpp_2m", scheduler="karras", seed=11):
    size = us.SIZE[family]
    return host.layer_ops.start_memory(
        us.model(family),
        us.cond(family, 1),
        us.cond(family, 2),
        size,
        size,
        seed=seed,
        steps=STEPS,
        cfg=5.0,
        sampler_name=sampler,
        scheduler=scheduler,
    )


def _add(host, family, memory, box, seed, prompt_seed, **kwargs):
    size = us.SIZE[family]
    return host.layer_ops.add_layer(
        memory,
        us.model(family),
        us.cond(family, prompt_seed),
        scenes.box_mask(size, *box),
        seed=seed,
        **kwargs,
    )


@pytest.fixture(scope="module")
def scenes_by_family(host):
    out = {}
    for family in FAMILIES:
        bg = _start(host, family)
        one = _add(host, family, bg, (0.1, 0.1, 0.6, 0.6), seed=3, prompt_seed=20, name="a")
        two = _add(host, family, one, (0.4, 0.3, 0.9, 0.8), seed=4, prompt_seed=21, name="b")
        out[family] = [bg, one, two]
    return out


@pytest.mark.parametrize("family", FAMILIES)
def test_sdxl_pooled_and_size_extras_are_kept(scenes_by_family, family):
    layer = scenes_by_family[family][-1].top
    if family == "sdxl":
        assert layer.positive.pooled.shape == (1, 1280)
        assert dict(layer.positive.extras)["target_width"] == us.SIZE[family]
        assert "pooled_output" in layer.positive.to_comfy()[0][1]
    else:
        assert layer.positive.pooled is None


@pytest.mark.parametrize("family", FAMILIES)
def test_save_load_round_trip_keeps_family_and_pooled(host, scenes_by_family, family):
    memory = scenes_by_family[family][-1]
    loaded = host.serialization.from_bytes(host.serialization.to_bytes(memory), "test")
    assert scenes.memory_digest(loaded) == scenes.memory_digest(memory)
    assert loaded.fingerprint == memory.fingerprint and loaded.fingerprint.family == family
    for a, b in zip(loaded.layers, memory.layers, strict=True):
        for ca, cb in ((a.positive, b.positive), (a.negative, b.negative)):
            assert (ca.pooled is None) == (cb.pooled is None)
            assert ca.pooled is None or torch.equal(ca.pooled, cb.pooled)
    host.model_checks.require_same_model(loaded, us.model(family))
