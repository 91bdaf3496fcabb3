"""SD 1.5 / SDXL end to end: LayerMemory, AddLayer (BCG + MQD), DeleteLayer on small UNets.

BCG must keep everything outside the mask bit-identical to the layer below for deterministic,
ancestral and SDE samplers alike; MQD patches live on a clone and are gone after the run.
"""

import pytest
import scenes
import torch
import unet_scenes as us

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


def _assert_exact_outside(new, below):
    where = new.top.latent_mask == 0
    a, b = new.top.trajectory, below.top.trajectory
    assert torch.equal(a.sigmas, b.sigmas) and a.calls == b.calls
    assert torch.equal(a.x[..., where], b.x[..., where]), "model inputs differ outside the mask"
    assert torch.equal(a.final[..., where], b.final[..., where]), (
        "final latent differs outside the mask"
    )
    assert not torch.equal(a.final[..., ~where], b.final[..., ~where]), (
        "the masked region was not sampled"
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
@pytest.mark.parametrize(
    "sampler,scheduler",
    [
        ("euler", "normal"),
        ("dpmpp_2m", "karras"),
        ("euler_ancestral", "karras"),
        ("dpmpp_2m_sde", "karras"),
    ],
)
def test_bcg_bit_exact_outside_the_mask(host, family, sampler, scheduler):
    bg = _start(host, family, sampler, scheduler)
    added = _add(host, family, bg, (0.3, 0.2, 0.7, 0.6), seed=4, prompt_seed=30, grow_pixels=1)
    _assert_exact_outside(added, bg)
    assert added.fingerprint.family == family and torch.isfinite(added.top.trajectory.final).all()


@pytest.mark.parametrize("family", FAMILIES)
def test_stacked_layers_follow_the_layer_below(scenes_by_family, family):
    bg, one, two = scenes_by_family[family]
    _assert_exact_outside(one, bg)
    _assert_exact_outside(two, one)
    assert [layer.name for layer in two.layers] == ["background", "a", "b"]


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
def test_mqd_changes_only_the_masked_region_and_matters(host, scenes_by_family, family):
    _, one, _ = scenes_by_family[family]
    box = (0.4, 0.3, 0.9, 0.8)
    with_mqd = _add(host, family, one, box, seed=4, prompt_seed=21)
    without = _add(host, family, one, box, seed=4, prompt_seed=21, use_mqd=False)
    outside = with_mqd.top.latent_mask == 0
    a, b = with_mqd.top.trajectory.final, without.top.trajectory.final
    assert torch.equal(a[..., outside], b[..., outside])
    assert not torch.equal(a[..., ~outside], b[..., ~outside]), "MQD routing had no effect"


@pytest.mark.parametrize("family", FAMILIES)
def test_delete_middle_layer_keeps_the_stack_consistent(host, scenes_by_family, family):
    bg, one, two = scenes_by_family[family]
    before = scenes.memory_digest(two)
    deleted = host.layer_ops.delete_layer(
        two, us.model(family), "a", regenerate_fraction=0.67, seed=5
    )
    assert scenes.memory_digest(two) == before, "the input memory changed"
    assert [layer.name for layer in deleted.layers] == ["background", "b"]
    region = host.layer_ops.deletion_region(two, 1, 2)
    untouched = ~region & (two.top.latent_mask == 0)
    assert torch.equal(
        deleted.top.trajectory.final[..., untouched], two.top.trajectory.final[..., untouched]
    )
    assert torch.isfinite(deleted.top.trajectory.final).all()
    top_deleted = host.layer_ops.delete_layer(two, us.model(family), -1)
    assert torch.equal(top_deleted.top.trajectory.final, one.top.trajectory.final)


@pytest.mark.parametrize("family", FAMILIES)
def test_patches_gone_after_a_run_and_after_an_error(host, scenes_by_family, family, monkeypatch):
    import comfy.model_management

    model = us.model(family)
    options_before = repr(model.model_options)
    bg, one, _ = scenes_by_family[family]
    _add(host, family, one, (0.2, 0.2, 0.5, 0.5), seed=9, prompt_seed=40)
    assert repr(model.model_options) == options_before
    mqd_unet = us.core(host, "mqd_unet")

    def interrupted(self, q, k, v, extra_options):
        raise comfy.model_management.InterruptProcessingException()

    monkeypatch.setattr(mqd_unet.RoutedAttn2, "__call__", interrupted)
    with pytest.raises(comfy.model_management.InterruptProcessingException):
        _add(host, family, one, (0.2, 0.2, 0.5, 0.5), seed=9, prompt_seed=40)
    monkeypatch.undo()
    assert repr(model.model_options) == options_before
    again = _start(host, family)
    assert torch.equal(again.top.trajectory.final, bg.top.trajectory.final), (
        "a stock run changed after the error"
    )


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
