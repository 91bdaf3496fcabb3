"""Edge cases of the verbs: refusals before sampling, unblended tails, replay decided up front."""
import logging

import pytest
import scenes
import torch
from refusals import refused as _refused

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


def test_deletion_with_an_unblended_tail_changes_only_the_top_outside_the_region(host, alpha,
                                                                                 three_layers):
    memory = three_layers[3]
    region = host.layer_ops.deletion_region(memory, 1, 2)
    gone = host.layer_ops.delete_layer(memory, alpha, 1, regenerate_fraction=0.67,
                                       unblended_fraction=0.34)
    below_support = memory.layers[1].latent_mask > 0
    keep = ~region & ~below_support
    # the composite of the layer that followed the deleted one is not the top: exact outside
    for k in (1,):
        old, new = memory.layers[k + 1].trajectory, gone.layers[k].trajectory
        assert torch.equal(new.final[..., keep], old.final[..., keep])
    assert not torch.equal(gone.top.trajectory.final[..., keep],
                           memory.top.trajectory.final[..., keep])


def test_another_sampler_on_the_same_sigmas_falls_back_up_front(host, alpha, background, caplog):
    """heun makes two calls a step where dpmpp_2m made
    one: replaying would force the wrong inputs."""
    import comfy.sample

    mask = scenes.box_mask(512, 0.2, 0.2, 0.6, 0.6)
    patched = (host.nodes.NODE_CLASS_MAPPINGS["BCGBlend"]
               .execute(alpha, background, mask, 0, 0).result[0])
    s = background.schedule
    latent = torch.zeros(1, 4, 64, 64)
    with caplog.at_level(logging.WARNING):
        out = comfy.sample.sample(patched, comfy.sample.prepare_noise(latent, 7), s.steps, s.cfg,
                                  "heun", s.scheduler, scenes.cond(9), scenes.negative(), latent,
                                  seed=7)
    assert "falling back to latent blending" in caplog.text
    assert torch.isfinite(out).all()
