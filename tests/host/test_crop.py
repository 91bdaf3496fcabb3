"""Edits around the mask (issue 25), for every family that can place a crop: PixArt (alpha, with
its size micro-conditions), SD 1.5 and SDXL, small random models (tools/family_kits.py) at sizes
where a crop is smaller than the picture (PixArt's crops are at least 512 px a side).

- The model runs on the crop only (its input's shape), and everything outside the mask (so
  outside the crop) is bit-identical to the memory before, in every stored point.
- The stack verbs with the crop (add, edit move, delete heal) keep the stack invariant
  (tests/support/stack_check.py) and change no composite outside their crops; save/load and
  value semantics hold; a crop at the picture's border; a margin larger than the picture falls
  back to the whole picture (bit-identical to it) and says so; bad input is refused first.
- PixArt's tokens in a crop get the full picture's positional embedding (through ComfyUI's own
  forward); MQD in the crop gives keys to the layers with a mask there only; SDXL's size and
  crop conditioning says where the crop lies; the AddLayer node hands the choice on and
  defaults to the whole picture.
"""
import logging
from dataclasses import replace

import pytest
import torch
from refusals import refused
from stack_check import StackModel, points

from tools import scenes
from tools.family_kits import make_kit

pytestmark = pytest.mark.host

SIZES = {"pixart_alpha": 768, "sd15": 256, "sdxl": 256}
AROUND = "around the mask"
BOX = (0.55, 0.55, 0.80, 0.80)


@pytest.fixture(scope="module", params=list(SIZES))
def kit(request, models):
    return replace(make_kit(request.param, models), size=SIZES[request.param])


@pytest.fixture(scope="module")
def bg(host, kit):
    return kit.start(host.layer_ops)


@pytest.fixture
def seen(kit):
    """The latent (h, w) of every diffusion-model call while the test runs."""
    shapes = []
    dm = kit.model.model.diffusion_model
    handle = dm.register_forward_pre_hook(lambda m, args: shapes.append(tuple(args[0].shape[-2:])))
    yield shapes
    handle.remove()


@pytest.fixture
def crops(host, monkeypatch):
    """Every crop a run planned while the test runs (None: the whole picture)."""
    planned, plan = [], host.crop_run.plan

    def spy(*args, **kwargs):
        planned.append(plan(*args, **kwargs))
        return planned[-1]

    monkeypatch.setattr(host.crop_run, "plan", spy)
    return planned


def _outside(memory, crops_):
    keep = torch.ones(memory.latent_hw, dtype=torch.bool)
    for c in crops_:
        keep &= ~c.mask(memory.latent_hw)
    return keep


def _assert_same_outside(new, old, keep):
    assert len(new.layers) == len(old.layers)
    for a, b in zip(new.layers, old.layers, strict=True):
        assert torch.equal(points(a.trajectory)[..., keep], points(b.trajectory)[..., keep])


@pytest.fixture(scope="module")
def two_layers(host, kit, bg):
    """Background and two objects, A far from BOX and B near it (whole-picture runs)."""
    a = kit.add(host.layer_ops, bg, (0.0, 0.0, 0.15, 0.15), 30, name="A")
    return kit.add(host.layer_ops, a, (0.60, 0.60, 0.70, 0.70), 31, name="B")


def test_add_runs_on_the_crop_and_is_exact_outside_the_mask(host, kit, bg, seen, crops):
    added = kit.add(host.layer_ops, bg, BOX, 4, compute=AROUND, context_margin=8)
    (c,) = crops
    h, w = bg.latent_hw
    assert c is not None and c.height * c.width < h * w
    assert seen and set(seen) == {(c.height, c.width)}, "the model did not run on the crop only"
    outside = added.top.latent_mask == 0
    a, b = points(added.top.trajectory), points(bg.top.trajectory)
    assert torch.equal(a[..., outside], b[..., outside]), "changed outside the mask"
    assert not torch.equal(a[..., ~outside], b[..., ~outside]), "the mask was not sampled"
    assert torch.equal(added.layers[0].trajectory.x, bg.layers[0].trajectory.x)


def test_a_crop_at_the_border(host, kit, bg, crops):
    added = kit.add(host.layer_ops, bg, (0.0, 0.0, 0.2, 0.2), 5, compute=AROUND,
                    context_margin=16)
    (c,) = crops
    assert c is not None and (c.top, c.left) == (0, 0)
    outside = added.top.latent_mask == 0
    assert torch.equal(points(added.top.trajectory)[..., outside],
                       points(bg.top.trajectory)[..., outside])


def test_a_margin_larger_than_the_picture_is_the_whole_picture(host, kit, bg, seen, caplog):
    caplog.set_level(logging.INFO, logger="LayerMemory")
    huge = kit.add(host.layer_ops, bg, BOX, 6, compute=AROUND, context_margin=8 * kit.size)
    assert "larger than" in caplog.text and "whole picture" in caplog.text
    assert set(seen) == {bg.latent_hw}, "the fallback did not run on the whole picture"
    outside = huge.top.latent_mask == 0
    assert torch.equal(points(huge.top.trajectory)[..., outside],
                       points(bg.top.trajectory)[..., outside])


