"""UNet MQD: at every attention level of SD 1.5 / SDXL, each token group of the conditional
rows gets exactly the block's stock attn2 output for its own layer's prompt; negative rows
are the stock attention with their own prompt."""

import pytest
import torch
import unet_scenes as us

pytestmark = pytest.mark.host


def _masks(hw, seed):
    """Three overlapping random boxes on the latent grid (oldest first)."""
    g = torch.Generator().manual_seed(seed)
    h, w = hw
    out = []
    for _ in range(3):
        y0, x0 = (
            int(torch.randint(0, h // 2, (1,), generator=g)),
            int(torch.randint(0, w // 2, (1,), generator=g)),
        )
        m = torch.zeros(h, w)
        m[y0 : y0 + h // 2, x0 : x0 + w // 2] = 1.0
        out.append(m)
    return out


def _captured_blocks(model, family, latent_hw):
    """Run the UNet once with an attn2_patch that records each block's attn2 input and options."""
    seen = []

    def capture(n, context, value, extra_options):
        seen.append((n.detach().clone(), dict(extra_options)))
        return n, context, value

    dm = model.model.diffusion_model
    x = torch.randn(2, 4, *latent_hw, generator=torch.Generator().manual_seed(1))
    kwargs = {"y": torch.randn(2, 2816)} if family == "sdxl" else {}
    options = {"patches": {"attn2_patch": [capture]}, "cond_or_uncond": [1, 0]}
    with torch.no_grad():
        dm(
            x,
            torch.tensor([500.0, 500.0]),
            context=torch.randn(2, 77, us.WIDTH[family]),
            transformer_options=options,
            **kwargs,
        )
    return seen


@pytest.mark.parametrize("family", ["sd15", "sdxl"])
@torch.no_grad()
def test_every_level_routes_each_group_to_its_stock_attention(host, family):
    mqd_unet = us.core(host, "mqd_unet")
    model = us.model(family)
    latent_hw = (us.SIZE[family] // 8,) * 2
    latent_masks = _masks(latent_hw, seed=3)
    prompts = [us.cond(family, 10 + i, tokens=77 * (1 + i % 2))[0][0] for i in range(4)]
    negative = us.cond(family, 99)[0][0]
    run = mqd_unet.UNetMQDRun(latent_masks, prompts)
    blocks = dict(mqd_unet.attn2_blocks(model.model.diffusion_model))
    levels = set()
    captured = _captured_blocks(model, family, latent_hw)
    assert len(captured) == len(blocks)
    for n, opts in captured:
        block = (opts["block"][0], opts["block"][1], opts["block_index"])
        attn2 = model.get_model_object(blocks[block])
        hw = tuple(opts["activations_shape"][-2:])
        levels.add(hw)
        patch = mqd_unet.RoutedAttn2(run, block, attn2)
        # What ComfyUI passes: uncond row, cond row, the shorter repeated up to the common length.
        own = torch.cat(
            [negative.repeat(1, prompts[-1].shape[1] // negative.shape[1], 1), prompts[-1]]
        )
        got = attn2.to_out(patch(attn2.to_q(n), attn2.to_k(own), attn2.to_v(own), opts))
        owners = mqd_unet.owner_map(latent_masks, hw)
        assert torch.equal(torch.unique(owners), torch.arange(4)) or hw[0] <= 4
        stock_neg = attn2(n[:1], context=negative)
        torch.testing.assert_close(got[:1], stock_neg, rtol=1e-5, atol=1e-5)
        for j, prompt in enumerate(prompts):
            sel = owners == j
            if sel.any():
                stock = attn2(n[1:], context=prompt)
                torch.testing.assert_close(got[1, sel], stock[0, sel], rtol=1e-5, atol=1e-5)
    factors = {latent_hw[0] // hw[0] for hw in levels}
    assert factors == ({1, 2, 4} if family == "sd15" else {2, 4}), factors


@pytest.mark.parametrize("family", ["sd15", "sdxl"])
@torch.no_grad()
def test_patched_model_with_one_prompt_everywhere_equals_stock(host, family):
    """Through ComfyUI's own patch plumbing (a clone's attn2 replace patches), the whole UNet
    forward equals the stock forward when every layer has the same prompt."""
    mqd_unet = us.core(host, "mqd_unet")
    model = us.model(family)
    latent_hw = (us.SIZE[family] // 8,) * 2
    prompt, negative = us.cond(family, 5)[0][0], us.cond(family, 6)[0][0]
    clone = model.clone()
    keys = mqd_unet.install(clone, mqd_unet.UNetMQDRun(_masks(latent_hw, 4), [prompt] * 4))
    assert len(keys) == len(mqd_unet.attn2_blocks(model.model.diffusion_model))
    assert "patches_replace" not in model.model_options.get("transformer_options", {})
    dm = model.model.diffusion_model
    x = torch.randn(2, 4, *latent_hw)
    kwargs = {"y": torch.randn(2, 2816)} if family == "sdxl" else {}
    context = torch.cat([negative, prompt])
    t = torch.tensor([700.0, 700.0])
    stock = dm(x, t, context=context, transformer_options={"cond_or_uncond": [1, 0]}, **kwargs)
    options = dict(clone.model_options["transformer_options"], cond_or_uncond=[1, 0])
    routed = dm(x, t, context=context, transformer_options=options, **kwargs)
    torch.testing.assert_close(routed, stock, rtol=1e-4, atol=1e-4)
    assert not torch.equal(
        routed,
        dm(
            x,
            t,
            context=torch.cat([negative, negative]),
            transformer_options={"cond_or_uncond": [1, 0]},
            **kwargs,
        ),
    )
