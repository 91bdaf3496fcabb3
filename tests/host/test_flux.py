"""FLUX.1 specifics (issue 21): bad input refused before any sampling, naming the input and the
fix; dev vs schnell; the latent shift through save/load; MQD under another node's attention
override (routing still happens, and the log says what it bypasses)."""
import logging

import pytest
import torch
from attention_probe import _context, flux_call
from refusals import refused

from tools import flux_scenes as fs
from tools import scenes

pytestmark = pytest.mark.host
SIZE = fs.SIZE


@pytest.fixture(scope="module")
def flux_bg(host):
    return host.layer_ops.start_memory(fs.model(), fs.cond(1), fs.cond(2), SIZE, SIZE, seed=1,
                                       steps=2, cfg=3.0, sampler_name="euler",
                                       scheduler="simple")


def _start(host, positive=None, negative=None, size=SIZE, model=None):
    return host.layer_ops.start_memory(model or fs.model(), positive or fs.cond(1),
                                       negative or fs.cond(2), size, size, seed=1, steps=2,
                                       cfg=3.0, sampler_name="euler", scheduler="simple")


def test_off_grid_size_is_refused(host, no_sampling):
    refused(host, _start, host, size=SIZE + 8, match="multiple of 16", input_name="width")


@pytest.mark.parametrize("which", ["positive", "negative"])
def test_bad_conditioning_is_refused(host, no_sampling, which):
    def start(cond):
        return _start(host, **{which: cond})

    refused(host, start, fs.cond(3, width=768), match="768 wide", input_name=which)
    refused(host, start, fs.cond(3, guidance=None), match="guidance", input_name=which)
    e = refused(host, start, fs.cond(3, guidance=None), match="guidance", input_name=which)
    assert "FluxGuidance" in e.fix
    refused(host, start, fs.cond(3, pooled=False), match="pooled", input_name=which)
    kontext = fs.cond(3)
    kontext[0][1]["reference_latents"] = [torch.zeros(1, 16, 32, 32)]
    refused(host, start, kontext, match="reference latents", input_name=which)


def test_fill_model_is_refused_by_name(host, no_sampling):
    fill = fs.build(5, in_channels=96)
    e = refused(host, _start, host, model=fill, match="Fill", input_name="model")
    assert "UNETLoader" in e.fix


def test_memories_of_another_family_are_refused(host, no_sampling, models, flux_bg):
    pixart = models("pixart_alpha_512")
    refused(host, host.layer_ops.add_layer, flux_bg, pixart, scenes.cond(3),
            scenes.box_mask(SIZE, 0.2, 0.2, 0.6, 0.6), seed=3, match="FLUX",
            input_name="model")


def test_schnell_takes_no_guidance_and_refuses_a_dev_memory(host, flux_bg):
    schnell = fs.build(0, guidance_embed=False)
    memory = _start(host, fs.cond(1, guidance=None), fs.cond(2, guidance=None), model=schnell)
    assert memory.fingerprint.micro_condition is False
    assert flux_bg.fingerprint.micro_condition is True
    refused(host, host.layer_ops.add_layer, flux_bg, schnell, fs.cond(3),
            scenes.box_mask(SIZE, 0.2, 0.2, 0.6, 0.6), seed=3, match="micro_condition",
            input_name="model")


def test_composite_is_the_models_latent_out_and_survives_save_load(host, flux_bg):
    final = flux_bg.top.trajectory.final[None]
    expected = fs.model().model.process_latent_out(final)
    assert flux_bg.latent_shift == pytest.approx(0.1159)
    torch.testing.assert_close(flux_bg.composite_latent()["samples"], expected)
    back = host.serialization.from_bytes(host.serialization.to_bytes(flux_bg), "test")
    assert back.latent_shift == flux_bg.latent_shift
    assert torch.equal(back.composite_latent()["samples"], flux_bg.composite_latent()["samples"])


def test_mqd_routes_under_an_override_that_drops_masks_and_says_so(host, flux_bg, caplog):
    """A backend that ignores masks (as sage does) set as another node's override: the routed
    calls still go to SDPA with the bias (same output as without it), and the log names it."""
    layers = host.layer_ops.add_layer(flux_bg, fs.model(), fs.cond(4),
                                      scenes.box_mask(SIZE, 0.2, 0.2, 0.7, 0.7), seed=4).layers

    def drops_masks(func, *args, **kwargs):
        kwargs["mask"] = None
        return func(*args, **kwargs)

    kit = type("Kit", (), {"size": SIZE})()
    context = _context(layers[-1].negative.embedding, layers[-1].positive.embedding)
    outs = []
    for theirs in (None, drops_masks):
        clone = fs.model().clone()
        if theirs is not None:
            clone.model_options.setdefault("transformer_options", {})[
                "optimized_attention_override"] = theirs
        run = host.families.get("flux").attention_run(layers)
        with caplog.at_level(logging.WARNING):
            run.install(clone)
        outs.append(flux_call(kit, clone, context))
    assert "drops_masks" in caplog.text
    torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=0)
    stock = flux_call(kit, fs.model(), context)
    assert not torch.allclose(outs[0], stock), "MQD changed nothing"


def test_mqd_routes_when_the_backend_drops_masks(host, flux_bg, monkeypatch):
    """ComfyUI's sage attention ignores masks: with a backend like it (wrapped as ComfyUI wraps
    its backends) the routed calls still go to SDPA with the bias, so nothing changes."""
    import comfy.ldm.flux.math as flux_math
    from comfy.ldm.modules.attention import attention_pytorch, wrap_attn

    @wrap_attn
    def sage_like(q, k, v, heads, mask=None, **kwargs):
        return attention_pytorch(q, k, v, heads, mask=None, **kwargs)

    layers = host.layer_ops.add_layer(flux_bg, fs.model(), fs.cond(4),
                                      scenes.box_mask(SIZE, 0.2, 0.2, 0.7, 0.7), seed=4).layers
    kit = type("Kit", (), {"size": SIZE})()
    context = _context(layers[-1].negative.embedding, layers[-1].positive.embedding)

    def routed_output():
        clone = fs.model().clone()
        host.families.get("flux").attention_run(layers).install(clone)
        return flux_call(kit, clone, context)

    want = routed_output()
    monkeypatch.setattr(flux_math, "optimized_attention", sage_like)
    torch.testing.assert_close(routed_output(), want, rtol=1e-5, atol=1e-5)
