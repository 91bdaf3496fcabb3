"""Training smoke for the toy world (issue 23): a few seeded steps of the VAE and of the UNet
with its text encoder run through ComfyUI's own classes, give finite losses, and repeat bit for
bit with the same seed (the committed weights come from these functions)."""
import numpy as np
import pytest
import torch

from tools.toyworld import text, train_unet, train_vae, unet, world

pytestmark = pytest.mark.host


def _state(module) -> dict:
    return {k: v.clone() for k, v in module.state_dict().items()}


def test_vae_training_is_seeded(host):
    torch.manual_seed(123)  # the functions seed themselves: outside state must not matter
    a = train_vae.train(steps=2, seed=5, batch=2, crop=32, log_every=10)
    b = train_vae.train(steps=2, seed=5, batch=2, crop=32, log_every=10)
    for left, right in zip(a, b, strict=True):
        sa, sb = _state(left), _state(right)
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
    z = a[0](train_vae.crops(np.random.default_rng(0), 2, 32))
    assert z.shape == (2, 4, 4, 4) and bool(torch.isfinite(z).all())


def test_unet_training_is_seeded(host):
    rng = np.random.default_rng(0)
    scenes = [world.random_scene(rng, 1, 2) for _ in range(4)]
    latents = torch.randn(4, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    runs = [train_unet.train(latents, scenes, steps=3, seed=7, batch=2, log_every=10)
            for _ in range(2)]
    (m1, e1, n1), (m2, e2, n2) = runs
    assert n1 == n2 == 3
    s1, s2 = _state(m1.diffusion_model), _state(m2.diffusion_model)
    assert all(torch.equal(s1[k], s2[k]) for k in s1)
    assert all(torch.equal(a, b) for a, b in zip(e1.state_dict().values(),
                                                 e2.state_dict().values(), strict=True))
    fresh = unet.base_model(7).diffusion_model.state_dict()
    weights = [k for k in s1 if s1[k].dim() > 1]  # zero biases can stay put for 3 tiny steps
    frozen = [k for k in weights if torch.equal(s1[k], fresh[k])]
    assert not frozen, f"UNet weights not trained (ComfyUI builds without gradients): {frozen[:3]}"
    out = e1.encode(["a red circle on grass"])
    assert out.shape == (1, text.CONTEXT, text.WIDTH) and bool(torch.isfinite(out).all())
