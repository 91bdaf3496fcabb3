"""The editing verbs keep the stack consistent: no removed layer survives in any composite, and
everything outside the region an edit changes keeps its bits (issue 9)."""
import random

import pytest
import torch
from stack_check import StackModel, points

from tools import scenes

pytestmark = pytest.mark.host
STEPS = 2


def _start(host, alpha, sampler="dpmpp_2m", scheduler="karras", seed=11):
    return host.layer_ops.start_memory(alpha, scenes.cond(1), scenes.negative(), 512, 512,
                                       seed=seed, steps=STEPS, cfg=4.5, sampler_name=sampler,
                                       scheduler=scheduler)


def _add(host, alpha, memory, box, seed, name, model: StackModel | None = None, position=-1,
         feather=0):
    new = host.layer_ops.add_layer(memory, alpha, scenes.cond(seed), scenes.box_mask(512, *box),
                                   seed=seed, name=name, position=position, feather_pixels=feather)
    if model is not None:
        model.made(new, new.resolve(name, allow_background=True))
    return new


def _support(layer):
    return layer.latent_mask > 0


def test_deleted_layer_does_not_come_back_from_under_a_newer_one(host, alpha):
    """Background, A, B, C with C hiding part of A: delete A, then C; A's hidden part shows the
    background."""
    bg = _start(host, alpha)
    a = _add(host, alpha, bg, (0.10, 0.10, 0.60, 0.60), 20, "A")
    b = _add(host, alpha, a, (0.70, 0.70, 0.95, 0.95), 21, "B")
    c = _add(host, alpha, b, (0.35, 0.35, 0.90, 0.90), 22, "C")
    hidden = _support(c.layers[1]) & (c.layers[3].latent_mask >= 1) & ~_support(c.layers[2])
    assert int(hidden.sum()) > 20
    no_a = host.layer_ops.delete_layer(c, alpha, "A")
    no_ac = host.layer_ops.delete_layer(no_a, alpha, "C")
    final, bg_final = no_ac.top.trajectory.final, bg.top.trajectory.final
    assert torch.equal(final[..., hidden], bg_final[..., hidden]), (
        "A's hidden part is not what was below A")
    assert not torch.equal(final[..., hidden], b.top.trajectory.final[..., hidden])
    # history shows no A either
    for undo in (host.layer_ops.delete_layer(no_a, alpha, "C"), no_a.truncated(2)):
        assert torch.equal(points(undo.layers[1].trajectory)[..., hidden],
                           points(bg.top.trajectory)[..., hidden])


def test_soft_rims_of_newer_layers_keep_no_part_of_a_deleted_layer(host, alpha):
    bg = _start(host, alpha)
    model = StackModel(bg)
    a = _add(host, alpha, bg, (0.10, 0.10, 0.60, 0.60), 20, "A", model)
    c = _add(host, alpha, a, (0.33, 0.33, 0.83, 0.83), 22, "C", model, feather=2)
    rim = _support(a.top) & (c.top.latent_mask > 0) & (c.top.latent_mask < 1)
    assert int(rim.sum()) > 10
    gone = host.layer_ops.delete_layer(c, alpha, "A", regenerate_fraction=0.0)
    model.check(gone)
    # what is left of A in the rim: the new composite minus
    # the ideal lerp(background, S_C, m) is rounding only
    s_c, m = model.samples["C"], c.top.latent_mask
    ideal = torch.lerp(points(bg.top.trajectory), s_c, m)
    residual = (points(gone.top.trajectory) - ideal)[..., rim].abs().max()
    a_signal = (points(a.top.trajectory) - points(bg.top.trajectory))[..., rim].abs().max()
    assert float(residual) < 1e-4 * float(a_signal)


@pytest.mark.parametrize("sampler,scheduler",
                         [("dpmpp_2m", "karras"), ("heun", "normal"), ("euler_ancestral", "karras"),
                          ("dpmpp_2m_sde", "karras"), ("uni_pc", "sgm_uniform")])
def test_each_verb_is_exact_outside_what_it_changes(host, alpha, sampler, scheduler):
    bg = _start(host, alpha, sampler, scheduler)
    model = StackModel(bg)
    one = _add(host, alpha, bg, (0.05, 0.05, 0.45, 0.45), 20, "A", model)
    two = _add(host, alpha, one, (0.30, 0.30, 0.80, 0.80), 21, "B", model)
    # insert below B: B stays in front, bit-exact inside
    # its mask; nothing changes outside the new mask
    ins = _add(host, alpha, two, (0.55, 0.05, 0.95, 0.50), 22, "I", model, position=2)
    assert [layer.name for layer in ins.layers] == ["background", "A", "I", "B"]
    new_mask = _support(ins.layers[2])
    assert torch.equal(points(ins.top.trajectory)[..., ~new_mask],
                       points(two.top.trajectory)[..., ~new_mask])
    b_on = two.top.latent_mask >= 1
    assert torch.equal(points(ins.top.trajectory)[..., b_on], points(two.top.trajectory)[..., b_on])
    model.check(ins)
    # move A: outside its old and new masks and the healed region, every composite keeps its bits
    moved = host.edit_ops.edit_layer(ins, alpha, "A",
                                     mask=scenes.box_mask(512, 0.05, 0.55, 0.40, 0.95), seed=20)
    model.made(moved, 1)
    changed = _support(ins.layers[1]) | _support(moved.layers[1])
    changed = host.masks.grow(changed.float(), 2) > 0
    for old, new in zip(ins.layers, moved.layers, strict=True):
        assert torch.equal(points(new.trajectory)[..., ~changed],
                           points(old.trajectory)[..., ~changed])
    healed = _support(ins.layers[1]) & ~_support(moved.layers[1])
    model.healed(moved, host.masks.grow(healed.float(), 2) > 0)
    model.check(moved)
    # delete I: exact outside its support and its healed region
    region = host.layer_ops.deletion_region(moved, 2, 2)
    gone = host.layer_ops.delete_layer(moved, alpha, "I")
    keep = ~region & ~_support(moved.layers[2])
    assert torch.equal(points(gone.top.trajectory)[..., keep],
                       points(moved.top.trajectory)[..., keep])
    model.healed(gone, region)
    model.check(gone)


