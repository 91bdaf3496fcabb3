"""Memories built once per session with the random PixArt-alpha 512 model (3 steps, dpmpp_2m)."""
import pytest

from tools import scenes

STEPS = 3


@pytest.fixture(scope="session")
def alpha(models):
    return models("pixart_alpha_512")


@pytest.fixture(scope="session")
def background(host, alpha):
    return host.layer_ops.start_memory(alpha, scenes.cond(1), scenes.negative(), 512, 512, seed=11,
                                       steps=STEPS, cfg=4.5, sampler_name="dpmpp_2m",
                                       scheduler="karras")


@pytest.fixture(scope="session")
def three_layers(host, alpha, background):
    """Background plus three overlapping objects; returns every intermediate memory."""
    boxes = [(0.10, 0.10, 0.55, 0.55), (0.40, 0.30, 0.85, 0.80), (0.20, 0.60, 0.60, 0.95)]
    memories = [background]
    for i, box in enumerate(boxes):
        memories.append(host.layer_ops.add_layer(memories[-1], alpha, scenes.cond(20 + i),
                                                 scenes.box_mask(512, *box), seed=30 + i,
                                                 name=f"object {i + 1}"))
    return memories


@pytest.fixture
def no_sampling(host, monkeypatch):
    """Makes any sampling fail: bad input must be refused before a run starts."""
    def forbidden(*a, **k):
        raise AssertionError("sampling started before the input was checked")

    monkeypatch.setattr(host.sampling, "run", forbidden)
