"""Point 2: BCG's blend, and BCGBlend with ComfyUI's own samplers.

Bit-exactness outside the mask for every sampler family and model kind is in
test_family_invariants.py."""
import logging

import pytest
import torch

from tools import scenes

pytestmark = pytest.mark.host


def test_soft_mask_blends_by_value(host):
    """BCGDenoiser: the input is lerp(stored, free, m) for every mask value; on the stored path the
    prediction is the model's own, off it (latent blending) it is lerp(final, prediction, m)."""
    bcg, trajectory = host.bcg, host.trajectory
    g = torch.Generator().manual_seed(0)
    ref = trajectory.Trajectory(torch.tensor([2.0], dtype=torch.float64), torch.tensor([0]),
                                torch.randn(1, 4, 8, 8, generator=g),
                                torch.randn(4, 8, 8, generator=g))
    mask = torch.linspace(0, 1, 64).view(8, 8)
    m = mask[None, None]
    prediction = torch.randn(1, 4, 8, 8, generator=g)
    x = torch.randn(1, 4, 8, 8, generator=g)
    seen = {}

    renoised = torch.randn(1, 4, 8, 8, generator=g)

    class Inner:  # the guider, as far as BCGDenoiser uses it
        class inner_model:  # noqa: N801 - ComfyUI's attribute name
            @staticmethod
            def scale_latent_inpaint(x, sigma, noise, latent_image):
                return renoised

        def __call__(self, x, sigma, model_options=None, seed=None):
            seen["x"] = x
            return prediction

    inner = Inner()

    def denoiser(run_sigmas):
        spec = bcg.BCGSpec(free_mask=mask, reference=ref, schedule_sigmas=torch.tensor([2.0, 0.0]))
        replay = bcg._Replay(spec, run_sigmas, torch.device("cpu"), torch.float32)
        return bcg.BCGDenoiser(inner, run_sigmas, replay, trajectory.TrajectoryRecorder(),
                               torch.zeros(1, 4, 8, 8)), replay

    den, replay = denoiser(torch.tensor([2.0, 0.0]))
    assert replay.exact
    out = den(x, torch.tensor([2.0]))
    assert torch.equal(seen["x"], torch.lerp(ref.x[0][None], x, m))
    assert torch.equal(seen["x"][..., mask == 0], ref.x[0][None][..., mask == 0])
    assert torch.equal(out, prediction)

    den, replay = denoiser(torch.tensor([3.0, 0.0]))  # another schedule: classic latent blending
    assert not replay.exact
    out = den(x, torch.tensor([3.0]))
    assert torch.equal(seen["x"], torch.lerp(renoised, x, m))
    assert torch.equal(out, torch.lerp(ref.final[None], prediction, m))
    assert torch.equal(out[..., mask == 1], prediction[..., mask == 1])


def test_bcgblend_with_stock_sampler_is_exact(host, alpha, background):
    import comfy.sample

    N = host.nodes.NODE_CLASS_MAPPINGS
    mask = scenes.box_mask(512, 0.2, 0.2, 0.6, 0.6)
    patched = N["LayerMem_BCGBlend"].execute(alpha, background, mask, 0, 0).result[0]
    assert patched is not alpha and not alpha.get_wrappers("sampler_sample", "layer_memory_bcg")
    s = background.schedule
    latent = torch.zeros(1, 4, 64, 64)
    out = comfy.sample.sample(patched, comfy.sample.prepare_noise(latent, 7), s.steps, s.cfg,
                              s.sampler_name, s.scheduler, scenes.cond(9), scenes.negative(),
                              latent, seed=7)
    outside = host.masks.to_latent_mask(mask, (64, 64)) == 0
    ref = background.composite_latent()["samples"]
    assert torch.equal(out[..., outside], ref[..., outside])
    assert not torch.equal(out[..., ~outside], ref[..., ~outside])


def test_bcgblend_other_schedule_falls_back_and_says_so(host, alpha, background, caplog):
    import comfy.sample

    mask = scenes.box_mask(512, 0.2, 0.2, 0.6, 0.6)
    patched = (host.nodes.NODE_CLASS_MAPPINGS["LayerMem_BCGBlend"]
               .execute(alpha, background, mask, 0, 0).result[0])
    latent = torch.zeros(1, 4, 64, 64)
    with caplog.at_level(logging.WARNING):
        out = comfy.sample.sample(patched, comfy.sample.prepare_noise(latent, 7), 2, 4.5, "euler",
                                  "normal", scenes.cond(9), scenes.negative(), latent, seed=7)
    assert "falling back to latent blending" in caplog.text
    assert torch.isfinite(out).all()


def test_bcgblend_refuses_batch_and_size(host, alpha, background):
    import comfy.sample

    mask = scenes.box_mask(512, 0.2, 0.2, 0.6, 0.6)
    patched = (host.nodes.NODE_CLASS_MAPPINGS["LayerMem_BCGBlend"]
               .execute(alpha, background, mask, 0, 0).result[0])
    s = background.schedule
    for shape, text in (((2, 4, 64, 64), "batch size 2"), ((1, 4, 96, 64), "memory is 512x512")):
        latent = torch.zeros(shape)
        with pytest.raises(host.errors.LayerMemoryError, match=text):
            comfy.sample.sample(patched, comfy.sample.prepare_noise(latent, 1), s.steps, s.cfg,
                                s.sampler_name, s.scheduler, scenes.cond(9), scenes.negative(),
                                latent, seed=1)
