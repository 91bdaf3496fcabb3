"""Point 6: PixArt-alpha 512 and 1024 (size micro-conditions), PixArt-Sigma, any sampler and
scheduler."""
import pytest
import torch

from tools import scenes

pytestmark = pytest.mark.host


@pytest.mark.parametrize("variant,size,micro", [("pixart_alpha_1024", 1024, True),
                                                ("pixart_sigma_512", 512, False)])
def test_other_variants_add_and_delete(host, models, variant, size, micro):
    model = models(variant)
    lo = host.layer_ops
    def cond(seed: int) -> list:
        return scenes.cond(seed, width=size, height=size, micro=micro)

    bg = lo.start_memory(model, cond(1), scenes.negative(size, size, micro), size, size, 1, 2, 4.5,
                         "euler", "normal")
    assert bg.fingerprint.image_model == variant.rsplit("_", 1)[0]
    assert bg.fingerprint.micro_condition is micro
    assert bg.latent_shape == (4, size // 8, size // 8)
    one = lo.add_layer(bg, model, cond(2), scenes.box_mask(size, 0.1, 0.1, 0.5, 0.5), 2)
    two = lo.add_layer(one, model, cond(3), scenes.box_mask(size, 0.4, 0.4, 0.9, 0.9), 3)
    outside = two.top.latent_mask == 0
    assert torch.equal(two.top.trajectory.final[:, outside], one.top.trajectory.final[:, outside])
    gone = lo.delete_layer(two, model, 1, 0.5, 0)
    assert len(gone.layers) == 2 and torch.isfinite(gone.top.trajectory.final).all()


@pytest.mark.parametrize("sampler,scheduler", [("lms", "exponential"), ("dpmpp_sde", "beta"),
                                               ("dpm_2", "linear_quadratic"), ("lcm", "kl_optimal"),
                                               ("res_multistep", "normal")])
def test_more_samplers_and_schedulers(host, alpha, sampler, scheduler):
    lo = host.layer_ops
    bg = lo.start_memory(alpha, scenes.cond(1), scenes.negative(), 512, 512, 1, 2, 4.5, sampler,
                         scheduler)
    one = lo.add_layer(bg, alpha, scenes.cond(2), scenes.box_mask(512, 0.1, 0.1, 0.5, 0.5), 2)
    outside = one.top.latent_mask == 0
    assert torch.equal(one.top.trajectory.final[:, outside], bg.top.trajectory.final[:, outside])
    two = lo.add_layer(one, alpha, scenes.cond(3), scenes.box_mask(512, 0.3, 0.3, 0.8, 0.8), 3)
    gone = lo.delete_layer(two, alpha, 1, 0.5, 0)
    assert torch.isfinite(gone.top.trajectory.final).all()
