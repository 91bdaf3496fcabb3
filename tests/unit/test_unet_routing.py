"""UNet MQD ownership per resolution level and family conditioning checks (no ComfyUI needed)."""

import pytest
import torch

from layermem_core import families, masks
from layermem_core.cfg_rows import conditional_rows
from layermem_core.conditioning import Conditioning
from layermem_core.errors import LayerMemoryError
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


def test_bias_routes_each_token_to_its_owners_keys_only():
    a = _box(8, 8, 0, 4, 0, 8)
    run = UNetMQDRun([a], [torch.zeros(1, 3, 4), torch.zeros(1, 5, 4)], torch.zeros(1, 2, 4))
    assert run.routed_keys == 8  # 3 + 5 prompt keys, padded to 8; the negative's are apart
    bias = run.owner_bias((8, 8), "cpu", torch.float32)
    assert bias.shape == (1, 1, 64, 8)
    top, bottom = bias[0, 0, :32], bias[0, 0, 32:]
    assert top[:, 3:8].eq(0).all() and top[:, :3].eq(float("-inf")).all()
    assert bottom[:, :3].eq(0).all() and bottom[:, 3:].eq(float("-inf")).all()
    padded = UNetMQDRun([a], [torch.zeros(1, 3, 4), torch.zeros(1, 6, 4)], torch.zeros(1, 2, 4))
    assert padded.routed_keys == 16
    assert padded.owner_bias((8, 8), "cpu", torch.float32)[..., 9:].eq(float("-inf")).all(), \
        "padding keys are never routed"


def test_a_batch_of_both_kinds_of_rows_splits_into_two_calls():
    """The negative's rows get a call of their own (issue 22): contiguous chunks are slices."""
    run = UNetMQDRun([_box(8, 8, 0, 4, 0, 8)], [torch.zeros(1, 3, 4)] * 2, torch.zeros(1, 2, 4))
    mixed = run.call_layout([1, 0], 4, "cpu")
    assert mixed.split.cond == slice(2, 4) and mixed.split.uncond == slice(0, 2)
    assert run.call_layout([0], 2, "cpu").split is None
    assert run.call_layout([1], 2, "cpu") is None
    scattered = run.call_layout([0, 1, 0], 3, "cpu").split
    out = scattered.merge(torch.tensor([10, 12]), torch.tensor([11]))
    assert out.tolist() == [10, 11, 12]


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
