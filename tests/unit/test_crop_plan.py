"""Where a run around the mask puts its crop (issue 25): pure geometry, no ComfyUI needed."""
import logging

import pytest
import torch

from layermem_core import crop
from layermem_core.errors import LayerMemoryError
from layermem_core.families.unet import sdxl_crop_extras


def _region(hw, top, left, bottom, right):
    r = torch.zeros(hw, dtype=torch.bool)
    r[top:bottom, left:right] = True
    return r


def test_the_crop_covers_the_region_with_margin_aligned_to_the_cells():
    region = _region((128, 128), 50, 60, 58, 70)  # 8 x 10 latent cells
    c = crop.plan(region, 64, 8, 64, "t")  # 64 px = 8 cells of margin, 8-cell alignment
    assert (c.top, c.left) == (40, 48) and c.top % 8 == 0 and c.left % 8 == 0
    assert c.top + c.height >= 58 + 8 and c.left + c.width >= 70 + 8
    assert c.height % 8 == 0 and c.width % 8 == 0
    assert bool(c.mask((128, 128))[region].all())


def test_pixart_crops_are_at_least_its_minimum_and_on_the_token_grid():
    region = _region((128, 128), 61, 3, 67, 9)  # small, near the left border
    c = crop.plan(region, 0, 2, 512, "t")
    assert (c.height, c.width) == (64, 64)  # grown to 512 px a side
    assert c.left == 0 and c.top % 2 == 0  # clamped at the border, on the 2x2 grid
    assert bool(c.mask((128, 128))[region].all())


def test_a_crop_at_the_far_border_stays_inside_the_picture():
    region = _region((37, 45), 30, 40, 37, 45)  # odd latent sides (a UNet pads them)
    c = crop.plan(region, 8, 8, 64, "t")
    assert c.top + c.height == 37 and c.left + c.width == 45
    assert c.top % 8 == 0 and c.left % 8 == 0


def test_almost_the_whole_picture_or_a_huge_margin_falls_back_and_says_so(caplog):
    caplog.set_level(logging.INFO, logger="LayerMemory")
    assert crop.plan(_region((64, 64), 2, 2, 62, 62), 0, 2, 512, "t") is None
    assert "covers" in caplog.text and "whole picture" in caplog.text
    caplog.clear()
    assert crop.plan(_region((64, 64), 10, 10, 12, 12), 8 * 64, 8, 64, "t") is None
    assert "larger than" in caplog.text


@pytest.mark.parametrize("compute,margin,name", [("around", 64, "compute"),
                                                 ("around the mask", -8, "context_margin"),
                                                 ("around the mask", 6.5, "context_margin")])
def test_bad_choices_are_refused_naming_the_input(compute, margin, name):
    with pytest.raises(LayerMemoryError) as e:
        crop.check_area(compute, margin, 8, "X", "")
    assert e.value.input_name == name and "Fix:" in str(e.value)


def test_a_family_that_cannot_place_a_crop_refuses_the_choice():
    with pytest.raises(LayerMemoryError) as e:
        crop.check_area(crop.AROUND, 64, None, "Flat", "its embedding is global")
    assert e.value.input_name == "compute" and "Flat" in str(e.value)
    assert crop.WHOLE in str(e.value)
    assert crop.check_area(crop.WHOLE, 64, None, "Flat", "").around is False


def test_sdxl_says_where_the_crop_lies():
    extras = (("crop_h", 0), ("crop_w", 0), ("height", 1024), ("target_height", 1024),
              ("target_width", 1024), ("width", 1024))
    e = dict(sdxl_crop_extras(extras, (256, 128, 512, 384), (1024, 1024)))
    assert e == {"width": 1024, "height": 1024, "crop_w": 256, "crop_h": 128,
                 "target_width": 512, "target_height": 384}
    bare = dict(sdxl_crop_extras((), (64, 0, 512, 512), (2048, 1024)))
    assert (bare["width"], bare["height"], bare["crop_w"]) == (2048, 1024, 64)
