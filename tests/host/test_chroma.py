"""Chroma specifics (issue 21): recognised from the classes ComfyUI's loader picks for a Chroma
state dict; its own fingerprint (a FLUX memory is refused on Chroma and a Chroma memory on FLUX);
Chroma Radiance refused by name; bad input refused before any sampling, naming the input and the
fix, the memory unchanged; the latent shift through save/load. The shared invariants (BCG, MQD,
the stack, values, scope) run on the Chroma kit in test_family_invariants.py."""
import pytest
import torch
from joint_start import start_joint
from refusals import refused

from tools import chroma_scenes as cs
from tools import flux_scenes as fs
from tools import scenes

pytestmark = pytest.mark.host
SIZE = cs.SIZE
BOX = (0.2, 0.2, 0.6, 0.6)


def _start(host, positive=None, negative=None, size=SIZE, model=None):
    return start_joint(host.layer_ops, cs, positive, negative, model, size)


@pytest.fixture(scope="module")
def chroma_bg(host):
    return _start(host)


def test_loader_path_detects_chroma_and_the_family_recognises_it(host, chroma_bg):
    """ComfyUI's detection (what UNETLoader runs) reads the kit's weights as Chroma and picks
    the classes the kit is built with; the pack calls it Chroma, not FLUX."""
    import comfy.latent_formats
    import comfy.model_base as mb
    import comfy.model_detection as md
    import comfy.supported_models as sm

    sd = cs.state_dict()
    assert md.detect_unet_config(sd, "")["image_model"] == "chroma"
    assert type(md.model_config_from_unet(sd, "")) is sm.Chroma
    inner = cs.model().model
    assert type(inner) is mb.Chroma
    assert isinstance(inner.latent_format, comfy.latent_formats.Flux)
    assert host.families.family_of(cs.model()) is host.families.get("chroma")
    assert host.families.family_of(fs.model()) is host.families.get("flux")
    fp = chroma_bg.fingerprint
    assert (fp.family, fp.image_model, fp.depth, fp.latent_channels) == ("chroma", "chroma", 2, 16)
    assert fp.micro_condition is False


def test_radiance_is_refused_by_name(host, no_sampling):
    """Chroma Radiance (pixel space): not a family, refused with what it is and what to load."""
    import comfy.model_base as mb

    radiance = cs.build_radiance()
    assert isinstance(radiance.model, mb.ChromaRadiance)
    assert host.families.family_of(radiance) is None
    e = refused(host, _start, host, model=radiance, match="Radiance", input_name="model")
    assert "pixels" in e.problem and "UNETLoader" in e.fix


@pytest.mark.parametrize("which", ["positive", "negative"])
def test_bad_conditioning_is_refused(host, no_sampling, which):
    def start(cond):
        return _start(host, **{which: cond})

    e = refused(host, start, cs.cond(3, width=768), match="768 wide", input_name=which)
    assert "chroma" in e.fix
    masked = cs.cond(3)
    masked[0][1]["attention_mask"] = torch.ones(1, 16)
    refused(host, start, masked, match="attention mask", input_name=which)


def test_off_grid_size_is_refused(host, no_sampling):
    e = refused(host, _start, host, size=SIZE + 8, match="multiple of 16", input_name="width")
    assert "Chroma" in e.problem


def test_flux_and_chroma_memories_are_refused_on_each_other(host, chroma_bg):
    """Chroma is a model_base.Flux subclass but its own family: each memory refuses the other
    model, naming both, before sampling, and is left as it was."""
    flux_bg = host.layer_ops.start_memory(fs.model(), fs.cond(1), fs.cond(2), SIZE, SIZE, seed=1,
                                          steps=2, cfg=3.0, sampler_name="euler",
                                          scheduler="simple")
    mask = scenes.box_mask(SIZE, *BOX)
    for memory, model, cond in ((chroma_bg, fs.model(), fs.cond(3)),
                                (flux_bg, cs.model(), cs.cond(3))):
        digest = scenes.memory_digest(memory)
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(host.sampling, "run", _forbidden)
            e = refused(host, host.layer_ops.add_layer, memory, model, cond, mask, seed=3,
                        match="Chroma", input_name="model")
        assert "FLUX" in str(e)
        assert scenes.memory_digest(memory) == digest


def _forbidden(*a, **k):
    raise AssertionError("sampling started before the input was checked")


def test_bad_layer_input_leaves_the_memory_unchanged(host, no_sampling, chroma_bg):
    digest = scenes.memory_digest(chroma_bg)
    refused(host, host.layer_ops.add_layer, chroma_bg, cs.model(), cs.cond(3, width=2048),
            scenes.box_mask(SIZE, *BOX), seed=3, match="2048 wide", input_name="positive")
    assert scenes.memory_digest(chroma_bg) == digest


def test_composite_is_the_models_latent_out_and_survives_save_load(host, chroma_bg):
    final = chroma_bg.top.trajectory.final[None]
    torch.testing.assert_close(chroma_bg.composite_latent()["samples"],
                               cs.model().model.process_latent_out(final))
    assert chroma_bg.latent_shift == pytest.approx(0.1159)
    back = host.serialization.from_bytes(host.serialization.to_bytes(chroma_bg), "test")
    assert back.fingerprint == chroma_bg.fingerprint
    assert torch.equal(back.composite_latent()["samples"],
                       chroma_bg.composite_latent()["samples"])


def test_guidance_reaches_the_model_per_layer(host, chroma_bg):
    """FluxGuidance's value is kept with the prompt (Chroma's approximator takes it): a layer
    with another guidance samples another region, and the same outside it."""
    mask = scenes.box_mask(SIZE, *BOX)
    plain = host.layer_ops.add_layer(chroma_bg, cs.model(), cs.cond(4), mask, seed=4)
    guided = host.layer_ops.add_layer(chroma_bg, cs.model(), cs.cond(4, guidance=4.0), mask,
                                      seed=4)
    assert dict(guided.top.positive.extras)["guidance"] == 4.0
    inside = plain.top.latent_mask > 0
    a, b = plain.top.trajectory.final, guided.top.trajectory.final
    assert torch.equal(a[..., ~inside], b[..., ~inside])
    assert not torch.equal(a[..., inside], b[..., inside])
