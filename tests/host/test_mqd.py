"""Point 3: MQD routes each token group of the conditional rows to its own layer's prompt."""
import pytest
import torch

from tools import scenes

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


def _mqd(host, dm, stock, owners, prompts, cond_or_uncond, x, cond, negative=None):
    """The patched block with the run prepared and this call's layout selected; with the run's
    `negative` its keys are projected once per run, else from each call's captions."""
    run = host.pixart_mqd.MQDRun(owners, [p[0][0] for p in prompts],
                          None if negative is None else negative[0][0])
    run.prepare(dm, x.device, x.dtype)
    run.select(cond_or_uncond, x.shape[0])
    return host.pixart_mqd.MQDCrossAttention(stock, 0, run)


def _close(a, b):
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@torch.no_grad()
def test_single_layer_everywhere_equals_stock(host, alpha):
    prompt, neg = scenes.cond(3), scenes.cond(4)
    dm, stock, (cap, cap_neg) = _block_and_captions(host, alpha, [prompt, neg])
    x = torch.randn(2, 1024, 1152)
    owners = torch.zeros(1024, dtype=torch.long)
    cond = torch.cat([cap, cap_neg], dim=1)
    patched = _mqd(host, dm, stock, owners, [prompt], [0, 1], x, cond)
    _close(patched(x, cond, None), _stock(stock, x, [cap, cap_neg]))


@pytest.mark.parametrize("run_negative", [True, False], ids=["run-negative", "call-captions"])
@pytest.mark.parametrize("order", [[1, 0], [0, 1]], ids=["uncond-first", "cond-first"])
@torch.no_grad()
def test_each_token_group_gets_its_layers_stock_output(host, alpha, order, run_negative):
    """Batched CFG in either row order: routed cond row per group, stock uncond row."""
    prompts = [scenes.cond(10 + i, tokens=5 + 3 * i) for i in range(3)]  # other lengths
    neg = scenes.cond(99, tokens=7)
    dm, stock, caps = _block_and_captions(host, alpha, prompts + [neg])
    g = torch.Generator().manual_seed(0)
    owners = torch.randint(0, 3, (1024,), generator=g)
    x = torch.randn(2, 1024, 1152, generator=g)
    c, u = order.index(0), order.index(1)
    rows = [None, None]
    rows[u] = caps[-1]
    rows[c] = caps[-1]  # a batched call's rows share one length; the cond row's own is unused
    cond = torch.cat(rows, dim=1)
    patched = _mqd(host, dm, stock, owners, prompts, order, x, cond,
                   neg if run_negative else None)
    got = patched(x, cond, None)
    assert patched.run.layout == host.pixart_mqd.MIXED
    for j in range(3):
        sel = owners == j
        _close(got[c, sel], stock(x[c:c + 1], caps[j], None)[0, sel])
    _close(got[u], stock(x[u:u + 1], caps[-1], None)[0])  # negative row: stock


@torch.no_grad()
def test_unbatched_cfg_calls(host, alpha):
    """Prompts of other lengths: ComfyUI runs a cond-only and an uncond-only forward of batch 1."""
    prompts = [scenes.cond(1, tokens=4), scenes.cond(2, tokens=9)]
    neg = scenes.cond(3, tokens=13)
    dm, stock, caps = _block_and_captions(host, alpha, prompts + [neg])
    owners = torch.tensor([0, 1] * 512)
    x = torch.randn(1, 1024, 1152)
    patched = _mqd(host, dm, stock, owners, prompts, [0], x, caps[1])
    assert patched.run.layout == host.pixart_mqd.ROUTED
    got = patched(x, caps[1], None)
    for j in range(2):
        _close(got[0, owners == j], stock(x, caps[j], None)[0, owners == j])
    patched.run.select([1], 1)
    assert patched.run.layout == host.pixart_mqd.STOCK
    assert torch.equal(patched(x, caps[2], None), stock(x, caps[2], None))


