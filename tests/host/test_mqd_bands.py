"""Issue 22: the band layout of PixArt MQD (pixart_bands.py) against the bias layout.

Bands of consecutive tokens attend only to the prompts of the owners they hold. On a scene whose
layers sit in different bands, each band needs fewer keys than all routed prompts, and the
conditional rows' output on every token equals the bias layout's (the same softmax over a subset
of keys whose dropped keys had weight 0). Per call the band layout dispatches the same kernels
as the bias layout: no gather, no copy of the queries.
"""
import pytest
import torch

from tools import scenes

pytestmark = pytest.mark.host

ORDERS = {"cond-only": [0], "cond-first": [0, 1], "uncond-first": [1, 0], "c-u-c": [0, 1, 0]}


def _box_owners() -> torch.Tensor:
    """Three boxes over a background on the 32 x 32 token grid of 512 px; later boxes on top.
    No patch row holds more than three owners, the scene holds four."""
    owners = torch.zeros(32, 32, dtype=torch.long)
    owners[2:10, 2:12] = 1
    owners[14:26, 4:20] = 2
    owners[20:31, 16:30] = 3
    return owners.reshape(-1)


def _setup(host, alpha, order, bands: bool, run_negative: bool = True):
    """The patched block 0 with its run prepared for a call of `order`; bands=False forces the
    bias layout (one band over all routed keys) on the same run. Without `run_negative` the
    unconditional rows' keys come from each call's captions."""
    prompts = [scenes.cond(60 + i, tokens=20) for i in range(4)]  # 80 routed keys -> 128
    neg = scenes.cond(59, tokens=7)
    dm = alpha.model.diffusion_model
    run = host.pixart_mqd.MQDRun(_box_owners(), [p[0][0] for p in prompts],
                                 neg[0][0] if run_negative else None)
    if not bands:
        run.bands = None
    run.prepare(dm, torch.device("cpu"), torch.float32)
    run.select(order, len(order))
    caps = [dm.y_embedder(p[0][0][:, None], False)[:, 0] for p in prompts + [neg]]
    return host.pixart_mqd.MQDCrossAttention(dm.blocks[0].cross_attn, 0, run), caps


@pytest.mark.parametrize("run_negative", [True, False], ids=["run-negative", "call-captions"])
@pytest.mark.parametrize("order", list(ORDERS.values()), ids=list(ORDERS))
@torch.no_grad()
def test_bands_see_fewer_keys_and_give_the_bias_layouts_output(host, alpha, order, run_negative):
    banded, caps = _setup(host, alpha, order, True, run_negative)
    biased, _ = _setup(host, alpha, order, False, run_negative)
    plan = banded.run.bands
    # 16-row bands: rows 0-15 hold owners 0-2, rows 16-31 owners 0, 2, 3 (64 keys each)
    assert plan is not None and plan.band == 512 and plan.count == 2
    assert plan.keys == 64 < banded.run.routed_keys == 128
    x = torch.randn(len(order), 1024, 1152, generator=torch.Generator().manual_seed(1))
    cond = torch.cat([caps[-1]] * len(order), dim=1)  # the cond rows' own captions are unused
    got, ref = banded(x, cond, None), biased(x, cond, None)
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)  # every token of every row
    owners = _box_owners()
    block = alpha.model.diffusion_model.blocks[0].cross_attn
    for row, kind in enumerate(order):
        if kind == 1:
            torch.testing.assert_close(got[row], block(x[row:row + 1], caps[-1], None)[0],
                                       rtol=1e-5, atol=1e-5)
            continue
        for j in range(4):  # each token group: its own layer's stock output
            sel = owners == j
            torch.testing.assert_close(got[row, sel],
                                       block(x[row:row + 1], caps[j], None)[0, sel],
                                       rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("order", [[0], [0, 1], [1, 0]], ids=["cond-only", "cond-first",
                                                             "uncond-first"])
@torch.no_grad()
def test_a_call_dispatches_the_bias_layouts_ops(host, alpha, order):
    """Per call the bands add no gather, no copy (the queries are a view) and no view: the same
    ops, op for op, as the bias layout (the negative's keys are broadcast once per run)."""
    from bench import counting

    x = torch.randn(len(order), 1024, 1152)
    ops = {}
    for bands in (True, False):
        patched, caps = _setup(host, alpha, order, bands)
        cond = torch.cat([caps[-1]] * len(order), dim=1)
        count, _ = counting.count(lambda p=patched, c=cond: p(x, c, None), flops=False)
        ops[bands] = count.by_op
    assert ops[True] == ops[False]
    assert not any("index" in name or "gather" in name for name in ops[True])


def test_band_plan_is_made_only_when_cheaper(host):
    """Owners mixed in every band (or one owner everywhere): no plan, the bias layout."""
    bands = host.pixart_bands
    assert bands.band_size(1024) == 32 and bands.band_size(4096) == 64
    assert bands.band_size(64 * 48) == 48  # not square: a divisor of the token count
    mixed = torch.arange(1024) % 3
    assert bands.plan(mixed.tolist(), [0, 1, 2], [40, 40, 40], 128, 64) is None
    assert bands.plan([0] * 1024, [0], [20], 64, 64) is None
    halves = (torch.arange(1024) >= 512).long()
    plan = bands.plan(halves.tolist(), [0, 1], [40, 50], 128, 64)
    # every size from one row to 16 rows needs 64 keys: the largest (two bands) holds fewest
    assert (plan.band, plan.count, plan.keys) == (512, 2, 64)
    assert plan.key_owner[0].tolist() == [0] * 40 + [-1] * 24
    assert plan.key_owner[1].tolist() == [1] * 50 + [-1] * 14
    assert plan.key_index.view(2, 64)[1, :50].tolist() == list(range(40, 90))


def test_band_plan_holds_its_keys_within_the_budget(host):
    """Owners in horizontal stripes of 2 rows (16 owners, 20 keys each: 320 routed). One- and
    two-row bands need the fewest keys (64) but would hold 32 x 64 and 16 x 64 keys; the plan
    takes 4-row bands (the same 64 keys, 8 x 64 = 512 held <= 2 x 320); within a tighter budget
    larger bands that need more keys (16 rows: 2 x 192 = 384 <= 400); within the routed keys'
    own size none."""
    bands = host.pixart_bands
    stripes = (torch.arange(1024) // (32 * 2)).tolist()
    args = (stripes, list(range(16)), [20] * 16, 320, 64)
    plan = bands.plan(*args)
    assert (plan.band, plan.count, plan.keys) == (128, 8, 64)
    assert plan.count * plan.keys <= bands.HELD_KEYS_BUDGET * 320
    tight = bands.plan(*args, budget=1.25)
    assert (tight.band, tight.count, tight.keys) == (512, 2, 192)
    assert bands.plan(*args, budget=1.0) is None


def test_a_compiled_model_keeps_one_band(host, alpha):
    """Under ComfyUI's TorchCompileModel a run keeps the bias layout: a band plan's shapes follow
    the masks, so another edit of the same size would re-trace; without it the same run bands."""
    from compile_check import compiled

    prompts = [scenes.cond(60 + i, tokens=20)[0][0] for i in range(4)]
    for model, banded in ((alpha.clone(), True), (compiled(alpha, "aot_eager"), False)):
        run = host.pixart_mqd.MQDRun(_box_owners(), prompts)
        assert run.bands is not None
        host.pixart_mqd.install(model, run)
        assert (run.bands is not None) == banded
