"""The composite's path through one sampling run: the latent the model saw at every call.

Only the model inputs and the final latent are kept. Every sampler in ComfyUI's k-diffusion
set updates the latent element by element, so a region whose model input is forced at every
call and whose final latent is forced at the end matches the stored run bit for bit, whatever
the sampler computed there in between; the model's denoised predictions are not needed (and
would double the memory). Stored per model call (not per step) so that samplers with several
calls a step (heun, dpmpp_2s, ...) are replayed call for call. Kept on the CPU between runs; a
run moves the one trajectory it needs to the sampling device once, at its start.

Shared storage (issue 22). An edit changes a region of the picture, so a rebuilt composite
is stored as the one it replaces (its base tensors, shared, never written) plus patches: the
bounding-box crop of the changed latent cells at every stored point. `x` and `final` are
assembled on demand (a plain trajectory returns its own tensors, no copy); `crop` reads a box
without assembling the picture. AddLayer stores its composite the same way, over the one below,
so a stack's layers chain their patches and each holds only its own region. Reads stay bounded:
a trajectory with more than `MAX_PATCHES` patches, or patches covering more than `READ_AREA`
pictures together, is compacted (one patch over their bounding box, or plain tensors where that
box is over `COMPACT_AREA` of the picture). Patches are shared tensors, so a long chain costs
reads (one copy plus the patches' writes), not memory.
`storage_bytes` counts each distinct storage once (see there).
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import torch

MAX_PATCHES = 64  # patches a trajectory may carry before it is compacted (`with_patch`)
READ_AREA = 4.0  # ... or once its patches together cover more than this many pictures
COMPACT_AREA = 0.5  # a compacted patch over more than this share of the picture: plain tensors

Box = tuple[int, int, int, int]  # (y0, y1, x0, x1) in latent cells, end exclusive


@dataclass(frozen=True, eq=False)
class Patch:
    """The values of every stored point ([calls + 1, C, y1 - y0, x1 - x0], the final last)
    inside `box`; written over the base (and older patches) when the trajectory is read."""

    box: Box
    points: torch.Tensor

    @property
    def area(self) -> int:
        y0, y1, x0, x1 = self.box
        return (y1 - y0) * (x1 - x0)


def bounding_box(region: torch.Tensor) -> Box | None:
    """The smallest box holding every True cell of `region` ([h, w] bool), or None."""
    rows = region.any(dim=1).nonzero()
    if rows.numel() == 0:
        return None
    cols = region.any(dim=0).nonzero()
    return int(rows[0, 0]), int(rows[-1, 0]) + 1, int(cols[0, 0]), int(cols[-1, 0]) + 1


def _inside(inner: Box, outer: Box) -> bool:
    return (outer[0] <= inner[0] and inner[1] <= outer[1]
            and outer[2] <= inner[2] and inner[3] <= outer[3])


def _overlap(a: Box, b: Box) -> Box | None:
    y0, y1, x0, x1 = max(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), min(a[3], b[3])
    return (y0, y1, x0, x1) if y0 < y1 and x0 < x1 else None


@dataclass(frozen=True, eq=False, init=False, repr=False)
class Trajectory:
    """sigmas [calls] float64 (sigma of each model call); steps [calls] int64 (sampler
    callbacks seen before the call, = the step for one-call samplers); x [calls, C, h, w] the
    model inputs and final [C, h, w] the sampler output, in model-internal latent space.

    Immutable: the tensors it holds are never written, so trajectories share them freely.
    """

    sigmas: torch.Tensor
    steps: torch.Tensor
    _x: torch.Tensor  # the base: plain tensors, shared with the trajectories made from it
    _final: torch.Tensor
    patches: tuple[Patch, ...]

    def __init__(self, sigmas: torch.Tensor, steps: torch.Tensor, x: torch.Tensor | None = None,
                 final: torch.Tensor | None = None, *, _x: torch.Tensor | None = None,
                 _final: torch.Tensor | None = None, patches: tuple[Patch, ...] = ()):
        """Trajectory(sigmas, steps, x, final): plain tensors. The keyword fields are what
        `dataclasses.replace` passes: replace(t, x=...) gives that x and t's (assembled) final."""
        if _x is not None:
            t = Trajectory._make(sigmas, steps, _x, _final, patches)
            if x is None and final is None:
                x, final, patches = _x, _final, t.patches
            else:
                x, final, patches = (t.x if x is None else x), (t.final if final is None
                                                                 else final), ()
        elif patches:
            raise TypeError("patches need the base they go over (_x, _final)")
        if x is None or final is None:
            raise TypeError("a Trajectory needs x and final")
        self._set(sigmas, steps, x, final, tuple(patches))

    def _set(self, sigmas, steps, x, final, patches) -> None:
        for name, value in (("sigmas", sigmas), ("steps", steps), ("_x", x), ("_final", final),
                            ("patches", patches)):
            object.__setattr__(self, name, value)

    @staticmethod
    def _make(sigmas: torch.Tensor, steps: torch.Tensor, x: torch.Tensor, final: torch.Tensor,
              patches: tuple[Patch, ...]) -> Trajectory:
        """A trajectory of base tensors and patches over them."""
        t = object.__new__(Trajectory)
        t._set(sigmas, steps, x, final, tuple(patches))
        return t

    # ------------------------------------------------------------------------------ reading
    @property
    def calls(self) -> int:
        return int(self.sigmas.numel())

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self._final.shape)

    @property
    def x(self) -> torch.Tensor:
        """[calls, C, h, w]; assembled (a new tensor) when the trajectory carries patches."""
        if not self.patches:
            return self._x
        return self.points()[:-1]

    @property
    def final(self) -> torch.Tensor:
        """[C, h, w]; assembled (a new tensor) when the trajectory carries patches."""
        if not self.patches:
            return self._final
        out = self._final.clone()
        for p in self.patches:
            y0, y1, x0, x1 = p.box
            out[:, y0:y1, x0:x1] = p.points[-1]
        return out

    def points(self) -> torch.Tensor:
        """Every stored point as one new [calls + 1, C, h, w] tensor (the final last)."""
        out = torch.cat([self._x, self._final[None]])
        for p in self.patches:
            y0, y1, x0, x1 = p.box
            out[:, :, y0:y1, x0:x1] = p.points
        return out

    def crop(self, box: Box) -> torch.Tensor:
        """Every stored point inside `box`, [calls + 1, C, y1 - y0, x1 - x0], a new tensor;
        reads only that box (of the base and of the patches over it)."""
        y0, y1, x0, x1 = box
        out = torch.cat([self._x[:, :, y0:y1, x0:x1], self._final[None, :, y0:y1, x0:x1]])
        for p in self.patches:
            o = _overlap(box, p.box)
            if o is None:
                continue
            py, px = p.box[0], p.box[2]
            out[:, :, o[0] - y0:o[1] - y0, o[2] - x0:o[3] - x0] = \
                p.points[:, :, o[0] - py:o[1] - py, o[2] - px:o[3] - px]
        return out

    def parts(self) -> Iterator[tuple[str, torch.Tensor]]:
        """The tensors this trajectory holds (shared ones included), named: for accounting."""
        yield "sigmas", self.sigmas
        yield "steps", self.steps
        yield "x", self._x
        yield "final", self._final
        for i, p in enumerate(self.patches):
            yield f"patch.{i}", p.points

    def nbytes(self) -> int:
        """Bytes of the tensors this trajectory holds, each shared storage once (`storage_bytes`):
        a patched trajectory counts its base, which it shares with the one it was made from."""
        return storage_bytes(t for _, t in self.parts())

    # ------------------------------------------------------------------------------ making
    def with_patch(self, box: Box, points: torch.Tensor) -> Trajectory:
        """This trajectory with every stored point inside `box` replaced by `points`.

        Shares the base and the older patches (those the new box does not cover). A chain that
        would grow past `MAX_PATCHES` patches, or cover more than `READ_AREA` pictures, is
        compacted: into one patch over the patches' bounding box while that box is at most
        `COMPACT_AREA` of the picture (the base still shared), else into plain tensors. So a
        read stays one copy plus at most `READ_AREA` pictures of writes in `MAX_PATCHES` parts.
        """
        h, w = self.shape[1:]
        patch = Patch(tuple(int(v) for v in box), points.contiguous())
        patches = tuple(p for p in self.patches if not _inside(p.box, patch.box)) + (patch,)
        chained = Trajectory._make(self.sigmas, self.steps, self._x, self._final, patches)
        limit = COMPACT_AREA * h * w
        if len(patches) <= MAX_PATCHES and sum(p.area for p in patches) <= READ_AREA * h * w:
            return chained
        boxes = [p.box for p in patches]
        union = (min(b[0] for b in boxes), max(b[1] for b in boxes),
                 min(b[2] for b in boxes), max(b[3] for b in boxes))
        if (union[1] - union[0]) * (union[3] - union[2]) <= limit:
            return Trajectory._make(self.sigmas, self.steps, self._x, self._final,
                                    (Patch(union, chained.crop(union)),))
        return chained.compacted()

    def compacted(self) -> Trajectory:
        """The same values in plain tensors (itself when it carries no patches)."""
        if not self.patches:
            return self
        full = self.points()
        return Trajectory(self.sigmas, self.steps, full[:-1], full[-1])

    def call_starting_at(self, sigma: float) -> int:
        """The stored call a run that starts at `sigma` lines up with: the last call made at that
        sigma.

        A step's first model call is at the step's sigma; a two-call sampler such as heun may also
        have evaluated that sigma as the second call of the step before, which comes earlier.
        """
        hits = torch.isclose(self.sigmas, torch.tensor(float(sigma), dtype=self.sigmas.dtype),
                             rtol=1e-6, atol=1e-9).nonzero()
        if hits.numel() == 0:
            raise IndexError(f"no model call was recorded at sigma {sigma}")
        return int(hits[-1, 0])

    def to(self, device: torch.device, dtype: torch.dtype | None = None) -> Trajectory:
        """Plain tensors on `device`: a run assembles and moves its one trajectory once."""
        kw = {"device": device} if dtype is None else {"device": device, "dtype": dtype}
        if not self.patches:
            return Trajectory(self.sigmas, self.steps, self._x.to(**kw), self._final.to(**kw))
        full = self.points().to(**kw)
        return Trajectory(self.sigmas, self.steps, full[:-1], full[-1])

    def replaced_in(self, region: torch.Tensor, other: Trajectory) -> Trajectory:
        """This trajectory with `region` ([h, w] bool) taken from `other`, call for call."""
        if other.calls != self.calls:
            raise ValueError("trajectories of different schedules cannot be merged")
        r = region.to(torch.bool)
        box = bounding_box(r)
        if box is None:
            return self
        y0, y1, x0, x1 = box
        return self.with_patch(box, torch.where(r[y0:y1, x0:x1], other.crop(box), self.crop(box)))