def test_stack_verbs_around_the_mask(host, kit, two_layers, crops):
    lo, eo, memory = host.layer_ops, host.edit_ops, two_layers
    model, digest = StackModel(memory), scenes.memory_digest(memory)
    crops.clear()
    ins = kit.add(lo, memory, BOX, 22, name="I", position=2, compute=AROUND, context_margin=8)
    model.made(ins, 2)
    model.check(ins)
    keep = _outside(ins, crops)
    assert torch.equal(points(ins.layers[3].trajectory)[..., keep],
                       points(memory.layers[2].trajectory)[..., keep])
    insert_crops = list(crops)
    crops.clear()
    moved = eo.edit_layer(ins, kit.model, "I", mask=kit.mask(0.50, 0.65, 0.75, 0.90),
                          compute=AROUND, context_margin=8)
    assert crops and all(c is not None for c in crops)
    model.made(moved, 2)
    vacated = (ins.layers[2].latent_mask > 0) & ~(moved.layers[2].latent_mask > 0)
    model.healed(moved, host.masks.grow(vacated.float(), 2) > 0)
    model.check(moved)
    _assert_same_outside(moved, ins, _outside(moved, crops))
    every = list(insert_crops) + list(crops)
    crops.clear()
    region = lo.deletion_region(moved, 2, 2)
    gone = lo.delete_layer(moved, kit.model, "I", regenerate_fraction=0.5, compute=AROUND,
                           context_margin=8)
    (c,) = crops
    assert c is not None
    model.healed(gone, region)
    model.check(gone)
    keep = _outside(gone, every + list(crops))
    for new, old in zip(gone.layers, memory.layers, strict=True):  # "I" is gone again
        assert torch.equal(points(new.trajectory)[..., keep], points(old.trajectory)[..., keep])
    back = host.serialization.from_bytes(host.serialization.to_bytes(gone), "test")
    assert scenes.memory_digest(back) == scenes.memory_digest(gone)
    assert scenes.memory_digest(memory) == digest, "a verb changed its input memory"


def test_bad_choices_are_refused_before_sampling(host, kit, bg, two_layers, no_sampling):
    lo, eo, mask = host.layer_ops, host.edit_ops, kit.mask(*BOX)
    refused(host, lo.add_layer, bg, kit.model, kit.cond(3), mask, 3, compute="around",
            match="unknown choice", input_name="compute")
    refused(host, lo.add_layer, bg, kit.model, kit.cond(3), mask, 3, compute=AROUND,
            context_margin=-8, match="negative", input_name="context_margin")
    refused(host, lo.delete_layer, two_layers, kit.model, "A", compute="crop",
            match="unknown choice", input_name="compute")
    refused(host, eo.edit_layer, two_layers, kit.model, "B", seed=9, compute=AROUND,
            context_margin=-1, match="negative", input_name="context_margin")


def test_model_is_stock_after_a_crop_run_an_error_and_an_interrupt(host, kit, bg):
    model = kit.model

    def state():
        return (dict(model.object_patches), repr(model.wrappers),
                [(n, id(m), type(m)) for n, m in model.model.diffusion_model.named_modules()])

    before = state()
    kit.add(host.layer_ops, bg, BOX, 7, compute=AROUND, context_margin=8)
    assert state() == before

    def boom(module, args, out):
        raise RuntimeError("boom inside the model")

    hook = torch.nn.modules.module.register_module_forward_hook(boom)
    try:
        with pytest.raises(RuntimeError, match="boom"):
            kit.add(host.layer_ops, bg, BOX, 7, compute=AROUND, context_margin=8)
    finally:
        hook.remove()
    assert state() == before
    import comfy.model_management as mm

    mm.interrupt_current_processing(True)
    try:
        with pytest.raises(mm.InterruptProcessingException):
            kit.add(host.layer_ops, bg, BOX, 7, compute=AROUND, context_margin=8)
    finally:
        mm.interrupt_current_processing(False)
    assert state() == before


def test_mqd_in_the_crop_keys_only_the_layers_there(host, kit, two_layers):
    family = host.families.get(two_layers.fingerprint.family)
    draft = replace(two_layers.top, name="draft")
    c = host.crop.plan(draft.latent_mask > 0, 0, family.crop_cells, family.min_size, "t")
    assert c is not None and not bool((c.of(two_layers.layers[1].latent_mask) > 0).any())
    kept = host.crop_run.layers_in(c, list(two_layers.layers) + [draft])
    assert [layer.name for layer in kept] == ["background", "B", "draft"]
    assert all(tuple(layer.latent_mask.shape) == (c.height, c.width) for layer in kept)
    run = family.attention_run(kept)
    if hasattr(run, "prompt_owner"):  # PixArt: owners of no token get no keys either
        assert run.prompt_owner == [0, 2]


