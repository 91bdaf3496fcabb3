"""Issue 22: rebuilt composites share what they did not change, and stay bit for bit what the
per-layer full-picture rebuild made.

The reference here is the rebuild as it was before (every composite above rebuilt over the
whole picture, one full copy each); the new one works on the changed region's crop and stores
patches. Random stacks with soft rims, masks exactly 0 and 1, -0.0 values and trajectories that
already carry patches; every stored point compared bit for bit.
"""
import torch

from layermem_core import stack
from layermem_core import trajectory as tr
from layermem_core.trajectory import Trajectory, storage_bytes

from .test_stack import CALLS, C, FakeLayer, random_mask, traj

H = W = 12


def _points(t: Trajectory) -> torch.Tensor:
    return torch.cat([t.x, t.final[None]])


def _bits(t: Trajectory) -> torch.Tensor:
    return _points(t).view(torch.int32)


def old_recompose(upper, old_below, new_below):
    """The rebuild before issue 22: full picture, one new plain trajectory per layer."""
    def region_of(a, b):
        return (_points(a) != _points(b)).flatten(0, 1).any(dim=0)

    rebuilt = []
    for layer in upper:
        region = region_of(old_below, new_below)
        if not bool(region.any()):
            rebuilt.extend(upper[len(rebuilt):])
            break
        t, o, b = _points(layer.trajectory), _points(old_below), _points(new_below)
        m = layer.latent_mask.to(t.dtype)
        soft = t + (1.0 - m) * (b - o)
        new = torch.where(region, torch.where(m >= 1.0, t, torch.where(m <= 0.0, b, soft)), t)
        lt = layer.trajectory
        new_t = Trajectory(lt.sigmas, lt.steps, new[:-1].contiguous(), new[-1].contiguous())
        rebuilt.append(FakeLayer(layer.latent_mask, new_t))
        old_below, new_below = layer.trajectory, new_t
    return rebuilt


def old_write_tail(layers, region, first_call, tail, whole_picture=False):
    r = torch.ones_like(region) if whole_picture else region
    owner = stack.owners(layers)
    out = []
    for k, layer in enumerate(layers):
        where = r & (owner <= k)
        t = layer.trajectory
        x = t.x.clone()
        x[first_call:] = torch.where(where, tail.x, t.x[first_call:])
        final = torch.where(where, tail.final, t.final)
        out.append(FakeLayer(layer.latent_mask, Trajectory(t.sigmas, t.steps, x, final)))
    return out


def _mask(g: torch.Generator) -> torch.Tensor:
    kind = int(torch.randint(0, 4, (1,), generator=g))
    if kind == 0:
        return torch.zeros(H, W)  # a layer with nothing anywhere (m == 0)
    m = random_mask(g)
    if kind == 1:
        m = (m > 0.5).float()  # hard edges only (m == 0 and m == 1)
    return m


def _patched(t: Trajectory, g: torch.Generator) -> Trajectory:
    """`t` with a few random patches (some -0.0), the values changed where they land."""
    for _ in range(int(torch.randint(0, 3, (1,), generator=g))):
        y0, x0 = (int(v) for v in torch.randint(0, H - 2, (2,), generator=g))
        box = (y0, y0 + 2, x0, x0 + 3 if x0 + 3 <= W else W)
        vals = torch.randn(CALLS + 1, C, box[1] - box[0], box[3] - box[2], generator=g)
        vals[vals.abs() < 0.1] = -0.0
        t = t.with_patch(box, vals)
    return t


def _stack(g: torch.Generator, n: int) -> list[FakeLayer]:
    samples = [torch.randn(CALLS + 1, C, H, W, generator=g) for _ in range(n)]
    for s in samples:
        s[s.abs() < 0.05] = -0.0
    masks = [torch.ones(H, W)] + [_mask(g) for _ in range(n - 1)]
    out = [samples[0]]
    for s, m in zip(samples[1:], masks[1:], strict=True):
        out.append(torch.lerp(out[-1], s, m))
    return [FakeLayer(m, _patched(traj(p), g)) for m, p in zip(masks, out, strict=True)]