def storage_bytes(tensors: Iterable[torch.Tensor]) -> int:
    """Bytes the tensors hold, each byte of a shared storage counted once.

    The rule: per distinct storage (`untyped_storage().data_ptr()`), the union of the byte
    ranges its tensors span. So x and final as two views of one points tensor count once, a
    base shared by a trajectory and its patched successor counts once, and a small view of a
    big storage counts its own bytes (what a file stores), not the whole storage.
    """
    spans: dict[int, list[tuple[int, int]]] = {}
    for t in tensors:
        if t.numel() == 0:
            continue
        size = t.element_size()
        start = t.storage_offset() * size
        reach = sum((n - 1) * s for n, s in zip(t.shape, t.stride(), strict=True)) + 1
        spans.setdefault(t.untyped_storage().data_ptr(), []).append((start, start + reach * size))
    total = 0
    for ranges in spans.values():
        end = -1
        for a, b in sorted(ranges):
            if b <= end:
                continue
            total += b - max(a, end)
            end = b
    return total


class TrajectoryRecorder:
    """Collects (sigma, x) per model call on the sampling device; no host sync per call."""

    def __init__(self, first_step: int = 0):
        self.first_step = first_step
        self.step = first_step
        self._sigmas: list[torch.Tensor] = []
        self._steps: list[int] = []
        self._x: list[torch.Tensor] = []

    def record(self, sigma: torch.Tensor, x: torch.Tensor) -> None:
        self._sigmas.append(sigma.detach().reshape(-1)[0])
        self._steps.append(self.step)
        self._x.append(x[0].detach().clone())

    def step_done(self, step_index: int) -> None:
        """Called from the sampler callback after step
        `step_index` (counted from the run's start)."""
        self.step = self.first_step + step_index + 1

    def finish(self, final: torch.Tensor) -> Trajectory:
        if not self._x:
            raise RuntimeError("the sampler made no model call")
        return Trajectory(
            sigmas=torch.stack(self._sigmas).to("cpu", torch.float64),
            steps=torch.tensor(self._steps, dtype=torch.long),
            x=torch.stack(self._x).to("cpu", torch.float32),
            final=final[0].detach().to("cpu", torch.float32).clone(),
        )
