"""The method's invariants, once for every model kind: PixArt-alpha, PixArt-Sigma, SD 1.5, SDXL
(issue 11), FLUX.1 dev, SD3.5 Medium and Chroma (issue 21). Small random models through
ComfyUI's own classes (tools/family_kits.py).

- BCG: outside the mask every model input and the final latent are bit-identical to the layer
  below, for every sampler family (first order, second order, multistep, predictor-corrector,
  DDIM, ancestral, SDE).
- MQD: in one routed model call, at every attention level, each token group of the conditional
  row gets the stock cross-attention output for its own layer's prompt (the documented
  ownership rule: area-pooled mask >= 0.5, newest first); the negative row is stock. Joint
  attention (FLUX, SD3): in every block a token's forbidden keys get exactly zero weight, a single
  owner is stock, and another layer's prompt leaves an owner's first block unchanged.
- The stack: insert, move, reroll, delete (healed and exact undo) and history keep every
  composite made of the layers below it only (tests/support/stack_check.py).
- Values: no verb changes the memory it was given.
- Scope: the caller's MODEL is stock after a run, an error inside the model and an interrupt.
"""
import dataclasses
import math

import pytest
import torch
from attention_probe import (
    _context,
    expected_owners,
    flux_call,
    joint_allowed,
    joint_calls,
    routed_calls,
)
from stack_check import StackModel, points

from tools import scenes
from tools.family_kits import KIT_NAMES, make_kit

pytestmark = pytest.mark.host

SAMPLERS = [("euler", "normal"), ("heun", "simple"), ("dpmpp_2m", "karras"),
            ("uni_pc", "sgm_uniform"), ("ddim", "ddim_uniform"), ("euler_ancestral", "karras"),
            ("dpmpp_2m_sde", "karras")]
FLOW_SAMPLERS = [("res_multistep", "simple"), ("deis", "beta")]
LEVELS = {"pixart_alpha": {(32, 32)}, "pixart_sigma": {(32, 32)},
          "sd15": {(16, 16), (8, 8), (4, 4)}, "sdxl": {(16, 16), (8, 8)}}
BOX_A, BOX_B = (0.05, 0.05, 0.55, 0.55), (0.35, 0.30, 0.85, 0.80)


@pytest.fixture(scope="module", params=KIT_NAMES)
def kit(request, models):
    return make_kit(request.param, models)


@pytest.fixture(scope="module")
def stack(host, kit):
    """Background, A and B (B overlaps A; B's prompt has another length): every memory."""
    bg = kit.start(host.layer_ops)
    a = kit.add(host.layer_ops, bg, BOX_A, 20, name="A")
    longer = kit.cond(21, tokens=kit.long_tokens)
    b = host.layer_ops.add_layer(a, kit.model, longer, kit.mask(*BOX_B), seed=21, name="B")
    return [bg, a, b]


def _assert_exact_outside(new, below):
    where = new.top.latent_mask == 0
    a, b = new.top.trajectory, below.top.trajectory
    assert torch.equal(a.sigmas, b.sigmas) and a.calls == b.calls
    assert torch.equal(a.x[..., where], b.x[..., where]), "model inputs differ outside the mask"
    assert torch.equal(a.final[..., where], b.final[..., where]), "final differs outside the mask"
    assert torch.equal(new.composite_latent()["samples"][..., where],
                       below.composite_latent()["samples"][..., where])
    assert not torch.equal(a.final[..., ~where], b.final[..., ~where]), "the mask was not sampled"


@pytest.mark.parametrize("sampler,scheduler", SAMPLERS)
def test_bcg_is_bit_exact_outside_the_mask(host, kit, sampler, scheduler):
    bg = kit.start(host.layer_ops, sampler, scheduler, steps=3, seed=3)
    added = kit.add(host.layer_ops, bg, (0.3, 0.2, 0.7, 0.6), 4, grow_pixels=1)
    _assert_exact_outside(added, bg)
    assert added.fingerprint.family == kit.family