def test_the_nodes_pass_the_choice_and_default_to_the_whole_picture(host, kit, bg, crops, seen):
    if kit.name != "sd15":
        pytest.skip("the node hands the choice on whatever the family: one (the cheapest) does")
    add = host.nodes.NODE_CLASS_MAPPINGS["LayerMem_AddLayer"]
    mask = kit.mask(*BOX)
    around = add.execute(bg, kit.model, kit.cond(8), mask, 8, compute=AROUND,
                         context_margin=8).result[0]
    whole = add.execute(bg, kit.model, kit.cond(8), mask, 8).result[0]
    assert len(crops) == 1 and crops[0] is not None  # the default plans no crop: as before
    assert seen[0] == (crops[0].height, crops[0].width) and seen[-1] == bg.latent_hw
    outside = around.top.latent_mask == 0
    assert torch.equal(points(around.top.trajectory)[..., outside],
                       points(whole.top.trajectory)[..., outside])


def test_sdxl_conditioning_says_where_the_crop_lies(host, kit, bg, monkeypatch):
    if kit.family != "sdxl":
        pytest.skip("only SDXL has size and crop conditioning")
    extras, run = [], host.sampling.run

    def spy(model, schedule, positive, negative, *args, **kwargs):
        extras.append((dict(positive.extras), dict(negative.extras), kwargs.get("window")))
        return run(model, schedule, positive, negative, *args, **kwargs)

    monkeypatch.setattr(host.sampling, "run", spy)
    kit.add(host.layer_ops, bg, BOX, 9, compute=AROUND, context_margin=8)
    (pos, neg, window) = extras[0]
    top, left, h, w = window
    for e in (pos, neg):
        assert (e["width"], e["height"]) == (kit.size, kit.size)
        assert (e["crop_w"], e["crop_h"]) == (8 * left, 8 * top)
        assert (e["target_width"], e["target_height"]) == (8 * w, 8 * h)


@pytest.mark.parametrize("variant", ["pixart_alpha_512", "pixart_sigma_512"])
def test_pixart_crop_tokens_get_the_full_pictures_positions(host, models, variant):
    """Through ComfyUI's PixArtMS.forward_orig: the first block's input on a crop equals the
    whole picture's at the crop's tokens (x_embedder is a 2x2 patch conv: local); alpha and
    sigma (their positional-interpolation settings differ)."""
    from comfy.ldm.pixart.pixartms import PixArtMS

    dm = models(variant).model.diffusion_model
    assert isinstance(dm, PixArtMS)
    h = w = 768 // 8
    box = (32, 16, 64, 64)  # top, left, height, width: 512 px, off the top-left corner
    x = torch.randn(1, 4, h, w, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([500.0])
    ctx = torch.randn(1, 1, 6, 4096, generator=torch.Generator().manual_seed(1))
    seen = []
    handle = dm.blocks[0].register_forward_pre_hook(lambda m, args: seen.append(args[0]))
    stock = dm.x_embedder
    try:
        with torch.no_grad():
            dm.forward_orig(x, t, ctx)
            top, left, ch, cw = box
            dm.x_embedder = host.pixart_crop.CropPositionEmbed(stock, dm, (h, w), box)
            dm.forward_orig(x[..., top:top + ch, left:left + cw], t, ctx)
            dm.x_embedder = stock
            dm.forward_orig(x[..., top:top + ch, left:left + cw], t, ctx)
    finally:
        dm.x_embedder = stock
        handle.remove()
    full, cropped, unplaced = seen
    grid = full.view(h // 2, w // 2, -1)[top // 2:(top + ch) // 2, left // 2:(left + cw) // 2]
    want = grid.reshape(1, -1, full.shape[-1])
    torch.testing.assert_close(cropped, want, rtol=1e-4, atol=1e-4)
    assert not torch.allclose(unplaced, want, atol=1e-2), "the stock crop is placed anyway?"


def test_an_unblended_heal_around_the_mask_changes_the_crop_only(host, kit, two_layers, crops):
    if kit.is_pixart:
        pytest.skip("writing an unforced tail into the crop is family-agnostic: the UNets do")
    model, memory = StackModel(two_layers), two_layers
    gone = host.layer_ops.delete_layer(memory, kit.model, "A", regenerate_fraction=1.0,
                                       unblended_fraction=0.5, compute=AROUND, context_margin=8)
    (c,) = crops
    inside = c.mask(memory.latent_hw)
    region = host.layer_ops.deletion_region(memory, 1, 2)
    for new, old in zip(gone.layers, [memory.layers[0], memory.layers[2]], strict=True):
        assert torch.equal(points(new.trajectory)[..., ~inside],
                           points(old.trajectory)[..., ~inside])
    free = inside & ~region & (gone.top.latent_mask == 0)
    assert not torch.equal(points(gone.top.trajectory)[..., free],
                           points(memory.top.trajectory)[..., free]), "the tail was not free"
    model.healed(gone, inside)
    model.check(gone)
