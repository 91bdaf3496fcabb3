"""Edge cases of the verbs: refusals before sampling, unblended tails, replay decided up front."""
import logging

import pytest
import torch
from refusals import refused as _refused

from tools import scenes

pytestmark = pytest.mark.host


def test_bad_positions_masks_and_fractions_are_refused_before_sampling(host, alpha, three_layers,
                                                                       no_sampling):
    memory = three_layers[3]
    digest = scenes.memory_digest(memory)
    box = scenes.box_mask(512, 0.1, 0.1, 0.4, 0.4)
    for position in (0, 5, -2):
        _refused(host, host.layer_ops.add_layer, memory, alpha, scenes.cond(1), box, 0,
                 position=position, match="not a place in this stack", input_name="position")
    _refused(host, host.edit_ops.edit_layer, memory, alpha, 1, mask=torch.zeros(1, 512, 512),
             seed=1, match="mask is empty", input_name="mask")
    _refused(host, host.edit_ops.edit_layer, memory, alpha, 0, mask=box, seed=1,
             match="background", input_name="mask")
    _refused(host, host.edit_ops.edit_layer, memory, alpha, 7, seed=1, match="out of range",
             input_name="layer")
    _refused(host, host.layer_ops.delete_layer, memory, alpha, 2, regenerate_fraction=0.2,
             unblended_fraction=0.4, match="more than regenerate_fraction",
             input_name="unblended_fraction")
    assert scenes.memory_digest(memory) == digest


def test_same_seed_prompt_and_mask_changes_nothing(host, alpha, three_layers, no_sampling):
    memory = three_layers[3]
    assert host.edit_ops.edit_layer(memory, alpha, 2, seed=memory.layers[2].seed) is memory


def test_unblended_fraction_that_rounds_to_no_step_keeps_the_final_exact(host, alpha, background):
    added = host.layer_ops.add_layer(background, alpha, scenes.cond(2),
                                     scenes.box_mask(512, 0.3, 0.3, 0.7, 0.7), seed=4,
                                     unblended_fraction=0.1)  # 0.1 of 3 steps: no step
    outside = added.top.latent_mask == 0
    assert torch.equal(added.top.trajectory.final[..., outside],
                       background.top.trajectory.final[..., outside])


def test_the_unblended_tail_starts_from_the_stored_latent(host, alpha, background):
    """The first unblended step's model input is the stored one outside the mask (no jump); after
    it the picture is free, so the final differs outside the mask."""
    steps = background.schedule.steps
    added = host.layer_ops.add_layer(background, alpha, scenes.cond(2),
                                     scenes.box_mask(512, 0.3, 0.3, 0.7, 0.7), seed=4,
                                     unblended_fraction=1 / steps + 1e-6)
    outside = added.top.latent_mask == 0
    new, old = added.top.trajectory, background.top.trajectory
    first_free = int((new.steps == steps - 1).nonzero()[0, 0])
    assert torch.equal(new.x[:first_free + 1][..., outside], old.x[:first_free + 1][..., outside])
    assert not torch.equal(new.final[..., outside], old.final[..., outside])


def test_a_deletions_unblended_tail_lives_with_the_layers_that_show_it(host, alpha,
                                                                        three_layers):
    """An unforced tail changes the whole picture: at each pixel it goes into the composite of
    the newest layer on there and every one above; composites under that keep their bits."""
    memory = three_layers[3]
    region = host.layer_ops.deletion_region(memory, 1, 2)
    gone = host.layer_ops.delete_layer(memory, alpha, 1, regenerate_fraction=0.67,
                                       unblended_fraction=0.34)
    owner = host.stack.owners(list(gone.layers))
    old_of = [0, 2, 3]  # composite k of `gone` replaces composite old_of[k] of `memory`
    deleted = memory.layers[1].latent_mask > 0
    for k, old_k in enumerate(old_of):
        under = ~region & ~deleted & (owner > k)
        assert torch.equal(gone.layers[k].trajectory.final[..., under],
                           memory.layers[old_k].trajectory.final[..., under])
        shows = owner <= k
        assert torch.equal(gone.layers[k].trajectory.final[..., shows],
                           gone.top.trajectory.final[..., shows])
    keep = ~region & ~deleted
    assert not torch.equal(gone.top.trajectory.final[..., keep],
                           memory.top.trajectory.final[..., keep])


