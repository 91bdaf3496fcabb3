"""What the trained toy UNet predicts at the sampler's first sigma: the x0 it implies, against
the truth, with and without the caption. Why: the first stage's model drew the wrong global
colour and ignored the caption; this measures it where a sampler starts (sigma_max, 14.6 for SD
1.5's schedule), on held-out scenes, so a retrained model can be compared on one number.

    COMFYUI_PATH=~/ComfyUI python3 -m tools.toyworld.x0_check [weights folder ...]

Per folder it prints: the x0 MSE with the scene's caption, with the empty caption, and of
predicting zero; and the same three for the per-image, per-channel spatial mean (the picture's
global colour).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from . import text, unet, vae, world
from .comfy_env import ensure_comfy

HELD_OUT_SEED = 5000  # training scenes come from 1000 + the run's seed (0 to 2 so far)


@torch.no_grad()
def check(folder: Path, latents: torch.Tensor, captions: list[str], noise_seed: int = 0,
          batch: int = 25) -> dict[str, float]:
    from .train_unet import load_trained

    model = unet.base_model(0, *unet.widths_of(folder / unet.FILE))
    net, enc = model.diffusion_model.eval(), text.TextEncoder().eval()
    load_trained(net, enc, folder)
    sigmas = model.model_sampling.sigmas.float()
    t = len(sigmas) - 1
    sigma = float(sigmas[t])
    eps = torch.randn(latents.shape, generator=torch.Generator().manual_seed(noise_seed))
    x_in = (latents + sigma * eps) / (sigma ** 2 + 1.0) ** 0.5  # ComfyUI's EPS calculate_input
    out = {"sigma": sigma}
    for name, words in (("cond", captions), ("uncond", [""] * len(captions))):
        preds = []
        for i in range(0, len(latents), batch):
            ts = torch.full((len(latents[i:i + batch]),), float(t))
            preds.append(net(x_in[i:i + batch], ts, context=enc.encode(words[i:i + batch])))
        x0 = latents + sigma * eps - sigma * torch.cat(preds)
        out[f"x0_mse_{name}"] = float((x0 - latents).pow(2).mean())
        out[f"mean_err_{name}"] = float((x0.mean(dim=(2, 3)) - latents.mean(dim=(2, 3)))
                                        .pow(2).mean())
    out["x0_mse_zero"] = float(latents.pow(2).mean())
    out["mean_err_zero"] = float(latents.mean(dim=(2, 3)).pow(2).mean())
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("folders", nargs="*", type=Path, default=[vae.WEIGHTS])
    p.add_argument("--scenes", type=int, default=200)
    args = p.parse_args()
    ensure_comfy()
    torch.set_num_threads(1)
    from .train_unet import dataset

    latents, scenes = dataset(args.scenes, HELD_OUT_SEED, vae.WEIGHTS)
    captions = [world.caption(s) for s in scenes]
    for folder in args.folders:
        r = check(folder, latents, captions)
        print(f"{folder}: sigma {r['sigma']:.2f}; x0 MSE cond {r['x0_mse_cond']:.4f} "
              f"uncond {r['x0_mse_uncond']:.4f} zero {r['x0_mse_zero']:.4f}; "
              f"mean-latent error cond {r['mean_err_cond']:.4f} uncond "
              f"{r['mean_err_uncond']:.4f} zero {r['mean_err_zero']:.4f}", flush=True)


if __name__ == "__main__":
    main()
