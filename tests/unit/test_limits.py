"""The size estimate on its own: monotonic, attention-aware, and the largest size it names fits."""
import pytest
import torch

from layermem_core import families, limits
from layermem_core.errors import LayerMemoryError
from layermem_core.families import pixart


class _Inner:
    def __init__(self, diffusion_model, per_pixel: int = 0):
        self.diffusion_model = diffusion_model
        self.per_pixel = per_pixel

    def get_dtype(self):
        return torch.float16

    def memory_required(self, shape):
        return shape[0] * shape[2] * shape[3] * self.per_pixel


class _Model:
    load_device = torch.device("cpu")

    def __init__(self, inner):
        self.model = inner


def test_estimate_grows_with_size_and_with_materialised_attention():
    sizes = [(512, 512), (1024, 1024), (2048, 1024), (2048, 2048)]
    needs = [pixart.run_bytes(w, h, 60, 2) for w, h in sizes]
    assert needs == sorted(needs) and len(set(needs)) == 4
    full, split, blocked = (pixart.run_bytes(2048, 2048, 60, 2, a)
                            for a in ("full", "split", "blocked"))
    assert full > max(split, blocked)
    tokens = (2048 // 16) ** 2
    assert full >= pixart.CFG_BATCH * pixart.HEADS * tokens ** 2 * 4, "N^2 scores per head, float32"


@pytest.mark.parametrize("family, inner",
                         [(families.get("pixart"), _Inner(torch.nn.Linear(1, 1))),
                          (None, _Inner(torch.nn.Linear(1, 1), per_pixel=4096))],
                         ids=["pixart", "comfy estimate"])
def test_refusal_names_a_largest_size_that_fits(monkeypatch, family, inner):
    # the estimator picks its formula by families.family_of (a host test covers the real MODEL)
    monkeypatch.setattr(limits.families, "family_of", lambda model: family)
    model = _Model(inner)
    need_at, _ = limits._estimator(model, 60)
    free = need_at(1024, 768)
    monkeypatch.setattr(limits, "query_free", lambda device: free)
    with pytest.raises(LayerMemoryError,
                       match=r"4096x3072 needs about .* fits is about 1024x768") as e:
        limits.require_fits(model, (4096, 3072), 60)
    assert e.value.input_name == "width/height"
    limits.require_fits(model, (1024, 768), 60)
    assert need_at(1040, 784) > free
    monkeypatch.setattr(limits, "query_free", lambda device: 1)
    with pytest.raises(LayerMemoryError, match="not even"):
        limits.require_fits(model, (1024, 768), 60)


def test_objects_that_are_not_models_are_left_to_the_model_checks():
    limits.require_fits(object(), (16384, 16384), 60)
    limits.require_fits(_Model(object()), (16384, 16384), 60)
