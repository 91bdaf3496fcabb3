"""Heals and unblended tails survive every later edit outside that edit's own region.

The reproductions of the stack issue (heal lost by a later reroll or delete) and of the
unblended-tail issue (tail lost by a reroll of its layer, or by an edit of the top layer), at
512 px, 3 steps, euler/normal, cfg 4.5 as reported. A heal lives in the composite of the layer
that shows each pixel and every one above it (`stack.write_tail`), so these must hold bit for bit.
"""
import pytest
import torch

from tools import scenes

pytestmark = pytest.mark.host


def _box(x0: int, x1: int) -> torch.Tensor:
    """A square box [x0:x1]^2 in pixels of a 512 px picture."""
    return scenes.box_mask(512, x0 / 512, x0 / 512, x1 / 512, x1 / 512)


@pytest.fixture(scope="module")
def euler_bg(host, alpha):
    return host.layer_ops.start_memory(alpha, scenes.cond(1), scenes.negative(), 512, 512, seed=1,
                                       steps=3, cfg=4.5, sampler_name="euler", scheduler="normal")


@pytest.fixture(scope="module")
def a_then_b(host, alpha, euler_bg):
    a = host.layer_ops.add_layer(euler_bg, alpha, scenes.cond(2), _box(64, 256), seed=2, name="A")
    return host.layer_ops.add_layer(a, alpha, scenes.cond(3), _box(192, 384), seed=3, name="B")


@pytest.fixture(scope="module")
def a_deleted(host, alpha, a_then_b):
    return host.layer_ops.delete_layer(a_then_b, alpha, "1", regenerate_fraction=0.4,
                                       heal_grow_pixels=2)


def _points(t) -> torch.Tensor:
    return torch.cat([t.x, t.final[None]])


def assert_same_outside(before: list, after: list, region: torch.Tensor) -> None:
    """Every stored value of every paired composite is bit-identical outside `region`."""
    keep = ~region
    for k, (old, new) in enumerate(zip(before, after, strict=True)):
        a, b = _points(old.trajectory)[..., keep], _points(new.trajectory)[..., keep]
        changed = int((a != b).sum())
        assert changed == 0, f"composite {k}: {changed} values outside the edit's region changed"


def test_the_heal_is_in_the_composite_that_shows_it(a_then_b, a_deleted):
    """The healed region is owned by the background: the background's composite holds the heal
    (the reproduction's heal changed something there at all)."""
    bg_before, bg_after = a_then_b.layers[0].trajectory, a_deleted.layers[0].trajectory
    assert not torch.equal(bg_after.final, bg_before.final)
    off_b = a_deleted.layers[1].latent_mask == 0
    assert torch.equal(bg_after.final[..., off_b], a_deleted.top.trajectory.final[..., off_b])


def test_a_reroll_of_the_layer_above_a_deleted_one_keeps_the_heal(host, alpha, a_deleted):
    rerolled = host.edit_ops.edit_layer(a_deleted, alpha, "1", seed=99)
    region = rerolled.layers[1].latent_mask > 0
    assert_same_outside(list(a_deleted.layers), list(rerolled.layers), region)
    assert not torch.equal(rerolled.top.trajectory.final, a_deleted.top.trajectory.final)


def test_deleting_the_layer_above_a_heal_keeps_the_heal(host, alpha, a_deleted):
    gone = host.layer_ops.delete_layer(a_deleted, alpha, "-1", regenerate_fraction=0.0)
    region = a_deleted.layers[1].latent_mask > 0
    # the new top is the background's composite: it must show what the old top showed outside B
    assert_same_outside([a_deleted.layers[1]], [gone.layers[0]], region)


def test_a_move_then_a_reroll_of_the_same_layer_keeps_the_vacated_heal(host, alpha, a_then_b):
    moved = host.edit_ops.edit_layer(a_then_b, alpha, "1", mask=_box(256, 448), seed=2,
                                     regenerate_fraction=0.67)
    rerolled = host.edit_ops.edit_layer(moved, alpha, "1", seed=98)
    region = moved.layers[1].latent_mask > 0
    assert_same_outside(list(moved.layers), list(rerolled.layers), region)


def test_deleting_a_layer_over_a_heal_keeps_the_heal_outside_its_mask(host, alpha, euler_bg):
    m = euler_bg
    for seed, box in ((4, (64, 256)), (5, (192, 384)), (6, (320, 480))):
        m = host.layer_ops.add_layer(m, alpha, scenes.cond(seed), _box(*box), seed=seed)
    healed = host.layer_ops.delete_layer(m, alpha, 1, regenerate_fraction=0.4)
    gone = host.layer_ops.delete_layer(healed, alpha, 1, regenerate_fraction=0.0)
    region = healed.layers[1].latent_mask > 0
    assert_same_outside([healed.layers[0], healed.layers[2]], list(gone.layers), region)


def test_a_reroll_keeps_the_layers_own_unblended_tail(host, alpha, euler_bg):
    added = host.layer_ops.add_layer(euler_bg, alpha, scenes.cond(2), _box(128, 320), seed=2,
                                     unblended_fraction=0.34)
    outside = added.top.latent_mask == 0
    assert not torch.equal(added.top.trajectory.final[..., outside],
                           euler_bg.top.trajectory.final[..., outside])  # the tail is there
    rerolled = host.edit_ops.edit_layer(added, alpha, "1", seed=99)
    assert_same_outside(list(added.layers), list(rerolled.layers), added.top.latent_mask > 0)


def test_an_edit_of_the_top_keeps_a_deletions_unblended_tail(host, alpha, euler_bg):
    m = euler_bg
    for seed, box in ((4, (64, 256)), (5, (192, 384)), (6, (320, 480))):
        m = host.layer_ops.add_layer(m, alpha, scenes.cond(seed), _box(*box), seed=seed)
    healed = host.layer_ops.delete_layer(m, alpha, 1, regenerate_fraction=0.67,
                                         unblended_fraction=0.34)
    rerolled = host.edit_ops.edit_layer(healed, alpha, "-1", seed=97)
    region = healed.top.latent_mask > 0
    assert_same_outside(list(healed.layers), list(rerolled.layers), region)