def test_replacing_the_background_keeps_every_object_inside_its_mask(host, alpha):
    bg = _start(host, alpha)
    model = StackModel(bg)
    one = _add(host, alpha, bg, (0.10, 0.10, 0.50, 0.50), 20, "A", model)
    two = _add(host, alpha, one, (0.45, 0.45, 0.90, 0.90), 21, "B", model)
    new = host.edit_ops.edit_layer(two, alpha, 0, positive=scenes.cond(99), seed=5)
    on = (two.layers[1].latent_mask >= 1) | (two.layers[2].latent_mask >= 1)
    assert torch.equal(points(new.top.trajectory)[..., on], points(two.top.trajectory)[..., on])
    outside = ~(_support(two.layers[1]) | _support(two.layers[2]))
    assert not torch.equal(new.top.trajectory.final[..., outside],
                           two.top.trajectory.final[..., outside])
    model.made(new, 0)
    model.check(new)


def test_random_edit_sequences_keep_the_invariant(host, alpha):
    """Seeded: stacks of 4 to 5 layers with overlapping, off-grid and feathered boxes, then deletes,
    inserts, moves, rerolls and history in random order; the invariant after every step."""
    rng = random.Random(7)

    def box():
        x0, y0 = rng.uniform(0.0, 0.6), rng.uniform(0.0, 0.6)
        return (x0, y0, x0 + rng.uniform(0.25, 0.4), y0 + rng.uniform(0.25, 0.4))

    memory = _start(host, alpha)
    model = StackModel(memory)
    for i in range(rng.randint(3, 4)):
        memory = _add(host, alpha, memory, box(), 40 + i, f"L{i}", model,
                      feather=rng.choice([0, 1]))
    model.check(memory)
    serial = 100
    for _ in range(6):
        op, n = rng.choice(["delete", "insert", "move", "reroll", "history"]), len(memory.layers)
        serial += 1
        if op == "delete" and n > 2:
            k = rng.randrange(1, n)
            region = host.layer_ops.deletion_region(memory, k, 2) if k < n - 1 else None
            memory = host.layer_ops.delete_layer(memory, alpha, k,
                                                 regenerate_fraction=rng.choice([0.0, 0.5]))
            if region is not None and k < len(memory.layers):
                model.healed(memory, region)
        elif op == "insert":
            memory = _add(host, alpha, memory, box(), serial, f"N{serial}", model,
                          position=rng.randrange(1, n + 1))
        elif op in ("move", "reroll") and n > 1:
            k = rng.randrange(1, n)
            old = memory.layers[k]
            mask = scenes.box_mask(512, *box()) if op == "move" else None
            memory = host.edit_ops.edit_layer(memory, alpha, k, mask=mask, seed=serial)
            model.made(memory, k)
            vacated = _support(old) & ~_support(memory.layers[k])
            model.healed(memory, host.masks.grow(vacated.float(), 2) > 0)
        elif op == "history" and n > 2:
            memory = memory.truncated(rng.randrange(2, n))
        model.check(memory)


def test_memory_from_a_picture_keeps_the_picture_outside_every_mask(host, alpha):
    vae = host.nodes.VAELoader().load_vae("taesd")[0]
    g = torch.Generator().manual_seed(3)
    image = torch.rand(1, 512, 512, 3, generator=g)
    N = host.nodes.NODE_CLASS_MAPPINGS
    memory = N["LayerMem_LayerMemoryFromImage"].execute(alpha, vae, image, scenes.cond(1),
                                                        scenes.negative(),
                                               STEPS, 4.5, "dpmpp_2m", "karras", 0).result[0]
    encoded = alpha.model.process_latent_in(vae.encode(image)).to(torch.float32)[0]
    assert torch.equal(memory.top.trajectory.final, encoded)
    one = _add(host, alpha, memory, (0.2, 0.2, 0.6, 0.6), 20, "A")
    two = _add(host, alpha, one, (0.5, 0.5, 0.9, 0.9), 21, "B")
    outside = ~(_support(two.layers[1]) | _support(two.layers[2]))
    assert torch.equal(two.top.trajectory.final[..., outside], encoded[..., outside])
    gone = host.layer_ops.delete_layer(two, alpha, "A")
    outside_b = ~(host.layer_ops.deletion_region(two, 1, 2) | _support(two.layers[1])
                  | _support(two.layers[2]))
    assert torch.equal(gone.top.trajectory.final[..., outside_b], encoded[..., outside_b])
    for bad, text in ((torch.rand(2, 512, 512, 3), "batch of 2"),
                      (torch.rand(1, 500, 512, 3), "upscale it first")):
        with pytest.raises(host.errors.LayerMemoryError, match=text):
            N["LayerMem_LayerMemoryFromImage"].execute(alpha, vae, bad, scenes.cond(1),
                                                       scenes.negative(),
                                              STEPS, 4.5, "dpmpp_2m", "karras", 0)
