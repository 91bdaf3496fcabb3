"""Point 5: deletion restores what was below in the layer's visible region and nothing else."""
import pytest
import torch

from tools import scenes

pytestmark = pytest.mark.host


def test_delete_middle_layer(host, alpha, three_layers):
    memory = three_layers[3]
    region = host.layer_ops.deletion_region(memory, 2, 2)
    new = host.layer_ops.delete_layer(memory, alpha, "object 2", regenerate_fraction=0.67, seed=0,
                                      heal_grow_pixels=2)
    assert [l.name for l in new.layers] == ["background", "object 1", "object 3"]
    old_top, new_top = memory.top.trajectory, new.top.trajectory
    # changed: the healed region, and the deleted layer's
    # support wherever a newer mask does not fully hide it
    # (its soft rim blended (1 - m) of the deleted layer in)
    hidden = memory.layers[3].latent_mask >= 1
    outside = ~region & ~((memory.layers[2].latent_mask > 0) & ~hidden)
    assert torch.equal(new_top.x[..., outside], old_top.x[..., outside])
    assert torch.equal(new_top.final[..., outside], old_top.final[..., outside])
    # the region starts from the composite before the layer at the start step
    steps = memory.schedule.steps
    start = steps - round(0.67 * steps)
    c0 = old_top.call_starting_at(float(memory.schedule.sigmas[start]))
    below = memory.layers[1].trajectory
    assert torch.equal(new_top.x[c0][..., region], below.x[c0][..., region])
    assert torch.equal(new_top.x[:c0][..., region], below.x[:c0][..., region])
    # the region is never grown into newer layers; the deleted layer's visible part is inside it
    assert not (region & (memory.layers[3].latent_mask > 0)).any()
    visible = (memory.layers[2].latent_mask > 0) & ~(memory.layers[3].latent_mask > 0)
    assert region[visible].all()
    # later layers' stored trajectories are updated in the region, untouched elsewhere
    assert torch.equal(new.top.trajectory.final, new_top.final)
    # below the freed level a composite changes only in the region, and there it shows the heal
    # where its layer is the newest one on (the heal lives with the layer that shows it)
    owner = host.stack.owners(list(new.layers))
    for k in (0, 1):
        old_k, new_k = memory.layers[k].trajectory, new.layers[k].trajectory
        assert torch.equal(new_k.final[..., ~region], old_k.final[..., ~region]), (
            "layers below are kept outside the region")
        shows = region & (owner <= k)
        assert torch.equal(new_k.final[..., shows], new_top.final[..., shows])
    assert torch.equal(new.layers[2].latent_mask, memory.layers[3].latent_mask)


def test_delete_top_layer_costs_no_sampling(host, alpha, three_layers, monkeypatch):
    def no_sampling(*a, **k):
        raise AssertionError("deleting the top layer must not sample")

    monkeypatch.setattr(host.sampling, "run", no_sampling)
    new = host.layer_ops.delete_layer(three_layers[3], alpha, "-1", 0.4, 0)
    assert new.layers == three_layers[2].layers


def test_delete_from_first_step_gives_back_the_background(host, alpha, background):
    """Regenerating from the first step restores the background outside the grown region (and the
    newer layer); with the layer on top of the background alone, deletion is an exact undo."""
    added = host.layer_ops.add_layer(background, alpha, scenes.cond(2),
                                     scenes.box_mask(512, 0.3, 0.3, 0.7, 0.7), seed=5)
    # add a second layer far away, so the deleted one is not the top (the top would be a plain undo)
    mask2 = scenes.box_mask(512, 0.0, 0.85, 0.15, 1.0)
    two = host.layer_ops.add_layer(added, alpha, scenes.cond(3), mask2, seed=6)
    region = host.layer_ops.deletion_region(two, 1, 2)
    gone = host.layer_ops.delete_layer(two, alpha, 1, regenerate_fraction=1.0, seed=0,
                                       heal_grow_pixels=2)
    keep = ~region & ~(two.top.latent_mask > 0)
    bg = background.top.trajectory
    assert torch.equal(gone.top.trajectory.final[..., keep], bg.final[..., keep])

    single = host.layer_ops.delete_layer(added, alpha, 1, regenerate_fraction=1.0, seed=0)
    assert torch.equal(single.top.trajectory.final, bg.final)


def test_add_and_delete_after_a_deletion_stay_consistent(host, alpha, three_layers):
    deleted = host.layer_ops.delete_layer(three_layers[3], alpha, 1, 0.4, 0)
    more = host.layer_ops.add_layer(deleted, alpha, scenes.cond(60),
                                    scenes.box_mask(512, 0.6, 0.0, 1.0, 0.3), seed=9)
    outside = more.top.latent_mask == 0
    assert torch.equal(more.top.trajectory.final[..., outside],
                       deleted.top.trajectory.final[..., outside])
    again = host.layer_ops.delete_layer(more, alpha, "object 2", 0.4, 0)
    assert [l.name for l in again.layers] == ["background", "object 3", "layer 3"]
