"""The memory is a value: operations return new objects and share, never modify, tensors."""
import pytest
import torch

from layermem_core.conditioning import Conditioning
from layermem_core.errors import LayerMemoryError
from layermem_core.families import get as get_family
from layermem_core.memory import (
    Layer,
    LayerMemory,
    ModelFingerprint,
    Schedule,
)
from layermem_core.trajectory import Trajectory

PIXART = get_family("pixart")


def _trajectory(calls=3, fill=0.0):
    return Trajectory(torch.linspace(10, 0.1, calls, dtype=torch.float64), torch.arange(calls),
                      torch.full((calls, 4, 8, 8), fill), torch.full((4, 8, 8), fill + 2))


def _layer(name, fill):
    c = Conditioning(torch.zeros(1, 2, 4096), (("height", 64), ("width", 64)))
    token_mask = torch.ones(4, 4, dtype=torch.bool)
    return Layer(name, c, c, 0, torch.ones(8, 8), token_mask, _trajectory(fill=fill))


def _memory(n=3):
    fp = ModelFingerprint("pixart_alpha", 1, True, 4, (1.0,), "pixart")
    sched = Schedule(torch.linspace(10, 0, 4), "euler", "normal", 3, 4.5)
    layers = tuple(_layer(f"l{i}", float(i)) for i in range(n))
    return LayerMemory(fp, sched, (4, 8, 8), 0.18215, layers)


def test_resolve_by_index_name_and_negative():
    m = _memory(3)
    assert m.resolve("1") == 1 and m.resolve("-1") == 2 and m.resolve("l2") == 2
    with pytest.raises(LayerMemoryError, match="no layer is named"):
        m.resolve("dog")


def test_layer_zero_says_the_background_cannot_be_deleted():
    m = _memory(3)
    for spec in ("0", "-3", "l0"):
        with pytest.raises(LayerMemoryError, match="background, which cannot be deleted") as err:
            m.resolve(spec)
        assert "out of range" not in str(err.value) and "EditLayer on layer 0" in err.value.fix
    assert m.resolve("0", allow_background=True) == 0


@pytest.mark.parametrize("n, allow, named", [
    (3, False, "the layers that can be deleted are 1..2 (0 is the background, which cannot be "
               "deleted), or -1..-2 from the top"),
    (3, True, "the valid layers are 0..2 (0 is the background), or -1..-3 from the top"),
    (2, False, "the layers that can be deleted are 1 (0 is"),
    (1, True, "the valid layers are 0 (0 is the background), or -1 from the top"),
])
def test_out_of_range_names_the_range_it_means(n, allow, named):
    m = _memory(n)
    for spec in ("7", f"-{n + 1}", "9" * 20):
        with pytest.raises(LayerMemoryError, match="out of range") as err:
            m.resolve(spec, allow_background=allow)
        assert named in err.value.problem, err.value.problem


def test_background_only_memory_has_no_layer_to_delete():
    with pytest.raises(LayerMemoryError, match="no layer to choose") as err:
        _memory(1).resolve("-1")
    assert "out of range" not in str(err.value) and "AddLayer" in err.value.fix


def test_operations_return_new_values():
    m = _memory(3)
    before = [t.clone() for _, t in m.tensors()]
    assert m.truncated(2).layers == m.layers[:2] and len(m.layers) == 3
    renamed = m.renamed(1, "cat")
    assert renamed.layers[1].name == "cat" and m.layers[1].name == "l1"
    assert all(torch.equal(a, b) for a, b in zip(before, (t for _, t in m.tensors()), strict=True))


def test_composite_latent_is_process_latent_out():
    m = _memory(2)
    lat = m.composite_latent(0)["samples"]
    assert torch.equal(lat, m.layers[0].trajectory.final[None] / 0.18215)


def test_trajectory_region_replacement():
    a, b = _trajectory(fill=0.0), _trajectory(fill=5.0)
    region = torch.zeros(8, 8, dtype=torch.bool)
    region[2:4, 2:4] = True
    c = a.replaced_in(region, b)
    assert c.x[:, :, 2:4, 2:4].eq(5).all() and c.x[:, :, 0, 0].eq(0).all()
    assert c.final[:, 3, 3].eq(7).all() and a.x.eq(0).all()
    assert a.call_starting_at(float(a.sigmas[2])) == 2


def test_fingerprint_mismatch_reasons():
    fp = ModelFingerprint("pixart_alpha", 28, True, 4, (100.0, 3.0, -2.0), "pixart")
    assert fp.mismatch(fp) is None
    sigma = ModelFingerprint("pixart_sigma", 28, False, 4, (100.0, 3.0, -2.0), "pixart")
    assert "image_model" in fp.mismatch(sigma)
    other_weights = ModelFingerprint("pixart_alpha", 28, True, 4, (100.0, 3.5, -2.0), "pixart")
    assert "weights" in fp.mismatch(other_weights)
    close = ModelFingerprint("pixart_alpha", 28, True, 4, (100.0001, 3.0, -2.0), "pixart")
    assert fp.mismatch(close) is None


def test_conditioning_checks():
    with pytest.raises(LayerMemoryError, match="T5-XXL"):
        Conditioning.from_comfy([[torch.zeros(1, 77, 768), {}]], "positive", PIXART)
    with pytest.raises(LayerMemoryError, match="exactly one prompt"):
        Conditioning.from_comfy([[torch.zeros(1, 3, 4096), {}], [torch.zeros(1, 3, 4096), {}]],
                                "positive", PIXART)
    extras = {"width": 512, "height": 512, "pooled_output": None}
    c = Conditioning.from_comfy([[torch.ones(1, 3, 4096), extras]], "positive", PIXART)
    assert dict(c.extras) == {"width": 512, "height": 512}