@pytest.mark.parametrize("sampler,scheduler", FLOW_SAMPLERS)
def test_bcg_is_bit_exact_outside_the_mask_on_flow_samplers(host, kit, sampler, scheduler):
    """The flow-matching samplers FLUX and SD3 users pick, on the joint kits only (CI time)."""
    _joint_only(kit)
    test_bcg_is_bit_exact_outside_the_mask(host, kit, sampler, scheduler)


def test_each_layer_follows_the_one_below(stack):
    for below, new in zip(stack, stack[1:], strict=False):
        _assert_exact_outside(new, below)


def test_mqd_gives_each_group_its_own_stock_attention_at_every_level(host, kit, stack):
    if kit.joint:
        pytest.skip("cross-attention invariant; joint attention (FLUX, SD3, Chroma) has its own "
                    "below")
    layers = stack[-1].layers
    negative = layers[-1].negative.embedding  # the run samples with the newest layer's
    calls = routed_calls(host, kit, layers, negative)
    assert calls and {c.hw for c in calls} == LEVELS[kit.name]
    latent_masks = [layer.latent_mask for layer in layers[1:]]
    prompts = [layer.positive.embedding for layer in layers]
    for call in calls:
        owners = expected_owners(latent_masks, call.hw)
        if call.hw == max(LEVELS[kit.name]):
            assert torch.equal(torch.unique(owners), torch.arange(len(layers)))
        torch.testing.assert_close(call.out[:1], call.stock(call.x[:1], negative),
                                   rtol=1e-5, atol=1e-5)
        for j, prompt in enumerate(prompts):
            group = owners == j
            stock = call.stock(call.x[1:], prompt)[0]
            torch.testing.assert_close(call.out[1, group], stock[group], rtol=1e-5, atol=1e-5)


def _joint_only(kit):
    if not kit.joint:
        pytest.skip("joint attention invariant; cross-attention families have their own above")


