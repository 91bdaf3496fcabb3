"""One picture for the docs, made headless with the pack's real nodes on the toy model: a
background, three objects added (AddLayer), the middle one deleted (DeleteLayer), side by side.

    COMFYUI_PATH=~/ComfyUI python3 -m tools.toyworld.picture docs/images/toyworld.png
"""
from __future__ import annotations

import sys

import numpy as np

STEPS = [("grass", None), ("a red circle", (16, 24, 64, 72)),
         ("a blue square", (48, 40, 96, 88)), ("a yellow triangle", (72, 16, 120, 64))]


def main(out: str) -> None:
    import torch
    from PIL import Image

    from tools.toyworld import edits
    from tools.toyworld.comfy_env import boot_toy_host

    torch.set_num_threads(1)
    host = boot_toy_host("lm_toy_pic_")
    s = edits.Settings()
    memory, latent = edits.background(host, STEPS[0][0], 3, s)
    frames = [edits.decode(latent)]
    for i, (prompt, box) in enumerate(STEPS[1:]):
        memory, latent = edits.add_layer(host, memory, prompt, box, 40 + i)
        frames.append(edits.decode(latent))
    _, latent = edits.delete_layer(host, memory, 2, 77)  # the blue square, a middle layer
    frames.append(edits.decode(latent))
    strip = np.concatenate([np.pad(f, ((4, 4), (4, 4), (0, 0)), constant_values=1.0)
                            for f in frames], axis=1)
    Image.fromarray((strip * 255).round().astype(np.uint8)).resize(
        (strip.shape[1] * 2, strip.shape[0] * 2), Image.NEAREST).save(out)
    print("wrote", out)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "toyworld.png")