def _same(a: list, b: list, what: str) -> None:
    assert len(a) == len(b)
    for k, (x, y) in enumerate(zip(a, b, strict=True)):
        assert torch.equal(_bits(x.trajectory), _bits(y.trajectory)), f"{what}: composite {k}"


def test_recompose_is_bit_identical_to_the_full_picture_loop():
    g = torch.Generator().manual_seed(22)
    for trial in range(150):
        n = 3 + trial % 6
        layers = _stack(g, n)
        j = 1 + trial % (n - 1)
        if trial % 3 == 0:  # delete j
            args = (layers[j + 1:], layers[j].trajectory, layers[j - 1].trajectory)
        elif trial % 3 == 1:  # insert / re-sample j over the one below
            new = torch.lerp(_points(layers[j - 1].trajectory),
                             torch.randn(CALLS + 1, C, H, W, generator=g), random_mask(g))
            args = (layers[j:], layers[j - 1].trajectory, traj(new))
        else:  # a small change at j, as a patch on its own base
            old = layers[j].trajectory
            args = (layers[j + 1:], old, _patched(old.with_patch((3, 6, 2, 5), torch.randn(
                CALLS + 1, C, 3, 3, generator=g)), g))
        _same(stack.recompose(*args), old_recompose(*args), f"trial {trial}")


def test_write_tail_and_kept_under_are_bit_identical():
    g = torch.Generator().manual_seed(23)
    for trial in range(40):
        layers = _stack(g, 5)
        region = torch.rand(H, W, generator=g) > 0.8
        first = int(torch.randint(0, CALLS, (1,), generator=g))
        p = torch.randn(CALLS + 1, C, H, W, generator=g)
        t0 = traj(p)
        tail = Trajectory(t0.sigmas[first:], t0.steps[first:], t0.x[first:], t0.final)
        whole = trial % 4 == 0
        _same(stack.write_tail(layers, region, first, tail, whole),
              old_write_tail(layers, region, first, tail, whole), f"trial {trial}")
        layer, below = layers[2], layers[1].trajectory
        inside = layer.latent_mask > 0
        want = torch.where(inside, _points(below), _points(layer.trajectory))
        assert torch.equal(_points(stack.kept_under(layer, below)).view(torch.int32),
                           want.view(torch.int32))


def _soft_stack(g: torch.Generator, h: int, w: int, n: int) -> list[FakeLayer]:
    layers = [FakeLayer(torch.ones(h, w), traj(torch.randn(CALLS + 1, C, h, w, generator=g)))]
    for _ in range(n - 1):
        m = torch.zeros(h, w)
        m[20:40, 10:50] = 0.5  # soft everywhere: a change below reaches every layer
        s = torch.randn(CALLS + 1, C, h, w, generator=g)
        layers.append(FakeLayer(m, traj(torch.lerp(_points(layers[-1].trajectory), s, m))))
    return layers


def _held(stacks) -> int:
    return storage_bytes(t for layers in stacks for layer in layers
                         for _, t in layer.trajectory.parts())


def test_chained_edits_add_only_their_region_and_chains_stay_bounded():
    g = torch.Generator().manual_seed(24)
    h = w = 64
    n, edits = 8, 3 * tr.MAX_PATCHES
    for moving in (False, True):
        stacks = [_soft_stack(g, h, w, n)]
        before = _held(stacks)
        for e in range(edits):  # small edits of layer 1, every memory kept (ComfyUI's cache)
            layers = stacks[-1]
            y = 22 + (e % 5 if moving else 0)
            old = layers[1].trajectory
            new = old.with_patch((y, y + 4, 12, 16), torch.randn(CALLS + 1, C, 4, 4, generator=g))
            upper = stack.recompose(layers[2:], old, new)
            assert len(upper) == n - 2
            assert all(0 < len(u.trajectory.patches) <= tr.MAX_PATCHES for u in upper)
            assert all(u.trajectory._x is v.trajectory._x  # the base shared
                       for u, v in zip(upper, layers[2:], strict=True))
            stacks.append([layers[0], FakeLayer(layers[1].latent_mask, new)] + upper)
        grown = _held(stacks) - before
        patch = (CALLS + 1) * C * 4 * 4 * 4
        if not moving:  # the same box: each edit adds one patch per layer it changed
            assert grown == edits * (n - 1) * patch, grown
        else:  # boxes that move: compacted into one patch over their union (8 x 4 cells here)
            assert grown <= edits * (n - 1) * 2 * patch, grown


