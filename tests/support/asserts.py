"""Memory equality for tests: bit for bit, and every piece of metadata."""
from __future__ import annotations

import torch

from tools.scenes import memory_digest


def tensor_bytes(t: torch.Tensor) -> bytes:
    return t.contiguous().view(torch.uint8).numpy().tobytes()


def assert_same_memory(a, b) -> None:
    """Every tensor bit-identical (name, dtype, shape, device, bytes) and every piece of metadata
    equal, the types of the conditioning extras included."""
    assert memory_digest(a) == memory_digest(b)
    assert [n for n, _ in a.tensors()] == [n for n, _ in b.tensors()]
    for (name, x), (_, y) in zip(a.tensors(), b.tensors(), strict=True):
        assert x.dtype == y.dtype and x.shape == y.shape and x.device == y.device, name
        assert tensor_bytes(x) == tensor_bytes(y), name
    assert a.fingerprint == b.fingerprint
    assert a.latent_shape == b.latent_shape and a.latent_scale == b.latent_scale
    schedule = [(s.sampler_name, s.scheduler, s.steps, s.cfg) for s in (a.schedule, b.schedule)]
    assert schedule[0] == schedule[1]
    assert len(a.layers) == len(b.layers)
    for la, lb in zip(a.layers, b.layers, strict=True):
        assert (la.name, la.prompt, la.seed) == (lb.name, lb.prompt, lb.seed)
        assert la.positive.extras == lb.positive.extras and la.negative.extras == lb.negative.extras
        assert [type(v) for _, v in la.positive.extras] == [type(v) for _, v in lb.positive.extras]
