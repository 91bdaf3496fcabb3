"""The composite's path through one sampling run: the latent the model saw at every call.

Only the model inputs and the final latent are kept. Every sampler in ComfyUI's k-diffusion
set updates the latent element by element, so a region whose model input is forced at every
call and whose final latent is forced at the end matches the stored run bit for bit, whatever
the sampler computed there in between; the model's denoised predictions are not needed (and
would double the memory). Stored per model call (not per step) so that samplers with several
calls a step (heun, dpmpp_2s, ...) are replayed call for call. Kept on the CPU between runs; a
run moves the one trajectory it needs to the sampling device once, at its start.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True, eq=False)
class Trajectory:
    sigmas: torch.Tensor  # [calls] float64, sigma of each model call
    # [calls] int64, sampler callbacks seen before the call (= the step for one-call samplers)
    steps: torch.Tensor
    x: torch.Tensor  # [calls, C, h, w] model input, model-internal latent space
    final: torch.Tensor  # [C, h, w] sampler output, model-internal latent space

    @property
    def calls(self) -> int:
        return int(self.sigmas.numel())

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
        kw = {"device": device} if dtype is None else {"device": device, "dtype": dtype}
        return Trajectory(self.sigmas, self.steps, self.x.to(**kw), self.final.to(**kw))

    def replaced_in(self, region: torch.Tensor, other: Trajectory) -> Trajectory:
        """This trajectory with `region` ([h, w] bool) taken from `other`, call for call."""
        if other.calls != self.calls:
            raise ValueError("trajectories of different schedules cannot be merged")
        r = region.to(torch.bool)
        return Trajectory(
            self.sigmas,
            self.steps,
            torch.where(r, other.x, self.x),
            torch.where(r, other.final, self.final),
        )

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size()
                   for t in (self.sigmas, self.steps, self.x, self.final))


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
