"""Timing: wall clock, process CPU time and GPU time per run; interleaved rounds; medians.

Ops are run in rounds (each op once per round, in turn) so that drift (thermal, other load)
hits all of them alike. Per run: wall time with the device synchronised around it, the
process's CPU time (time.process_time: every thread of the process) and, on CUDA, the GPU time
between two events recorded around it. CPU time far above GPU time means launch-bound.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch


def summary(samples: list[float]) -> dict:
    return {
        "median_s": statistics.median(samples),
        "min_s": min(samples),
        "max_s": max(samples),
        "runs": len(samples),
        "samples_s": [round(s, 6) for s in samples],
    }


def median(entry: dict) -> float:
    return entry["median_s"]


class Clock:
    """Measures one run of a function: wall, CPU and (on CUDA) GPU seconds."""

    def __init__(self, cuda: bool):
        self.cuda = cuda

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()

    def run(self, fn: Callable[[], object]) -> tuple[dict, object]:
        self.sync()
        start = end = None
        if self.cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
        c0, t0 = time.process_time(), time.perf_counter()
        out = fn()
        if self.cuda:
            end.record()
        self.sync()
        sample = {"wall": time.perf_counter() - t0, "cpu": time.process_time() - c0}
        if self.cuda:
            sample["gpu"] = start.elapsed_time(end) / 1000.0
        return sample, out

    def parts(self, fn: Callable[[Callable[[str], None]], None]) -> tuple[dict, dict]:
        """fn(lap) calls lap(name) after each part; (the whole run's sample, part -> seconds)."""
        laps: dict[str, float] = {}
        state = {"t": 0.0}

        def lap(name: str) -> None:
            self.sync()
            now = time.perf_counter()
            laps[name] = now - state["t"]
            state["t"] = now

        def whole():
            state["t"] = time.perf_counter()
            fn(lap)

        sample, _ = self.run(whole)
        return sample, laps


def interleaved(
    clock: Clock,
    ops: dict[str, Callable],
    rounds: int,
    warmup: int,
    with_parts: frozenset[str] = frozenset(),
) -> dict[str, dict]:
    """Run every op once per round, in turn; per op the medians of wall, CPU and GPU time."""
    samples: dict[str, list[dict]] = {name: [] for name in ops}
    parts: dict[str, dict[str, list[float]]] = {name: {} for name in with_parts}
    for r in range(warmup + rounds):
        for name, fn in ops.items():
            if name in with_parts:
                sample, laps = clock.parts(fn)
                for part, seconds in laps.items():
                    if r >= warmup:
                        parts[name].setdefault(part, []).append(seconds)
            else:
                sample, _ = clock.run(fn)
            if r >= warmup:
                samples[name].append(sample)
    out = {}
    for name, runs in samples.items():
        entry = summary([s["wall"] for s in runs])
        entry["cpu"] = summary([s["cpu"] for s in runs])
        if runs and "gpu" in runs[0]:
            entry["gpu"] = summary([s["gpu"] for s in runs])
        if name in with_parts:
            entry["parts"] = {part: summary(v) for part, v in parts[name].items()}
        out[name] = entry
    return out