@pytest.mark.parametrize("run_negative", [True, False], ids=["run-negative", "call-captions"])
@torch.no_grad()
def test_repeated_negative_of_a_batched_call(host, alpha, run_negative):
    """can_concat repeats captions up to a common length: the uncond row sees its repeats."""
    prompts = [scenes.cond(5, tokens=4), scenes.cond(6, tokens=8)]
    neg = scenes.cond(7, tokens=4)
    dm, stock, caps = _block_and_captions(host, alpha, prompts + [neg])
    owners = torch.tensor([1, 0] * 512)
    x = torch.randn(2, 1024, 1152)
    cond = torch.cat([caps[-1].repeat(1, 2, 1), caps[1]], dim=1)  # [uncond x2, cond]
    got = _mqd(host, dm, stock, owners, prompts, [1, 0], x, cond,
               neg if run_negative else None)(x, cond, None)
    _close(got[0], stock(x[:1], caps[-1].repeat(1, 2, 1), None)[0])
    for j in range(2):
        _close(got[1, owners == j], stock(x[1:], caps[j], None)[0, owners == j])


def test_routed_keys_are_bucketed(host):
    """Other prompt lengths within one bucket give the same shapes: no re-trace under compile."""
    owners = torch.tensor([0, 1] * 8)
    a = host.pixart_mqd.MQDRun(owners, [torch.zeros(1, 20, 4096), torch.zeros(1, 30, 4096)])
    b = host.pixart_mqd.MQDRun(owners, [torch.zeros(1, 7, 4096), torch.zeros(1, 11, 4096)])
    assert a.routed_keys == b.routed_keys == host.pixart_mqd.KEY_BUCKET
    assert a.key_owner.tolist() == [0] * 20 + [1] * 30 + [-1] * 14


def test_patched_modules_hold_no_diffusion_model(host, alpha):
    """A patched block must not reach its own diffusion model (dynamo: 'already tracked')."""
    dm = alpha.model.diffusion_model
    run = host.pixart_mqd.MQDRun(torch.zeros(1024, dtype=torch.long),
                          [torch.zeros(1, 2, 4096)])
    run.prepare(dm, torch.device("cpu"), torch.float32)
    patched = host.pixart_mqd.MQDCrossAttention(dm.blocks[0].cross_attn, 0, run)
    seen = [v for v in list(vars(run).values()) + list(vars(patched).values())]
    assert not any(isinstance(v, torch.nn.Module) and hasattr(v, "blocks") for v in seen)


def test_mask_order_routing_of_a_scene(host, three_layers):
    """Newest first; older layers keep only their still-visible tokens; the rest is background."""
    memory = three_layers[-1]
    owners = host.pixart.token_owners([l.token_mask for l in memory.layers[1:]]).view(32, 32)
    t1, t2, t3 = (l.token_mask for l in memory.layers[1:])
    assert owners[t3].eq(3).all()
    assert owners[t2 & ~t3].eq(2).all()
    assert owners[t1 & ~t2 & ~t3].eq(1).all()
    assert owners[~(t1 | t2 | t3)].eq(0).all()


def test_full_mask_layer_with_mqd_matches_plain_cross_attention(host, alpha, background):
    """A layer covering everything routes every token to its own prompt: MQD on == off (float
    tolerance)."""
    full = torch.ones(1, 512, 512)
    on = host.layer_ops.add_layer(background, alpha, scenes.cond(5), full, seed=3, use_mqd=True)
    off = host.layer_ops.add_layer(background, alpha, scenes.cond(5), full, seed=3, use_mqd=False)
    torch.testing.assert_close(on.top.trajectory.final, off.top.trajectory.final, rtol=1e-4,
                               atol=1e-3)


def test_mqd_changes_the_masked_region_only_through_routing(host, alpha, three_layers):
    memory = three_layers[2]
    mask = scenes.box_mask(512, 0.3, 0.3, 0.7, 0.7)
    on = host.layer_ops.add_layer(memory, alpha, scenes.cond(7), mask, seed=3, use_mqd=True)
    off = host.layer_ops.add_layer(memory, alpha, scenes.cond(7), mask, seed=3, use_mqd=False)
    inside = on.top.latent_mask > 0
    assert not torch.allclose(on.top.trajectory.final[:, inside],
                              off.top.trajectory.final[:, inside])
    assert torch.equal(on.top.trajectory.final[:, ~inside], off.top.trajectory.final[:, ~inside])


