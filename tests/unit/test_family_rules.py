"""Every family's size rule at its boundary, and the registry's facts (no ComfyUI needed)."""
import pytest

from layermem_core import families
from layermem_core.errors import LayerMemoryError

ALL = list(families.FAMILIES.values())


@pytest.mark.parametrize("family", ALL, ids=[f.name for f in ALL])
def test_size_rule_at_its_boundary(family):
    low, step = family.min_size, family.size_multiple
    families.require_size(family, low, low)
    families.require_size(family, low + step, low)
    with pytest.raises(LayerMemoryError, match=f"below {low} px") as e:
        families.require_size(family, low - step, low)
    assert e.value.input_name == "width/height"
    for side in ("width", "height"):
        size = {"width": low, "height": low, side: low + step // 2}
        with pytest.raises(LayerMemoryError, match=f"not a multiple of {step}") as e:
            families.require_size(family, size["width"], size["height"])
        assert e.value.input_name == side and family.label in str(e.value)


@pytest.mark.parametrize("family", ALL, ids=[f.name for f in ALL])
def test_a_family_is_found_by_its_name_and_names_its_encoder_width(family):
    assert families.get(family.name) is family
    assert family.patch_cells * 8 == family.size_multiple
    width = family.embed_width
    assert dict(family.encoder_widths)[width] == families.width_name(width)
    assert family.label in families.supported() and family.loader_hint in families.loaders()


def test_an_unknown_width_is_named_as_unknown():
    assert families.width_name(123) == "an unknown encoder"
