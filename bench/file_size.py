#!/usr/bin/env python3
"""Issue 5: how big a saved layer memory is, in RAM and on disk, for a given scene shape.

A memory's size depends only on the shapes it holds (latent size, model calls, layers, prompt
tokens), not on the model or the picture, so this builds a memory of random tensors with those
shapes and writes it through the pack's own serializer (float32 and float16 trajectories). No
ComfyUI and no model needed; runs in seconds.

    python3 -m bench.file_size                      # 1024 px, 20 steps, 5 layers, 20-token prompts
    python3 -m bench.file_size --tokens 120         # PixArt-alpha's longest prompts
"""
from __future__ import annotations

import argparse
import sys

import torch

T5_WIDTH = 4096  # PixArt's T5-XXL embeddings


def import_core():
    """The pack's core modules this uses: (memory, trajectory, serialization)."""
    from layermem_core import memory, serialization, trajectory

    return memory, trajectory, serialization


def synthetic_memory(memory, trajectory, size: int, steps: int, layers: int, tokens: int):
    """A LayerMemory of random tensors with the shapes of a real one (`memory`, `trajectory`: the
    core modules)."""
    g = torch.Generator().manual_seed(0)
    h = w = size // 8
    sigmas = torch.linspace(14.6, 0.03, steps + 1)
    sigmas[-1] = 0
    neg = memory.Conditioning(torch.randn(1, tokens, T5_WIDTH, generator=g),
                              (("height", size), ("width", size)))
    # each layer records its own copy, as a real run does
    call_sigmas = sigmas[:-1].to(torch.float64)
    rows = []
    for i in range(layers):
        mask = torch.ones(h, w) if i == 0 else (torch.rand(h, w, generator=g) > 0.7).float()
        traj = trajectory.Trajectory(call_sigmas.clone(), torch.arange(steps),
                                     torch.randn(steps, 4, h, w, generator=g),
                                     torch.randn(4, h, w, generator=g))
        pos = memory.Conditioning(torch.randn(1, tokens, T5_WIDTH, generator=g),
                                  (("height", size), ("width", size)))
        rows.append(memory.Layer(f"layer {i}", pos, neg, i, mask,
                                 torch.rand(h // 2, w // 2, generator=g) > 0.7, traj,
                                 prompt=f"prompt {i}"))
    fp = memory.ModelFingerprint("pixart_alpha", 28, True, 4, (0.0,), "pixart")
    schedule = memory.Schedule(sigmas, "dpmpp_2m", "karras", steps, 4.5)
    return memory.LayerMemory(fp, schedule, (4, h, w), 0.18215, tuple(rows))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=1024, help="image size in px (square)")
    p.add_argument("--steps", type=int, default=20,
                   help="model calls in the schedule (steps of a one-call sampler)")
    p.add_argument("--layers", type=int, default=5, help="layers, the background counted")
    p.add_argument("--tokens", type=int, default=20, help="T5 tokens per prompt")
    a = p.parse_args(argv)
    if a.layers < 2:
        p.error("--layers must be at least 2 (the background and one object)")
    memory, trajectory, serialization = import_core()
    m = synthetic_memory(memory, trajectory, a.size, a.steps, a.layers, a.tokens)
    one = synthetic_memory(memory, trajectory, a.size, a.steps, 1, a.tokens)
    print(f"{a.layers} layers at {a.size} px, {a.steps} model calls, {a.tokens}-token prompts")
    print(f"  in RAM (LayerMemory.nbytes): {m.nbytes() / 1e6:.2f} MB; "
          "per layer after the background: "
          f"{(m.nbytes() - one.nbytes()) / (a.layers - 1) / 1e6:.2f} MB")
    for dtype in serialization.TRAJECTORY_DTYPES:
        n = len(serialization.to_bytes(m, dtype))
        print(f"  saved, {dtype} trajectories: {n:,} bytes = {n / 2 ** 20:.2f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