def test_accounting_counts_each_storage_once():
    big = torch.randn(10, 4, 8, 8)
    t = Trajectory(torch.ones(3, dtype=torch.float64), torch.arange(3), big[:3], big[3])
    assert t.nbytes() == 3 * 8 + 3 * 8 + 4 * 4 * 8 * 8 * 4, "x and final: one span of one storage"
    p = t.with_patch((0, 2, 0, 2), torch.zeros(4, 4, 2, 2))
    both = storage_bytes(x for tt in (t, p) for _, x in tt.parts())
    assert both == t.nbytes() + 4 * 4 * 2 * 2 * 4, "the shared base once, the patch added"
    assert torch.equal(p.x[:, :, 2:, :], t.x[:, :, 2:, :]) and p.x[:, :, :2, :2].eq(0).all()
    assert p.final[:, :2, :2].eq(0).all() and torch.equal(p.compacted().x, p.x)


def test_a_memory_with_patches_saves_the_same_file_and_loads_bit_for_bit():
    from dataclasses import replace

    from asserts import assert_same_memory
    from memory_files import small_memory

    from layermem_core import serialization as ser

    m = small_memory(3, 3, 8, 8)
    g = torch.Generator().manual_seed(25)
    layers = list(m.layers)
    for k in (1, 2):  # two patched composites, each on its own base
        t = layers[k].trajectory
        for box in ((1, 3, 2, 6), (4, 8, 0, 3)):
            vals = torch.randn(t.calls + 1, 4, box[1] - box[0], box[3] - box[2], generator=g)
            vals[0, 0, 0, 0] = -0.0
            t = t.with_patch(box, vals)
        assert len(t.patches) == 2
        layers[k] = replace(layers[k], trajectory=t)
    patched = m.with_layers(tuple(layers))
    plain = m.with_layers(tuple(replace(la, trajectory=la.trajectory.compacted())
                                for la in layers))
    for dtype in ("float32", "float16"):
        data = ser.to_bytes(patched, dtype)
        assert data == ser.to_bytes(plain, dtype), "the file does not depend on patches"
        assert_same_memory(ser.from_bytes(data, "p"), ser.from_bytes(ser.to_bytes(plain, dtype),
                                                                     "q"))
    assert_same_memory(ser.from_bytes(ser.to_bytes(patched), "p"), patched)
    patch_bytes = sum(p.points.numel() * 4 for la in patched.layers for p in la.trajectory.patches)
    assert patched.nbytes() == plain.nbytes() + patch_bytes, "a base and its patches, each once"


def test_dataclasses_replace_keeps_working_on_patched_trajectories():
    from dataclasses import replace

    g = torch.Generator().manual_seed(26)
    t = traj(torch.randn(CALLS + 1, C, H, W, generator=g))
    p = t.with_patch((1, 4, 2, 5), torch.randn(CALLS + 1, C, 3, 3, generator=g))
    x = torch.randn(CALLS, C, H, W, generator=g)
    swapped = replace(p, x=x)
    assert swapped.x is x and not swapped.patches and torch.equal(swapped.final, p.final)
    same = replace(p, sigmas=p.sigmas * 2)
    assert same.patches == p.patches and torch.equal(_points(same), _points(p))
    assert torch.equal(same.sigmas, p.sigmas * 2)
