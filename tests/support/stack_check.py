"""An independent check of a layer stack's invariant, for the host tests of the editing verbs.

Every composite k is made of layers 0..k only: T_k = lerp(T_{k-1}, S_k, m_k) with S_k the layer's
own sample, which no later edit may change. A heal (or an unblended tail of a deletion) is written
into the composite of the newest layer that shows each of its pixels: it becomes part of that
layer's own sample there, and every composite above still equals the one below where its mask is
0, so a later edit that loses a heal breaks the same equalities. `StackModel` records each
layer's S_k when the layer is made and checks every stored point of every composite against it
after each edit; a removed layer whose content survived anywhere breaks one of the three
equalities below.
"""
from __future__ import annotations

import torch


def points(trajectory) -> torch.Tensor:
    return torch.cat([trajectory.x, trajectory.final[None]])


def own_sample(layers, k: int) -> torch.Tensor:
    """S_k where layer k's mask is on, recovered from T_k and T_{k-1} (exact where m == 1)."""
    t = points(layers[k].trajectory)
    if k == 0:
        return t.clone()
    b, m = points(layers[k - 1].trajectory), layers[k].latent_mask
    safe = torch.where(m > 0, m, torch.ones_like(m))
    return torch.where(m >= 1, t, (t - (1 - m) * b) / safe)


class StackModel:
    """Own samples by layer identity (the layer's name, unique in these tests)."""

    def __init__(self, memory):
        self.samples = {layer.name: own_sample(memory.layers, k)
                        for k, layer in enumerate(memory.layers)}
        # layers whose composite may differ from the one below outside their mask: an AddLayer's
        # unblended tail lives in that layer's composite (README "Where a heal or an unblended
        # tail lives")
        self.tails: set[str] = set()

    def made(self, memory, k: int) -> None:
        self.samples[memory.layers[k].name] = own_sample(memory.layers, k)

    def healed(self, memory, region: torch.Tensor) -> None:
        """A heal in `region` re-made the own samples there of the layers that show it."""
        for k, layer in enumerate(memory.layers):
            self.samples[layer.name] = torch.where(region, own_sample(memory.layers, k),
                                                   self.samples[layer.name])

    def check(self, memory) -> None:
        layers = memory.layers
        assert torch.equal(points(layers[0].trajectory), self.samples[layers[0].name]), (
            "background changed")
        for k in range(1, len(layers)):
            t, b = points(layers[k].trajectory), points(layers[k - 1].trajectory)
            m, name = layers[k].latent_mask, layers[k].name
            s = self.samples[name]
            hard, off = m >= 1, m <= 0
            soft = (m > 0) & (m < 1)
            assert torch.equal(t[..., hard], s[..., hard]), (
                f"layer {k} ({name}) changed where its mask is on")
            assert name in self.tails or torch.equal(t[..., off], b[..., off]), (
                f"composite {k} ({name}) differs from the one below where its mask is off: "
                "content of a layer not below it")
            if bool(soft.any()):
                got = own_sample(layers, k)[..., soft]
                scale = s[..., soft].abs().max().clamp_min(1.0)
                assert float((got - s[..., soft]).abs().max()) <= 1e-3 * scale, \
                    f"layer {k} ({name}) soft rim blends another composite below than its own"
