"""SD3 / SD3.5 specifics (issue 21): the three variants recognised through ComfyUI's loader path;
SD3.5 Medium's image-only second self-attention (MMDiT-X attn2) stays stock while the joint call
is routed; the latent shift through save/load; MQD under another node's override and a backend
that drops masks; bad input refused before any sampling, naming the input and the fix."""
import logging

import pytest
import torch
from attention_probe import (
    _context,
    assert_joint_routing,
    flux_call,
)
from joint_start import start_joint
from refusals import refused

from tools import scenes
from tools import sd3_scenes as s3
from tools.family_kits import KITS, FamilyKit

pytestmark = pytest.mark.host
SIZE = s3.SIZE
KIT = type("Kit", (), {"size": SIZE, "family": "sd3"})()
IMAGE_TOKENS = (SIZE // 16) ** 2


def _start(host, positive=None, negative=None, size=SIZE, model=None):
    return start_joint(host.layer_ops, s3, positive, negative, model, size)


@pytest.fixture(scope="module")
def sd3_bg(host):
    return _start(host)


@pytest.fixture(scope="module")
def two_layers(host, sd3_bg):
    return host.layer_ops.add_layer(sd3_bg, s3.model(), s3.cond(4),
                                    scenes.box_mask(SIZE, 0.2, 0.2, 0.7, 0.7), seed=4).layers


@pytest.mark.parametrize("variant,name", [("medium35", "sd3.5-mmdit-x"), ("large35", "sd3.5"),
                                          ("sd3", "sd3")])
def test_variants_are_recognised_and_keep_the_background(host, variant, name):
    """Each variant, detected by ComfyUI from its state dict, is the SD3 family with its own
    fingerprint; a layer keeps everything outside its mask bit for bit."""
    model = s3.model(variant)
    assert host.families.family_of(model) is host.families.get("sd3")
    bg = _start(host, model=model)
    assert bg.fingerprint.family == "sd3" and bg.fingerprint.image_model == name
    assert bg.fingerprint.depth == 2 and bg.fingerprint.latent_channels == 16
    added = host.layer_ops.add_layer(bg, model, s3.cond(4),
                                     scenes.box_mask(SIZE, 0.3, 0.2, 0.7, 0.6), seed=4)
    outside = added.top.latent_mask == 0
    assert torch.equal(added.top.trajectory.x[..., outside], bg.top.trajectory.x[..., outside])
    assert torch.equal(added.top.trajectory.final[..., outside],
                       bg.top.trajectory.final[..., outside])


@pytest.mark.parametrize("variant", ["large35", "sd3"])
def test_other_variants_route_by_the_rule_and_one_owner_is_stock(host, variant):
    """SD3.5 Large and SD3 Medium (the kit in the shared invariants is SD3.5 Medium): every
    block's joint call gives the forbidden keys exactly zero weight; the background alone gives
    the stock output."""
    kit = FamilyKit("sd3_" + variant, host.families.get("sd3"), SIZE, s3.model(variant),
                    KITS["sd3"])
    bg = _start(host, model=kit.model)
    layers = host.layer_ops.add_layer(bg, kit.model, s3.cond(4),
                                      scenes.box_mask(SIZE, 0.2, 0.2, 0.7, 0.7), seed=4).layers
    assert_joint_routing(host, kit, layers, (SIZE // 16, SIZE // 16),
                         len(kit.model.model.diffusion_model.joint_blocks))
    clone = kit.model.clone()
    host.families.get("sd3").attention_run(layers[:1]).install(clone)
    context = _context(layers[0].negative.embedding, layers[0].positive.embedding)
    torch.testing.assert_close(flux_call(kit, clone, context), flux_call(kit, kit.model, context),
                               rtol=1e-5, atol=1e-5)


def test_memory_of_one_variant_is_refused_on_another(host, sd3_bg):
    refused(host, host.layer_ops.add_layer, sd3_bg, s3.model("large35"), s3.cond(3),
            scenes.box_mask(SIZE, 0.2, 0.2, 0.6, 0.6), seed=3, match="image_model",
            input_name="model")


def test_mmdit_x_attn2_stays_stock_and_the_joint_call_is_routed(host, two_layers):
    """SD3.5 Medium's block 0 calls attention twice with the same transformer_options: the joint
    call (text + image tokens) is routed (on SDPA with the bias), the image-only attn2 goes to
    the backend (here another node's override that records it) untouched, with no mask."""
    seen = []

    def recorder(func, *args, **kwargs):
        seen.append((tuple(args[0].shape), kwargs.get("mask")))
        return func(*args, **kwargs)

    clone = s3.model().clone()
    clone.model_options.setdefault("transformer_options", {})[
        "optimized_attention_override"] = recorder
    host.families.get("sd3").attention_run(two_layers).install(clone)
    routed = []
    original = host.sd3_mqd.sdpa

    def record(q, k, v, bias):
        routed.append(tuple(q.shape))
        return original(q, k, v, bias)

    context = _context(two_layers[-1].negative.embedding, two_layers[-1].positive.embedding)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(host.sd3_mqd, "sdpa", record)
        flux_call(KIT, clone, context)
    dm = clone.model.diffusion_model
    attn2_layers = [i for i, b in enumerate(dm.joint_blocks) if b.x_block.x_block_self_attn]
    assert attn2_layers == [0]
    assert len(routed) == len(dm.joint_blocks)
    assert all(shape[2] > IMAGE_TOKENS for shape in routed), "a routed call without text"
    assert [shape for shape, _ in seen] == [(2, IMAGE_TOKENS, 128)] * len(attn2_layers)
    assert all(mask is None for _, mask in seen)


def test_attn2_output_is_the_stock_model_where_the_joint_call_is_not_routed(host, two_layers):
    """With every row unconditional nothing is routed: the output (attn2 included) is the
    stock model's, bit for bit."""
    context = _context(two_layers[-1].negative.embedding, two_layers[-1].positive.embedding)
    clone = s3.model().clone()
    host.families.get("sd3").attention_run(two_layers).install(clone)

    @torch.no_grad()
    def unconditional(model):
        x = torch.randn(2, 16, SIZE // 8, SIZE // 8, generator=torch.Generator().manual_seed(1))
        options = dict(model.model_options.get("transformer_options", {}),
                       cond_or_uncond=[1, 1], wrappers=model.wrappers)
        return model.model.apply_model(x, torch.full((2,), 0.7), c_crossattn=context,
                                       transformer_options=options, y=torch.zeros(2, 2048))

    assert torch.equal(unconditional(clone), unconditional(s3.model()))


def test_routing_survives_a_backend_that_drops_masks(host, two_layers, monkeypatch):
    """ComfyUI's sage attention ignores masks; SD3 passes none anyway: the bias is added by the
    override, so a mask-dropping backend changes nothing routed."""
    import comfy.ldm.modules.diffusionmodules.mmdit as mmdit
    from comfy.ldm.modules.attention import attention_pytorch, wrap_attn

    @wrap_attn
    def sage_like(q, k, v, heads, mask=None, **kwargs):
        return attention_pytorch(q, k, v, heads, mask=None, **kwargs)

    context = _context(two_layers[-1].negative.embedding, two_layers[-1].positive.embedding)

    def routed_output():
        clone = s3.model().clone()
        host.families.get("sd3").attention_run(two_layers).install(clone)
        return flux_call(KIT, clone, context)

    want = routed_output()
    assert not torch.allclose(want, flux_call(KIT, s3.model(), context)), "MQD changed nothing"
    monkeypatch.setattr(mmdit, "optimized_attention", sage_like)
    torch.testing.assert_close(routed_output(), want, rtol=1e-5, atol=1e-5)


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.text = ""

    def emit(self, record):
        self.text += record.getMessage() + "\n"


def test_mqd_that_cannot_reach_the_joint_attention_refuses_instead_of_a_silent_no_op(
        host, sd3_bg, monkeypatch):
    """A node that replaces the MMDiT's attention with a function that ignores ComfyUI's
    attention override: the run stops at its first routed call, naming the model and the fix;
    the memory is unchanged."""
    import comfy.ldm.modules.diffusionmodules.mmdit as mmdit
    from comfy.ldm.modules.attention import attention_pytorch

    digest = scenes.memory_digest(sd3_bg)
    monkeypatch.setattr(mmdit, "optimized_attention", attention_pytorch.__wrapped__)
    e = refused(host, host.layer_ops.add_layer, sd3_bg, s3.model(), s3.cond(4),
                scenes.box_mask(SIZE, 0.2, 0.2, 0.7, 0.7), seed=4, match="could not reach",
                input_name="model")
    assert "use_mqd off" in e.fix
    assert scenes.memory_digest(sd3_bg) == digest
    host.layer_ops.add_layer(sd3_bg, s3.model(), s3.cond(4),
                             scenes.box_mask(SIZE, 0.2, 0.2, 0.7, 0.7), seed=4, use_mqd=False)


def test_another_nodes_override_is_named_and_routing_still_happens(host, two_layers):
    def drops_masks(func, *args, **kwargs):
        kwargs["mask"] = None
        return func(*args, **kwargs)

    context = _context(two_layers[-1].negative.embedding, two_layers[-1].positive.embedding)
    outs = []
    for theirs in (None, drops_masks):
        clone = s3.model().clone()
        if theirs is not None:
            clone.model_options.setdefault("transformer_options", {})[
                "optimized_attention_override"] = theirs
        run = host.families.get("sd3").attention_run(two_layers)
        records, log = _Records(), logging.getLogger("LayerMemory")
        log.addHandler(records)
        try:
            run.install(clone)
        finally:
            log.removeHandler(records)
        assert ("drops_masks" in records.text) == (theirs is not None)
        outs.append(flux_call(KIT, clone, context))
    torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=0)


def test_composite_is_the_models_latent_out_and_survives_save_load(host, sd3_bg):
    final = sd3_bg.top.trajectory.final[None]
    expected = s3.model().model.process_latent_out(final)
    assert sd3_bg.latent_shift == pytest.approx(0.0609)
    torch.testing.assert_close(sd3_bg.composite_latent()["samples"], expected)
    back = host.serialization.from_bytes(host.serialization.to_bytes(sd3_bg), "test")
    assert back.latent_shift == sd3_bg.latent_shift
    assert torch.equal(back.composite_latent()["samples"], sd3_bg.composite_latent()["samples"])


def test_off_grid_size_is_refused(host, no_sampling):
    refused(host, _start, host, size=SIZE + 8, match="multiple of 16", input_name="width")


@pytest.mark.parametrize("which", ["positive", "negative"])
def test_bad_conditioning_is_refused(host, no_sampling, which):
    def start(cond):
        return _start(host, **{which: cond})

    refused(host, start, s3.cond(3, width=2048), match="2048 wide", input_name=which)
    e = refused(host, start, s3.cond(3, pooled=False), match="pooled", input_name=which)
    assert "CLIP-L + CLIP-G" in e.problem
    short = s3.cond(3)
    short[0][1]["pooled_output"] = torch.zeros(1, 1280)  # SDXL's CLIP-G pooled alone
    refused(host, start, short, match="2048", input_name=which)
    e = refused(host, start, s3.cond(3, control=object()), match="ControlNet", input_name=which)
    assert "without the ControlNet" in e.fix


def test_memories_of_another_family_are_refused(host, no_sampling, models, sd3_bg):
    pixart = models("pixart_alpha_512")
    refused(host, host.layer_ops.add_layer, sd3_bg, pixart, scenes.cond(3),
            scenes.box_mask(SIZE, 0.2, 0.2, 0.6, 0.6), seed=3, match="SD3", input_name="model")


@pytest.mark.parametrize("extra,match", [
    ({"register_length": 4}, "register tokens"),
    ({"context_processor_layers": 1, "context_size": 64}, "context processor")])
def test_an_mmdit_the_hooks_cannot_reach_is_refused_by_name(host, no_sampling, extra, match):
    """Register tokens (prompt tokens MQD does not route) and a context processor (attention over
    the prompt tokens outside the joint blocks, which would mix the layers' prompts): refused,
    not silently wrong."""
    import comfy.model_management as mm
    import comfy.model_patcher
    import comfy.supported_models as sm

    config = sm.SD3(s3._config("large35", **extra))
    config.set_inference_dtype(torch.float32, None)
    inner = config.get_model({})
    model = comfy.model_patcher.ModelPatcher(inner, load_device=mm.get_torch_device(),
                                             offload_device=mm.unet_offload_device())
    assert host.families.family_of(model) is None
    e = refused(host, _start, host, model=model, match=match, input_name="model")
    assert "UNETLoader" in e.fix
