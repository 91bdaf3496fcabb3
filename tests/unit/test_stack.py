"""stack.recompose against an independent model: composites built from known per-layer samples.

Each layer k has its own sample S_k; BCG stores T_k = lerp(T_{k-1}, S_k, m_k). After removing or
inserting a layer, the right composites are the same fold over the new list of samples. The
recomposition only sees composites, never S_k, so this checks it can remove a layer's content
everywhere (hidden parts and soft rims included) without knowing the samples.
"""
import random
from dataclasses import dataclass

import torch

from layermem_core import stack
from layermem_core.trajectory import Trajectory

CALLS, C, H, W = 3, 2, 12, 12


@dataclass(frozen=True)
class FakeLayer:  # what recompose reads of a Layer, and dataclasses.replace can rebuild
    latent_mask: torch.Tensor
    trajectory: Trajectory


def traj(points: torch.Tensor) -> Trajectory:
    return Trajectory(torch.arange(CALLS, 0, -1, dtype=torch.float64), torch.arange(CALLS),
                      points[:-1].clone(), points[-1].clone())


def points(t: Trajectory) -> torch.Tensor:
    return torch.cat([t.x, t.final[None]])


def random_mask(g: torch.Generator) -> torch.Tensor:
    """A box off the grid with a soft rim (values 0 < m < 1), as area-resized and feathered
    masks have."""
    m = torch.zeros(H, W)
    y0, x0 = (int(v) for v in torch.randint(0, H - 5, (2,), generator=g))
    y1, x1 = (y0 + 3 + int(torch.randint(0, 4, (1,), generator=g)),
              x0 + 3 + int(torch.randint(0, 4, (1,), generator=g)))
    m[y0:y1, x0:x1] = 1.0
    rim = torch.nn.functional.max_pool2d(m[None, None], 3, 1, 1)[0, 0] - m
    return m + rim * (0.2 + 0.6 * torch.rand(H, W, generator=g))


def fold(samples: list[torch.Tensor], mask_list: list[torch.Tensor]) -> list[torch.Tensor]:
    """Composites of layers with own samples, background first (its mask is all ones)."""
    out = [samples[0]]
    for s, m in zip(samples[1:], mask_list[1:], strict=True):
        out.append(torch.lerp(out[-1], s, m))
    return out


def build(samples, mask_list):
    return [FakeLayer(m, traj(t)) for m, t in zip(mask_list, fold(samples, mask_list), strict=True)]


def check(layers, samples, mask_list):
    for k, (layer, want) in enumerate(zip(layers, fold(samples, mask_list), strict=True)):
        got = points(layer.trajectory)
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5, msg=f"composite {k}")
        hard = mask_list[k] >= 1
        assert torch.equal(got[..., hard], want[..., hard]), (
            f"composite {k} not exact where its mask is on")


def test_delete_any_layer_matches_the_fold_without_it():
    g = torch.Generator().manual_seed(0)
    for trial in range(40):
        n = 4 + trial % 3
        samples = [torch.randn(CALLS + 1, C, H, W, generator=g) for _ in range(n)]
        mask_list = [torch.ones(H, W)] + [random_mask(g) for _ in range(n - 1)]
        layers = build(samples, mask_list)
        j = 1 + trial % (n - 1)
        upper = stack.recompose(layers[j + 1:], layers[j].trajectory, layers[j - 1].trajectory)
        new_layers = layers[:j] + upper
        check(new_layers, samples[:j] + samples[j + 1:], mask_list[:j] + mask_list[j + 1:])


def test_insert_matches_the_fold_with_it_and_keeps_the_rest_bit_exact():
    g = torch.Generator().manual_seed(1)
    for trial in range(30):
        n = 4 + trial % 3
        samples = [torch.randn(CALLS + 1, C, H, W, generator=g) for _ in range(n)]
        mask_list = [torch.ones(H, W)] + [random_mask(g) for _ in range(n - 1)]
        layers = build(samples, mask_list)
        p = 1 + trial % (n - 1)
        s_new, m_new = torch.randn(CALLS + 1, C, H, W, generator=g), random_mask(g)
        inserted = FakeLayer(m_new,
                             traj(torch.lerp(points(layers[p - 1].trajectory), s_new, m_new)))
        upper = stack.recompose(layers[p:], layers[p - 1].trajectory, inserted.trajectory)
        new_layers = layers[:p] + [inserted] + upper
        check(new_layers, samples[:p] + [s_new] + samples[p:],
              mask_list[:p] + [m_new] + mask_list[p:])
        untouched = m_new == 0
        for old, new in zip(layers[p:], upper, strict=True):
            assert torch.equal(points(old.trajectory)[..., untouched],
                               points(new.trajectory)[..., untouched])


def test_deleting_in_any_order_never_brings_a_layer_back():
    rng = random.Random(3)
    g = torch.Generator().manual_seed(3)
    for _ in range(20):
        n = 6
        samples = [torch.randn(CALLS + 1, C, H, W, generator=g) for _ in range(n)]
        mask_list = [torch.ones(H, W)] + [random_mask(g) for _ in range(n - 1)]
        layers, live = build(samples, mask_list), list(range(n))
        while len(live) > 1:
            j = rng.randrange(1, len(live))
            upper = stack.recompose(layers[j + 1:], layers[j].trajectory, layers[j - 1].trajectory)
            layers, live = layers[:j] + upper, live[:j] + live[j + 1:]
            check(layers, [samples[i] for i in live], [mask_list[i] for i in live])
        assert torch.equal(points(layers[0].trajectory), samples[0])


def test_write_tail_goes_where_each_pixel_is_shown_and_everywhere_with_the_whole_picture():
    """A heal is written into the composite of the newest layer whose mask is on at a pixel and
    into every one above; older composites keep their bits. An unforced tail: everywhere."""
    g = torch.Generator().manual_seed(4)
    upper = torch.zeros(H, W)
    upper[:, W // 2:] = 1.0
    masks = [torch.ones(H, W), upper, torch.zeros(H, W)]
    masks[2][0, 0] = 0.5
    layers = [FakeLayer(m, traj(torch.randn(CALLS + 1, C, H, W, generator=g))) for m in masks]
    region = torch.zeros(H, W, dtype=torch.bool)
    region[2:5, 3:9] = True
    tail = traj(torch.randn(CALLS + 1, C, H, W, generator=g))
    tail = Trajectory(tail.sigmas[1:], tail.steps[1:], tail.x[1:], tail.final)
    owner = stack.owners(layers)
    assert int(owner[0, 0]) == 2 and int(owner[1, W - 1]) == 1 and int(owner[1, 0]) == 0
    for whole in (False, True):
        out = stack.write_tail(layers, region, 1, tail, whole_picture=whole)
        where = torch.ones_like(region) if whole else region
        for k, (old, new) in enumerate(zip(layers, out, strict=True)):
            written = where & (owner <= k)
            assert torch.equal(new.trajectory.x[0], old.trajectory.x[0])
            assert torch.equal(new.trajectory.x[1:][..., written], tail.x[..., written])
            assert torch.equal(new.trajectory.final[..., written], tail.final[..., written])
            kept = ~written
            assert torch.equal(new.trajectory.final[..., kept], old.trajectory.final[..., kept])