def test_another_sampler_on_the_same_sigmas_falls_back_up_front(host, alpha, background, caplog):
    """heun makes two calls a step where dpmpp_2m made one: replaying would force the wrong
    inputs."""
    import comfy.sample

    mask = scenes.box_mask(512, 0.2, 0.2, 0.6, 0.6)
    patched = (host.nodes.NODE_CLASS_MAPPINGS["LayerMem_BCGBlend"]
               .execute(alpha, background, mask, 0, 0).result[0])
    s = background.schedule
    latent = torch.zeros(1, 4, 64, 64)
    with caplog.at_level(logging.WARNING):
        out = comfy.sample.sample(patched, comfy.sample.prepare_noise(latent, 7), s.steps, s.cfg,
                                  "heun", s.scheduler, scenes.cond(9), scenes.negative(), latent,
                                  seed=7)
    assert "falling back to latent blending" in caplog.text
    assert "final latent there, bit for bit" in caplog.text
    assert torch.isfinite(out).all()
    # what the log promises: the returned latent is the memory's final one outside the mask
    outside = host.masks.to_latent_mask(mask, (64, 64)) == 0
    stored = patched.model.process_latent_out(background.top.trajectory.final[None].clone())
    assert torch.equal(out[0][..., outside], stored[0][..., outside].to(out.dtype))


@pytest.mark.parametrize("sampler", ["euler", "heun", "dpm_2", "dpmpp_2m", "uni_pc",
                                     "euler_ancestral", "dpmpp_2s_ancestral", "dpmpp_2m_sde",
                                     "dpmpp_sde"])
def test_the_unblended_tail_starts_from_the_stored_latent_for_every_kind_of_sampler(host, alpha,
                                                                                    sampler):
    """One-call, two-call, multistep, ancestral and SDE samplers: the first model call of the
    first unforced step takes the stored input outside the mask, and every call before it too.

    Two-call samplers (heun, dpm_2, dpmpp_2s_ancestral, dpmpp_sde) report a step after its
    first call; the tail must still start at the next step's first call (the last call made at
    that step's sigma), on the sampler's own state."""
    bg = host.layer_ops.start_memory(alpha, scenes.cond(1), scenes.negative(), 512, 512, seed=11,
                                     steps=3, cfg=4.5, sampler_name=sampler, scheduler="normal")
    added = host.layer_ops.add_layer(bg, alpha, scenes.cond(2),
                                     scenes.box_mask(512, 0.25, 0.25, 0.625, 0.625), seed=2,
                                     unblended_fraction=0.34)  # 1 of 3 steps free: from step 2
    old, new = bg.top.trajectory, added.top.trajectory
    first_free = old.call_starting_at(float(bg.schedule.sigmas[2]))
    outside = added.top.latent_mask == 0
    gap = (new.x[:first_free + 1][..., outside] - old.x[:first_free + 1][..., outside]).abs()
    assert float(gap.max()) == 0.0, f"{sampler}: the tail starts {float(gap.max()):.3g} away"
    assert not torch.equal(new.final[..., outside], old.final[..., outside])


def test_deleting_a_layer_with_its_own_tail_changes_lower_composites_only_in_the_heal(
        host, alpha, background):
    """Found by the long stateful profile: deleting a layer that AddLayer gave an unblended tail
    (so every composite from it up may change anywhere) heals its region into the composite of
    each pixel's newest remaining layer, the background's included; outside that region the
    composites below the deleted layer keep their bits."""
    lo = host.layer_ops
    tailed = lo.add_layer(background, alpha, scenes.cond(47), scenes.box_mask(512, 0.35, 0.11,
                                                                              0.74, 0.49),
                          seed=4747, name="tailed", unblended_fraction=0.5)
    memory = lo.add_layer(tailed, alpha, scenes.cond(57), scenes.box_mask(512, 0.0, 0.18,
                                                                          0.37, 0.51),
                          seed=571, name="top")
    region = lo.deletion_region(memory, 1, 2)
    gone = lo.delete_layer(memory, alpha, 1, regenerate_fraction=0.5, heal_grow_pixels=2)
    old, new = (m.layers[0].trajectory.x for m in (memory, gone))
    assert torch.equal(old[..., ~region], new[..., ~region]), \
        "the background's composite changed outside the deleted layer's heal"
    assert not torch.equal(old[..., region], new[..., region]), \
        "the heal did not go into the background's composite where only the background shows"
