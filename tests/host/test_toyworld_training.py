"""Training smoke for the toy world (issue 23): a few seeded steps of the VAE and of the UNet
with its text encoder run through ComfyUI's own classes, give finite losses, and repeat bit for
bit with the same seed (the committed weights come from these functions)."""
import numpy as np
import pytest
import torch

from tools.toyworld import text, train_unet, train_vae, unet, vae, world

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


def test_unet_resume_starts_from_the_committed_weights(host):
    """`--resume` (the second stage): with no step run, the model is the committed one."""
    from safetensors.torch import load_file

    from tools import random_models as rm

    scenes = [world.random_scene(np.random.default_rng(0), 1, 1)]
    model, enc, done = train_unet.train(torch.zeros(1, 4, 16, 16), scenes, steps=0, seed=3,
                                        batch=1, resume=vae.WEIGHTS)
    assert done == 0
    committed = load_file(str(vae.WEIGHTS / unet.FILE))
    state = model.diffusion_model.state_dict()
    assert all(torch.equal(state[k[len(rm.UNET_PREFIX):]], v.float())
               for k, v in committed.items())
    text_committed = text.load(vae.WEIGHTS).state_dict()
    assert all(torch.equal(v, text_committed[k]) for k, v in enc.state_dict().items())


def test_dataset_cache_gives_the_same_latents(host, tmp_path):
    fresh, scenes = train_unet.dataset(2, 9, vae.WEIGHTS)
    first, _ = train_unet.dataset(2, 9, vae.WEIGHTS, cache=tmp_path)
    again, scenes_again = train_unet.dataset(2, 9, vae.WEIGHTS, cache=tmp_path)
    assert len(list(tmp_path.iterdir())) == 1
    assert torch.equal(fresh, first) and torch.equal(first, again)
    assert scenes == scenes_again


def test_loss_weight_counts_every_noise_level_alike_under_edm(host):
    """EDM's weight for an eps model: 1 at sigma 0, 2 at sigma = sigma_data, sigma^2 / var + 1
    beyond; plain eps MSE weighs every row 1; an unknown name is refused by name."""
    sigma = torch.tensor([0.0, 0.5, 14.6])
    assert torch.equal(train_unet.loss_weight(sigma, 0.25, "eps"), torch.ones(3))
    assert torch.allclose(train_unet.loss_weight(sigma, 0.25, "edm"),
                          torch.tensor([1.0, 2.0, 14.6 ** 2 / 0.25 + 1.0]))
    with pytest.raises(ValueError, match="'x0'"):
        train_unet.loss_weight(sigma, 0.25, "x0")


def test_widths_are_read_back_from_the_saved_unet(host, tmp_path):
    """A wider UNet (64 channels: two channels per GroupNorm group, docs/toyworld.md) saves and
    loads through ComfyUI's loader with its widths read off the file; `--resume` takes them."""
    model = unet.base_model(3, 64, (1, 1, 2))
    unet.save(model, tmp_path)
    assert unet.widths_of(tmp_path / unet.FILE) == (64, (1, 1, 2))
    patcher = unet.load_patcher(tmp_path)
    saved = model.diffusion_model.state_dict()
    loaded = patcher.model.diffusion_model.state_dict()
    assert all(torch.equal(loaded[k], saved[k].half().float()) for k in saved)
    text.save(text.TextEncoder(), tmp_path)
    resumed, _, _ = train_unet.train(torch.zeros(1, 4, 16, 16), [world.random_scene(
        np.random.default_rng(0), 1, 1)], steps=0, seed=3, batch=1, resume=tmp_path)
    assert resumed.diffusion_model.input_blocks[0][0].weight.shape[0] == 64
