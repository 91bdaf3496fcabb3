"""Point 3: MQD routes each token group of the conditional rows to its own layer's prompt."""
import pytest
import scenes
import torch

pytestmark = pytest.mark.host


def _block_and_captions(host, model, prompts):
    dm = model.model.diffusion_model
    stock = dm.blocks[0].cross_attn
    captions = [dm.y_embedder(p[0][0][:, None], False)[:, 0] for p in prompts]
    return dm, stock, captions


def _stock(stock, x, caption_rows):
    """The stock cross-attention with row b attending to caption_rows[b] (all of one length)."""
    cond = torch.cat(caption_rows, dim=1)  # [1, B*L, C] as PixArtMS passes it
    return stock(x, cond, None)


def _mqd(host, dm, stock, owners, prompts, cond_or_uncond):
    plan = host.routing.RoutingPlan.from_owners(owners)
    run = host.mqd.MQDRun(plan, [p[0][0] for p in prompts])
    run.diffusion_model = dm
    run.cond_or_uncond = cond_or_uncond
    return host.mqd.MQDCrossAttention(stock, 0, run)


@torch.no_grad()
def test_single_layer_everywhere_equals_stock(host, alpha):
    prompt, neg = scenes.cond(3), scenes.cond(4)
    dm, stock, (cap, cap_neg) = _block_and_captions(host, alpha, [prompt, neg])
    x = torch.randn(2, 1024, 1152)
    owners = torch.zeros(1024, dtype=torch.long)
    patched = _mqd(host, dm, stock, owners, [prompt], [0, 1])
    expected = _stock(stock, x, [cap, cap_neg])
    got = patched(x, torch.cat([cap, cap_neg], dim=1), None)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


@torch.no_grad()
def test_each_token_group_gets_its_layers_stock_output(host, alpha):
    prompts = [scenes.cond(10 + i) for i in range(3)]  # background, layer 1, layer 2 (same token count)
    neg = scenes.cond(99)
    dm, stock, caps = _block_and_captions(host, alpha, prompts + [neg])
    cap_neg = caps[-1]
    g = torch.Generator().manual_seed(0)
    owners = torch.randint(0, 3, (1024,), generator=g)
    x = torch.randn(2, 1024, 1152, generator=g)
    # uncond first, cond second: the order ComfyUI may batch them in
    patched = _mqd(host, dm, stock, owners, prompts, [1, 0])
    got = patched(x, torch.cat([cap_neg, caps[0]], dim=1), None)
    for j in range(3):
        expected = _stock(stock, x, [cap_neg, caps[j]])
        sel = owners == j
        torch.testing.assert_close(got[1, sel], expected[1, sel], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(got[0], expected[0], rtol=1e-5, atol=1e-5)  # negative half untouched


@torch.no_grad()
def test_prompts_of_different_lengths(host, alpha):
    prompts = [scenes.cond(1, tokens=4), scenes.cond(2, tokens=9)]
    dm, stock, caps = _block_and_captions(host, alpha, prompts)
    owners = torch.tensor([0, 1] * 512)
    x = torch.randn(1, 1024, 1152)
    patched = _mqd(host, dm, stock, owners, prompts, [0])
    got = patched(x, caps[1], None)
    for j in range(2):
        torch.testing.assert_close(got[0, owners == j], stock(x, caps[j], None)[0, owners == j], rtol=1e-5, atol=1e-5)


def test_mask_order_routing_of_a_scene(host, three_layers):
    """Newest first; older layers keep only their still-visible tokens; the rest is background."""
    memory = three_layers[-1]
    owners = host.routing.token_owners([l.token_mask for l in memory.layers[1:]]).view(32, 32)
    t1, t2, t3 = (l.token_mask for l in memory.layers[1:])
    assert owners[t3].eq(3).all()
    assert owners[t2 & ~t3].eq(2).all()
    assert owners[t1 & ~t2 & ~t3].eq(1).all()
    assert owners[~(t1 | t2 | t3)].eq(0).all()


def test_full_mask_layer_with_mqd_matches_plain_cross_attention(host, alpha, background):
    """A layer covering everything routes every token to its own prompt: MQD on == off (float tolerance)."""
    full = torch.ones(1, 512, 512)
    on = host.layer_ops.add_layer(background, alpha, scenes.cond(5), full, seed=3, use_mqd=True)
    off = host.layer_ops.add_layer(background, alpha, scenes.cond(5), full, seed=3, use_mqd=False)
    torch.testing.assert_close(on.top.trajectory.final, off.top.trajectory.final, rtol=1e-4, atol=1e-3)


def test_mqd_changes_the_masked_region_only_through_routing(host, alpha, three_layers):
    memory = three_layers[2]
    mask = scenes.box_mask(512, 0.3, 0.3, 0.7, 0.7)
    on = host.layer_ops.add_layer(memory, alpha, scenes.cond(7), mask, seed=3, use_mqd=True)
    off = host.layer_ops.add_layer(memory, alpha, scenes.cond(7), mask, seed=3, use_mqd=False)
    inside = on.top.latent_mask > 0
    assert not torch.allclose(on.top.trajectory.final[:, inside], off.top.trajectory.final[:, inside])
    assert torch.equal(on.top.trajectory.final[:, ~inside], off.top.trajectory.final[:, ~inside])


def test_patch_reaches_every_block(host, models):
    """Every DiT block's cross_attn is object-patched on the clone (checked on a 2-block model)."""
    import comfy.sd
    import random_models
    from safetensors.torch import save_file

    target = str(host.folder_paths.get_folder_paths("diffusion_models")[0]) + "/random_alpha_depth2.safetensors"
    save_file(random_models.pixart_state_dict(random_models.ALPHA_512, depth=2, seed=5), target)
    model = comfy.sd.load_diffusion_model(target)
    clone = model.clone()
    run = host.mqd.MQDRun(host.routing.RoutingPlan.from_owners(torch.zeros(1024, dtype=torch.long)), [torch.zeros(1, 2, 4096)])
    keys = host.mqd.install(clone, run)
    assert keys == ["diffusion_model.blocks.0.cross_attn", "diffusion_model.blocks.1.cross_attn"]
    assert all(isinstance(clone.object_patches[k], host.mqd.MQDCrossAttention) for k in keys)
    assert not model.object_patches, "the caller's patcher is untouched"
