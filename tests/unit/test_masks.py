"""Mask maths at latent and token resolution (no ComfyUI needed)."""
import pytest
import torch

from layermem_core import masks
from layermem_core.errors import LayerMemoryError


def test_resize_any_size_with_same_aspect():
    m = torch.zeros(1, 1024, 1024)
    m[:, 256:512, 512:768] = 1
    lat = masks.to_latent_mask(m, (64, 64))
    assert lat.shape == (64, 64)
    assert lat[16:32, 32:48].eq(1).all() and lat.sum() == 16 * 16
    small = masks.to_latent_mask(torch.ones(32, 32), (64, 64))
    assert small.shape == (64, 64) and small.eq(1).all()


def test_other_aspect_ratio_is_refused_with_fix():
    with pytest.raises(LayerMemoryError) as e:
        masks.to_latent_mask(torch.ones(512, 768), (64, 64))
    assert "mask" in str(e.value) and "aspect ratio" in str(e.value) and "Fix:" in str(e.value)


def test_batch_of_masks_refused():
    with pytest.raises(LayerMemoryError, match="batch of 2"):
        masks.to_latent_mask(torch.ones(2, 64, 64), (64, 64))


def test_empty_mask_refused_full_allowed():
    with pytest.raises(LayerMemoryError, match="empty"):
        masks.prepare_layer_mask(torch.zeros(512, 512), (64, 64), 0, 0)
    full = masks.prepare_layer_mask(torch.ones(512, 512), (64, 64), 0, 0)
    assert full.eq(1).all()


def test_grow_and_feather():
    m = torch.zeros(16, 16)
    m[8, 8] = 1
    g = masks.grow(m, 2)
    assert g.sum() == 25 and g[6:11, 6:11].eq(1).all()
    f = masks.feather(g, 2)
    assert f[6:11, 6:11].eq(1).all(), "feathering keeps the hard core"
    assert ((f > 0) & (f < 1)).any() and f.max() <= 1 and f.min() >= 0
    assert f[0, 0] == 0


def test_token_mask_threshold_half_of_patch():
    lat = torch.zeros(4, 4)
    lat[0, 0] = 1  # 1 of 4 pixels of token (0, 0): below threshold
    lat[0, 2:4] = 1  # 2 of 4 pixels of token (0, 1): at threshold
    t = masks.token_mask(lat)
    assert t.shape == (2, 2)
    assert t.tolist() == [[False, True], [False, False]]