def test_patch_reaches_every_block(host, models):
    """Every DiT block's cross_attn is object-patched on the clone (checked on a 2-block model)."""
    import comfy.sd
    from safetensors.torch import save_file

    from tools import random_models

    target = (str(host.folder_paths.get_folder_paths("diffusion_models")[0])
              + "/random_alpha_depth2.safetensors")
    save_file(random_models.pixart_state_dict(random_models.ALPHA_512, depth=2, seed=5), target)
    model = comfy.sd.load_diffusion_model(target)
    clone = model.clone()
    run = host.pixart_mqd.MQDRun(torch.zeros(1024, dtype=torch.long),
                          [torch.zeros(1, 2, 4096)])
    keys = host.pixart_mqd.install(clone, run)
    assert keys == ["diffusion_model.blocks.0.cross_attn", "diffusion_model.blocks.1.cross_attn"]
    assert all(isinstance(clone.object_patches[k], host.pixart_mqd.MQDCrossAttention) for k in keys)
    assert not model.object_patches, "the caller's patcher is untouched"


class _AttentionShapes(torch.utils._python_dispatch.TorchDispatchMode):
    """Records the (batch, keys) of every SDPA call dispatched while active."""

    def __init__(self):
        super().__init__()
        self.calls: list[tuple[int, int]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if "scaled_dot_product" in func.overloadpacket.__name__:
            self.calls.append((int(args[1].shape[0]), int(args[1].shape[-2])))
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("order", [[1, 0], [0, 1]], ids=["uncond-first", "cond-first"])
@torch.no_grad()
def test_unconditional_rows_never_pay_for_the_routed_keys(host, alpha, order):
    """Issue 22: in a batched CFG call the negative's rows attend to their own caption only, so
    their cost does not grow with the stack; the conditional rows see the routed keys."""
    prompts = [scenes.cond(20 + i, tokens=30) for i in range(4)]  # 120 routed keys
    neg = scenes.cond(98, tokens=7)
    dm, stock, caps = _block_and_captions(host, alpha, prompts + [neg])
    owners = torch.arange(1024) % 4
    x = torch.randn(2, 1024, 1152)
    cond = torch.cat([caps[-1], caps[-1]], dim=1)
    patched = _mqd(host, dm, stock, owners, prompts, order, x, cond, neg)
    with _AttentionShapes() as seen:
        patched(x, cond, None)
    assert sorted(seen.calls) == sorted([(1, patched.run.routed_keys), (1, 7)]), seen.calls


def test_a_layer_hidden_under_later_ones_gets_no_keys(host):
    """A layer that owns no token (covered by newer layers) adds no keys to any row."""
    owners = torch.tensor([0, 2] * 8)
    run = host.pixart_mqd.MQDRun(owners, [torch.zeros(1, 40, 4096), torch.zeros(1, 50, 4096),
                                 torch.zeros(1, 20, 4096)])
    assert 1 not in run.key_owner.tolist()
    assert run.key_owner.tolist() == [0] * 40 + [2] * 20 + [-1] * 4


@torch.no_grad()
def test_rows_in_any_order_come_back_in_their_place(host, alpha):
    """cond, uncond, cond (chunks ComfyUI may batch): each row gets its own output back."""
    prompts = [scenes.cond(40 + i, tokens=6) for i in range(2)]
    neg = scenes.cond(97, tokens=6)
    dm, stock, caps = _block_and_captions(host, alpha, prompts + [neg])
    owners = torch.tensor([0, 1] * 512)
    x = torch.randn(3, 1024, 1152, generator=torch.Generator().manual_seed(3))
    cond = torch.cat([caps[-1]] * 3, dim=1)
    got = _mqd(host, dm, stock, owners, prompts, [0, 1, 0], x, cond, neg)(x, cond, None)
    _close(got[1], stock(x[1:2], caps[-1], None)[0])
    for row in (0, 2):
        for j in range(2):
            _close(got[row, owners == j], stock(x[row:row + 1], caps[j], None)[0, owners == j])
