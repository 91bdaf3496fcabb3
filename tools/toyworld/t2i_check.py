"""How well the trained model does plain text-to-image (before any layer editing): for seeded
one-object captions, does the picture show the caption's background, and an object of the
caption's colour and shape anywhere? Why: the ablation's figures only mean something if the
model draws the world at all; this is its baseline, read by the oracle."""
from __future__ import annotations

import numpy as np

from . import edits, oracle, world


def check(host, n: int = 24, seed: int = 0) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    settings = edits.Settings()
    bg_hits = colour_hits = object_hits = 0
    for i in range(n):
        bg = world.BG_NAMES[i % len(world.BG_NAMES)]
        colour = world.COLOUR_NAMES[int(rng.integers(len(world.COLOUR_NAMES)))]
        shape = world.SHAPES[int(rng.integers(len(world.SHAPES)))]
        _, latent = edits.background(host, f"a {colour} {shape} on {bg}", 700 + i, settings)
        reading = oracle.read_picture_box(edits.decode(latent), (0, 0, world.SIZE, world.SIZE),
                                          min_share=0.02)  # a 32 px triangle: 0.03
        bg_hits += reading.background == bg
        colour_hits += reading.colour == colour
        object_hits += reading.object == (colour, shape)
    return {"captions": n, "background": bg_hits / n, "colour": colour_hits / n,
            "object": object_hits / n}


def main() -> None:
    """`python3 -m tools.toyworld.t2i_check` (repository root): boots the host, prints figures."""
    import sys

    import torch

    from .comfy_env import boot_toy_host

    torch.set_num_threads(1)
    host = boot_toy_host("lm_toy_t2i_")
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 24
    print("text-to-image", check(host, n))


if __name__ == "__main__":
    main()
