"""UNet MQD through ComfyUI's own patch plumbing: with one prompt for every layer the routed
UNet forward is the stock one; a patch called outside its run's routing refuses. (Per group and
level against stock attn2, for every model kind: test_family_invariants.py.)"""

import pytest
import torch

from tools import unet_scenes as us

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


@pytest.mark.parametrize("family", ["sd15", "sdxl"])
@torch.no_grad()
def test_patched_model_with_one_prompt_everywhere_equals_stock(host, family):
    """Through ComfyUI's own patch plumbing (a clone's attn2 replace patches), the whole UNet
    forward equals the stock forward when every layer has the same prompt."""
    mqd_unet = host.unet_mqd
    model = us.model(family)
    latent_hw = (us.SIZE[family] // 8,) * 2
    prompt, negative = us.cond(family, 5)[0][0], us.cond(family, 6)[0][0]
    clone = model.clone()
    run = mqd_unet.UNetMQDRun(_masks(latent_hw, 4), [prompt] * 4, negative)
    keys = mqd_unet.install(clone, run)
    assert len(keys) == len(mqd_unet.attn2_blocks(model.model.diffusion_model))
    assert "patches_replace" not in model.model_options.get("transformer_options", {})
    dm = model.model.diffusion_model
    x = torch.randn(2, 4, *latent_hw)
    kwargs = {"y": torch.randn(2, 2816)} if family == "sdxl" else {}
    context = torch.cat([negative, prompt])
    t = torch.tensor([700.0, 700.0])
    stock = dm(x, t, context=context, transformer_options={"cond_or_uncond": [1, 0]}, **kwargs)
    options = dict(clone.model_options["transformer_options"], cond_or_uncond=[1, 0])
    with run.routing(dm, [1, 0], x, context, torch.float32) as routed_context:
        assert routed_context.shape[1] == 1, "the run's own keys replace the model's context"
        routed = dm(x, t, context=routed_context, transformer_options=options, **kwargs)
    torch.testing.assert_close(routed, stock, rtol=1e-4, atol=1e-4)
    with pytest.raises(RuntimeError, match="outside its run's APPLY_MODEL wrapper"):
        dm(x, t, context=context, transformer_options=options, **kwargs)
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


def test_another_nodes_attn2_patch_is_replaced_loudly_or_kept(host, caplog):
    """A MODEL with an attn2 replace patch from another node (IP-Adapter does this): MQD takes
    its place for the run and says so; use_mqd off leaves it working and says nothing."""
    from tools import scenes

    family = "sd15"
    size = us.SIZE[family]
    calls = []

    def theirs(q, k, v, extra_options):
        calls.append(extra_options["block"])
        heads = extra_options["n_heads"]
        b, n, inner = q.shape
        q, k, v = (t.reshape(b, -1, heads, inner // heads).transpose(1, 2) for t in (q, k, v))
        out = torch.nn.functional.scaled_dot_product_attention(q, k, v)
        return out.transpose(1, 2).reshape(b, n, inner)

    model = us.model(family).clone()
    model.set_model_attn2_replace(theirs, "input", 1)
    bg = host.layer_ops.start_memory(model, us.cond(family, 1), us.cond(family, 2), size, size,
                                     seed=1, steps=2, cfg=5.0, sampler_name="euler",
                                     scheduler="normal")
    assert calls, "their patch runs in a plain run"
    mask = scenes.box_mask(size, 0.2, 0.2, 0.6, 0.6)
    calls.clear()
    with caplog.at_level("WARNING"):
        host.layer_ops.add_layer(bg, model, us.cond(family, 3), mask, seed=2)
    assert not calls and "MQD replaces 1 attn2 patch" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"):
        host.layer_ops.add_layer(bg, model, us.cond(family, 3), mask, seed=2, use_mqd=False)
    assert calls and "MQD replaces" not in caplog.text