def _token_hw(kit):
    return (kit.size // 16, kit.size // 16)


def test_joint_mqd_gives_forbidden_keys_zero_weight_at_every_block(host, kit, stack):
    """Every routed call (one per double and single block): the conditional row's weights are
    exactly 0 where the rule forbids a key and sum to 1 where it allows; the negative's row
    sees its own text and every image token, never the padding; no NaN."""
    _joint_only(kit)
    layers = stack[-1].layers
    calls, out = joint_calls(host, kit, layers, layers[-1].negative.embedding)
    assert len(calls) == kit.joint_blocks
    assert torch.isfinite(out).all()
    owners = expected_owners([layer.latent_mask for layer in layers[1:]], _token_hw(kit))
    assert torch.equal(torch.unique(owners), torch.arange(len(layers)))
    lengths = [int(layer.positive.embedding.shape[1]) for layer in layers]
    # the negative's row as ComfyUI batches it: both prompts repeated to a common length
    negative_text = math.lcm(int(layers[-1].negative.embedding.shape[1]), lengths[-1])
    for call in calls:
        text = call.q.shape[2] - owners.numel()
        allowed = joint_allowed(lengths, owners, text)
        w = call.weights()
        assert torch.isfinite(call.out).all()
        # the call applied these weights (the bias was not dropped on the way to the kernel)
        torch.testing.assert_close(call.out.double(), w @ call.v.double(), rtol=1e-4, atol=1e-5)
        cond = w[1]  # cond_or_uncond [1, 0]: row 1 is the positive
        assert torch.equal(cond[:, ~allowed], torch.zeros_like(cond[:, ~allowed]))
        assert (cond[:, allowed] > 0).all()
        torch.testing.assert_close(cond.sum(-1), torch.ones_like(cond.sum(-1)))
        padding = torch.zeros(text + owners.numel(), dtype=torch.bool)
        padding[negative_text:text] = True
        uncond = w[0]
        assert torch.equal(uncond[:, ~padding][:, :, padding],
                           torch.zeros_like(uncond[:, ~padding][:, :, padding]))
        assert (uncond[:, ~padding][:, :, ~padding] > 0).all()


def _covering(layer, kit):
    """The layer with a mask over the whole picture (it owns every token)."""
    h = w = kit.size // 8
    return dataclasses.replace(layer, latent_mask=torch.ones(h, w),
                               token_mask=torch.ones(h // 2, w // 2, dtype=torch.bool))


def test_joint_mqd_single_owner_is_stock(host, kit, stack):
    """One owner (the background alone; or a layer covering everything, so the layer below owns
    no token and its prompt is left out) gives the stock model output for that owner's prompt,
    both CFG rows. The negative has the prompt's length: ComfyUI repeats prompts of other
    lengths to a common one when it batches them, which joint attention does not ignore."""
    _joint_only(kit)
    layers = stack[-1].layers
    for routed in ([layers[0]], [layers[0], _covering(layers[2], kit)]):
        length = int(routed[-1].positive.embedding.shape[1])
        negative = kit.cond(3, tokens=length)[0][0]
        run = host.families.get(kit.family).attention_run(routed)
        clone = kit.model.clone()
        run.install(clone)
        context = _context(negative, routed[-1].positive.embedding)
        got = flux_call(kit, clone, context)
        stock = flux_call(kit, kit.model, context)
        assert torch.isfinite(got).all()
        torch.testing.assert_close(got, stock, rtol=1e-5, atol=1e-5)


def test_joint_mqd_prompt_j_leaves_owner_i_unchanged_in_the_first_block(host, kit, stack):
    """In the first block, what owner i's text and image tokens compute does not depend on
    prompt j (its keys get no weight there); j's own tokens do change."""
    _joint_only(kit)
    layers = list(stack[-1].layers)
    negative = layers[-1].negative.embedding
    other = dataclasses.replace(layers[1].positive, embedding=torch.randn_like(
        layers[1].positive.embedding))
    changed = layers[:1] + [dataclasses.replace(layers[1], positive=other)] + layers[2:]
    first, _ = joint_calls(host, kit, layers, negative)
    second, _ = joint_calls(host, kit, changed, negative)
    owners = expected_owners([layer.latent_mask for layer in layers[1:]], _token_hw(kit))
    lengths = [int(layer.positive.embedding.shape[1]) for layer in layers]
    text = first[0].q.shape[2] - owners.numel()
    own = torch.full((text,), -1, dtype=torch.long)
    own[:sum(lengths)] = torch.repeat_interleave(torch.arange(len(lengths)), torch.tensor(lengths))
    query_owner = torch.cat([own, owners])
    a, b = first[0].out[1], second[0].out[1]  # the conditional row, [heads, S, d]
    for i in (0, 2):
        rows = query_owner == i
        torch.testing.assert_close(a[:, rows], b[:, rows], rtol=1e-6, atol=1e-6)
    assert not torch.allclose(a[:, query_owner == 1], b[:, query_owner == 1])


def test_mqd_changes_the_masked_region_only_and_matters(host, kit, stack):
    on = kit.add(host.layer_ops, stack[1], BOX_B, 21, use_mqd=True)
    off = kit.add(host.layer_ops, stack[1], BOX_B, 21, use_mqd=False)
    outside = on.top.latent_mask == 0
    a, b = on.top.trajectory.final, off.top.trajectory.final
    assert torch.equal(a[..., outside], b[..., outside])
    assert not torch.equal(a[..., ~outside], b[..., ~outside]), "MQD routing had no effect"


def _support(layer):
    return layer.latent_mask > 0


def test_verbs_keep_the_stack_consistent(host, kit, stack):
    lo, memory = host.layer_ops, stack[-1]
    model = StackModel(memory)
    ins = kit.add(lo, memory, (0.55, 0.05, 0.95, 0.50), 22, name="I", position=2)
    assert [layer.name for layer in ins.layers] == ["background", "A", "I", "B"]
    keep = ~_support(ins.layers[2])
    assert torch.equal(points(ins.top.trajectory)[..., keep],
                       points(memory.top.trajectory)[..., keep])
    model.made(ins, 2)
    model.check(ins)
    moved = host.edit_ops.edit_layer(ins, kit.model, "A", mask=kit.mask(0.05, 0.55, 0.40, 0.95))
    model.made(moved, 1)
    changed = host.masks.grow((_support(ins.layers[1]) | _support(moved.layers[1])).float(), 2) > 0
    for old, new in zip(ins.layers, moved.layers, strict=True):
        assert torch.equal(points(new.trajectory)[..., ~changed],
                           points(old.trajectory)[..., ~changed])
    vacated = _support(ins.layers[1]) & ~_support(moved.layers[1])
    model.healed(moved, host.masks.grow(vacated.float(), 2) > 0)
    model.check(moved)
    rerolled = host.edit_ops.edit_layer(moved, kit.model, "B", seed=77)
    model.made(rerolled, 3)
    model.check(rerolled)
    region = lo.deletion_region(rerolled, 2, 2)
    gone = lo.delete_layer(rerolled, kit.model, "I", regenerate_fraction=0.5)
    model.healed(gone, region)
    model.check(gone)
    undone = lo.delete_layer(gone, kit.model, "A", regenerate_fraction=0.0)
    model.check(undone)
    assert [layer.name for layer in undone.layers] == ["background", "B"]
    model.check(undone.truncated(1))


def test_no_verb_changes_the_memory_it_was_given(host, kit, stack):
    memory = stack[-1]
    digest = scenes.memory_digest(memory)
    outputs = [
        kit.add(host.layer_ops, memory, (0.5, 0.5, 0.9, 0.9), 30),
        kit.add(host.layer_ops, memory, (0.5, 0.5, 0.9, 0.9), 31, position=1),
        host.layer_ops.delete_layer(memory, kit.model, "A", regenerate_fraction=0.5),
        host.edit_ops.edit_layer(memory, kit.model, "A", positive=kit.cond(40), seed=41),
        memory.truncated(2), memory.renamed(1, "renamed"),
        host.serialization.from_bytes(host.serialization.to_bytes(memory), "test"),
    ]
    assert scenes.memory_digest(memory) == digest, "a verb changed its input memory"
    assert all(out is not memory for out in outputs)
    assert [layer.name for layer in memory.layers] == ["background", "A", "B"]


def _model_state(kit):
    """What a run must leave as it found: patches, options, wrappers, the modules themselves."""
    model = kit.model
    modules = [(name, id(m), type(m)) for name, m in model.model.diffusion_model.named_modules()]
    return (repr(model.model_options), dict(model.object_patches), repr(model.wrappers), modules)


def _assert_stock(host, kit, before, reference):
    assert _model_state(kit) == before, "the caller's MODEL kept a patch"
    again = kit.start(host.layer_ops)
    assert torch.equal(again.top.trajectory.final, reference.top.trajectory.final)


def test_model_is_stock_after_a_run_an_error_and_an_interrupt(host, kit, stack):
    import comfy.model_management as mm
    import comfy.utils

    before, bg, a = _model_state(kit), stack[0], stack[1]
    kit.add(host.layer_ops, a, BOX_B, 50)
    host.layer_ops.delete_layer(stack[2], kit.model, "A", regenerate_fraction=0.5)
    _assert_stock(host, kit, before, bg)

    def boom(module, args, out):
        raise RuntimeError("boom inside the model")

    hook = torch.nn.modules.module.register_module_forward_hook(boom)
    try:
        with pytest.raises(RuntimeError, match="boom"):
            kit.add(host.layer_ops, a, BOX_B, 50)
    finally:
        hook.remove()
    _assert_stock(host, kit, before, bg)

    calls = []

    def progress(value, total, preview, prompt_id=None, node_id=None):  # as ComfyUI's main.py
        calls.append(value)
        mm.throw_exception_if_processing_interrupted()

    comfy.utils.set_progress_bar_global_hook(progress)
    try:
        mm.interrupt_current_processing(True)
        with pytest.raises(mm.InterruptProcessingException):
            kit.add(host.layer_ops, a, BOX_B, 50)
    finally:
        comfy.utils.set_progress_bar_global_hook(None)
        mm.interrupt_current_processing(False)
    assert not calls, "the pack stops at its first model call, before any progress report"
    _assert_stock(host, kit, before, bg)
