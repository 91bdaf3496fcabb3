"""UNet MQD ownership per resolution level and family conditioning checks (no ComfyUI needed)."""

import pytest
import torch

from layermem_core import families, masks
from layermem_core.cfg_rows import conditional_rows
from layermem_core.conditioning import Conditioning
from layermem_core.errors import LayerMemoryError
from layermem_core.families import owner_chunks
from layermem_core.families.unet_mqd_run import UNetMQDRun, token_owners

SDXL = families.get("sdxl")


def _box(h, w, y0, y1, x0, x1):
    m = torch.zeros(h, w)
    m[y0:y1, x0:x1] = 1.0
    return m


def test_level_ownership_is_area_pool_at_half_newest_first():
    a = _box(32, 32, 0, 20, 0, 20)
    b = _box(32, 32, 8, 32, 8, 32)
    for factor in (1, 2, 4, 8):
        hw = (32 // factor, 32 // factor)
        owners = token_owners([a, b], hw).view(hw)
        pooled = [
            torch.nn.functional.avg_pool2d(m[None, None], factor)[0, 0] >= masks.TOKEN_THRESHOLD
            for m in (a, b)
        ]
        assert owners[pooled[1]].eq(2).all()
        assert owners[pooled[0] & ~pooled[1]].eq(1).all()
        assert owners[~pooled[0] & ~pooled[1]].eq(0).all()
    # factor 2 is exactly PixArt's token grid rule
    assert torch.equal(token_owners([a], (16, 16)).view(16, 16) == 1, masks.token_mask(a))


def test_half_covered_token_counts_and_less_does_not():
    m = torch.zeros(8, 8)
    m[0:2, 0:1] = 1.0  # half of the first 2x2 cell
    m[0:1, 2:3] = 1.0  # a quarter of the second
    owners = token_owners([m], (4, 4)).view(4, 4)
    assert owners[0, 0] == 1 and owners[0, 1] == 0


def test_odd_levels_pool_by_area():
    m = torch.ones(13, 13)
    assert token_owners([m], (7, 7)).eq(1).all()


def test_each_token_attends_to_its_groups_keys_only():
    """The chunked call equals, token by token, attention over the token's group's real keys."""
    a = _box(8, 8, 0, 4, 0, 8)
    g = torch.Generator().manual_seed(0)
    prompts = [torch.randn(1, 3, 8, generator=g), torch.randn(1, 5, 8, generator=g)]
    run = UNetMQDRun([a], prompts, torch.randn(1, 2, 8, generator=g))
    assert run.key_lengths == [3, 5, 2] and run.group_keys == 5
    rows = (False, True)  # [negative, positive]
    layout = run.chunk_layout((8, 8), rows, "cpu", torch.float32)
    assert layout.key_bias is not None and layout.key_bias.shape[-1] == 5
    keys = torch.cat([owner_chunks.pad_to(t, 5) for t in [*prompts, run.negative]])
    values = torch.randn(keys.shape, generator=g)
    q = torch.randn(2, 64, 8, generator=g)
    out = owner_chunks.attend(q, keys, values, layout, heads=2)
    owners = token_owners([a], (8, 8))
    lengths = run.key_lengths
    for row, cond in enumerate(rows):
        for t in range(64):
            group = int(owners[t]) if cond else run.negative_group
            k, v = keys[group, :lengths[group]], values[group, :lengths[group]]
            qh, kh, vh = (x.view(x.shape[0], 2, 4).transpose(0, 1) for x in (q[row, t:t + 1], k, v))
            ref = torch.softmax(qh @ kh.transpose(1, 2) / 2.0, -1) @ vh
            assert torch.allclose(out[row, t], ref.transpose(0, 1).reshape(-1), atol=1e-5)


def test_chunk_count_is_fixed_by_tokens_and_groups_not_masks():
    """Another mask with as many layers gives the same shapes (no re-trace under compile)."""
    prompts = [torch.zeros(1, 77, 4)] * 3
    masks_a = [_box(16, 16, 0, 4, 0, 4), _box(16, 16, 4, 16, 0, 16)]
    masks_b = [_box(16, 16, 0, 16, 0, 1), _box(16, 16, 0, 1, 0, 1)]
    shapes = set()
    for m in (masks_a, masks_b):
        lay = UNetMQDRun(m, prompts, torch.zeros(1, 77, 4)).chunk_layout(
            (16, 16), (False, True), "cpu", torch.float32)
        assert lay.key_bias is None  # every group 77 keys: no mask
        shapes.add((lay.gather.shape, lay.chunk_group.shape))
        assert sorted(lay.gather[lay.scatter].tolist()) == list(range(512))
    assert len(shapes) == 1


def test_zero_token_owners_get_no_chunks():
    hidden = _box(8, 8, 0, 8, 0, 8)
    run = UNetMQDRun([hidden, hidden], [torch.zeros(1, 2, 4)] * 3, torch.zeros(1, 2, 4))
    lay = run.chunk_layout((8, 8), (True,), "cpu", torch.float32)
    assert set(lay.chunk_group.tolist()) == {2}  # layer 1 is hidden under layer 2


def test_conditional_rows_follow_comfy_chunks():
    assert conditional_rows([1, 0], 4) == [False, False, True, True]
    assert conditional_rows([0], 1) == [True]
    assert conditional_rows([], 2) is None and conditional_rows([0, 1], 3) is None


@pytest.mark.parametrize("family,width", [("pixart", 4096), ("sd15", 768), ("sdxl", 2048)])
def test_conditioning_width_per_family(family, width):
    fam = families.get(family)
    extras = {"pooled_output": torch.zeros(1, 1280), "width": 1024}
    c = Conditioning.from_comfy([[torch.zeros(1, 154, width), extras]], "positive", fam)
    assert c.embedding.shape == (1, 154, width)
    assert (c.pooled is not None) == (family == "sdxl")
    for other in {4096, 768, 2048} - {width}:
        with pytest.raises(LayerMemoryError, match=f"{other} wide") as e:
            Conditioning.from_comfy([[torch.zeros(1, 77, other), extras]], "positive", fam)
        assert e.value.input_name == "positive"


def test_sdxl_needs_pooled_output_and_gives_it_back():
    with pytest.raises(LayerMemoryError, match="pooled") as e:
        Conditioning.from_comfy([[torch.zeros(1, 77, 2048), {"width": 1024}]], "negative", SDXL)
    assert e.value.input_name == "negative" and "CLIPTextEncode" in str(e.value)
    with pytest.raises(LayerMemoryError, match=r"\[1, 1280\]"):
        Conditioning.from_comfy(
            [[torch.zeros(1, 77, 2048), {"pooled_output": torch.zeros(1, 768)}]], "positive",
            SDXL)
    pooled = torch.randn(1, 1280)
    c = Conditioning.from_comfy(
        [[torch.zeros(1, 77, 2048), {"pooled_output": pooled, "crop_w": 0}]], "p", SDXL
    )
    ((emb, extras),) = c.to_comfy()
    assert torch.equal(extras["pooled_output"], pooled) and extras["crop_w"] == 0


def test_pixart_conditioning_has_no_pooled_output():
    c = Conditioning.from_comfy([[torch.zeros(1, 2, 4096), {}]], "positive", families.get("pixart"))
    assert c.pooled is None and c.to_comfy()[0][1] == {}


def test_level_grid_without_activations_shape():
    from layermem_core.families.unet_mqd_run import level_hw

    assert level_hw({"activations_shape": [2, 320, 16, 12]}, 192, (32, 24)) == (16, 12)
    assert level_hw({}, 7 * 5, (25, 18)) == (7, 5)
    with pytest.raises(RuntimeError):
        level_hw({}, 33, (32, 32))
