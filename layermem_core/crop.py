"""Compute only around the mask: where the crop of the latent goes, and moving tensors in and out.

A `Crop` is a window of the latent grid (latent cells). A run around the mask samples only the
window: its inputs are the window of the stored tensors (the reference trajectory, the free
mask, the layers' masks for MQD), and its recorded trajectory is pasted back into the full
reference (`paste`), so everything outside the window is the reference bit for bit by
construction and the stored composites stay full pictures.

`plan` picks the window: the bounding box of the region the run may change, grown by the
context margin, by the family's minimum size, and aligned to the family's cells; it returns
None (and says why) when the window would be (almost) the whole picture.

Pure module (torch only): the family facts come in as numbers.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import torch

from .errors import LayerMemoryError

log = logging.getLogger("LayerMemory")

WHOLE, AROUND = "whole picture", "around the mask"
COMPUTE_CHOICES = (WHOLE, AROUND)
DEFAULT_MARGIN = 64  # pixels of context on each side of the region's bounding box
# A window covering this much of the picture saves too little to be worth a second code path:
# the run takes the whole picture (and says so).
WHOLE_AREA = 0.9


@dataclass(frozen=True)
class Area:
    """What a verb was asked to compute over: the choice and the margin in pixels."""

    compute: str = WHOLE
    margin_px: int = DEFAULT_MARGIN

    @property
    def around(self) -> bool:
        return self.compute == AROUND


def check_area(compute: object, margin_px: object, crop_cells: int | None, family_label: str,
               why_not: str) -> Area:
    """The choice checked before any work; names the input and the fix."""
    if compute not in COMPUTE_CHOICES:
        raise LayerMemoryError("compute", f"unknown choice {compute!r}",
                               f"use one of {', '.join(repr(c) for c in COMPUTE_CHOICES)}")
    if isinstance(margin_px, bool) or not isinstance(margin_px, int):
        raise LayerMemoryError("context_margin", f"{margin_px!r} is not a whole number of pixels",
                               f"use an integer number of pixels, e.g. {DEFAULT_MARGIN}")
    if margin_px < 0:
        raise LayerMemoryError("context_margin", f"{margin_px} px is negative",
                               f"use 0 or more pixels of context around the mask, e.g. "
                               f"{DEFAULT_MARGIN}")
    if compute == AROUND and crop_cells is None:
        raise LayerMemoryError("compute", f"{family_label} cannot sample a crop of the picture"
                               + (f" ({why_not})" if why_not else ""),
                               f"use compute {WHOLE!r} with this model")
    return Area(str(compute), int(margin_px))


@dataclass(frozen=True)
class Crop:
    """A window [top, top + height) x [left, left + width) of the latent grid, in latent cells."""

    top: int
    left: int
    height: int
    width: int

    @property
    def rows(self) -> slice:
        return slice(self.top, self.top + self.height)

    @property
    def cols(self) -> slice:
        return slice(self.left, self.left + self.width)

    @property
    def box(self) -> tuple[int, int, int, int]:
        """(top, left, height, width) in latent cells: what family hooks take."""
        return self.top, self.left, self.height, self.width

    def of(self, t: torch.Tensor) -> torch.Tensor:
        """The window of a tensor whose last two dims are the latent grid."""
        return t[..., self.rows, self.cols].contiguous()

    def mask(self, hw: tuple[int, int]) -> torch.Tensor:
        """[h, w] bool, True inside the window."""
        m = torch.zeros(hw, dtype=torch.bool)
        m[self.rows, self.cols] = True
        return m

    def trajectory(self, t):
        """The window of a stored trajectory (every model input and the final latent)."""
        return replace(t, x=self.of(t.x), final=self.of(t.final))

    def paste(self, reference, run):
        """The full trajectory: `reference`'s last `run.calls` calls with the window from `run`.

        Runs go to the end of the schedule, so the run's calls are the reference's last ones.
        """
        offset = reference.calls - run.calls
        if offset < 0 or not torch.allclose(reference.sigmas[offset:].double(),
                                            run.sigmas.double(), rtol=1e-6, atol=1e-9):
            raise RuntimeError("the run around the mask made other model calls than the stored "
                               "trajectory; its crop cannot be placed in the stored composite")
        x = reference.x[offset:].clone()
        x[..., self.rows, self.cols] = run.x
        final = reference.final.clone()
        final[..., self.rows, self.cols] = run.final
        return replace(run, x=x, final=final)


def _axis(lo: int, hi: int, n: int, margin: int, cells: int, min_len: int) -> tuple[int, int]:
    """One side of the window: [lo, hi) grown by `margin`, to `min_len`, aligned to `cells`."""
    lo, hi = max(0, lo - margin), min(n, hi + margin)
    target = min(min_len, n)
    if hi - lo < target:
        lo = max(0, lo - (target - (hi - lo)) // 2)
        hi = min(n, max(hi, lo + target))
        lo = max(0, hi - target) if hi - lo < target else lo
    lo = lo // cells * cells  # alignment only grows the window: the region stays inside
    hi = min(n, -(-hi // cells) * cells)
    return lo, hi


def plan(region: torch.Tensor, margin_px: int, cells: int, min_px: int,
         label: str) -> Crop | None:
    """The window around `region` ([h, w] bool, what the run may change), or None for the whole
    picture (logged with the reason)."""
    h, w = region.shape
    if margin_px >= 8 * max(h, w):
        log.info("%s: context_margin %d px is larger than the %dx%d px picture; computing over "
                 "the whole picture.", label, margin_px, 8 * w, 8 * h)
        return None
    rows, cols = region.any(dim=1).nonzero(), region.any(dim=0).nonzero()
    if rows.numel() == 0:
        return None
    margin, min_len = -(-margin_px // 8), -(-min_px // 8)
    top, bottom = _axis(int(rows[0]), int(rows[-1]) + 1, h, margin, cells, min_len)
    left, right = _axis(int(cols[0]), int(cols[-1]) + 1, w, margin, cells, min_len)
    crop = Crop(top, left, bottom - top, right - left)
    if crop.height * crop.width >= WHOLE_AREA * h * w:
        log.info("%s: the region with its %d px margin (and the model's minimum of %d px) covers "
                 "%.0f%% of the picture; computing over the whole picture.", label, margin_px,
                 min_px, 100.0 * crop.height * crop.width / (h * w))
        return None
    log.info("%s: computing around the mask: %dx%d px at (%d, %d) of %dx%d px.", label,
             8 * crop.width, 8 * crop.height, 8 * crop.left, 8 * crop.top, 8 * w, 8 * h)
    return crop
