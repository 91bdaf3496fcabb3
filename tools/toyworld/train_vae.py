"""Trains the TAESD-architecture VAE on random crops of rendered scenes.

Why these losses: pixel MSE for faithful flat colours; a penalty pulling each latent channel to
mean 0 and std 1 (what the SD 1.5 schedule expects of model-space latents); and noise on the
latent before decoding, so the decoder tolerates a diffusion model's imperfect latents.
"""
from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch

from . import vae, world


def crops(rng: np.random.Generator, batch: int, crop: int) -> torch.Tensor:
    """[batch, 3, crop, crop] in [0, 1]: random crops (latent-aligned) of random scenes."""
    out = np.empty((batch, crop, crop, 3), dtype=np.float32)
    for i in range(batch):
        image, _ = world.render(world.random_scene(rng, 0, 4))
        y, x = (int(rng.integers(0, (world.SIZE - crop) // 8 + 1)) * 8 for _ in range(2))
        out[i] = image[y:y + crop, x:x + crop]
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()


def latent_stats_loss(z: torch.Tensor) -> torch.Tensor:
    mean = z.mean(dim=(0, 2, 3))
    std = z.std(dim=(0, 2, 3))
    return (mean ** 2).mean() + ((std - 1.0) ** 2).mean()


def train(steps: int, seed: int = 0, batch: int = 4, crop: int = 64, lr: float = 1e-3,
          latent_noise: float = 0.1, log_every: int = 50,
          resume: tuple[torch.nn.Module, torch.nn.Module] | None = None,
          decoder_only: bool = False
          ) -> tuple[torch.nn.Module, torch.nn.Module]:
    """`resume`: continue from these modules (a later stage on larger crops); `decoder_only`:
    the encoder stays frozen, so latents a UNet was trained on keep their meaning."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    enc, dec = vae.build() if resume is None else resume
    params = (list(dec.parameters()) if decoder_only
              else list(enc.parameters()) + list(dec.parameters()))
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    start = time.time()
    for step in range(steps):
        for g in opt.param_groups:  # cosine decay after a short warm-up
            g["lr"] = lr * min(1.0, (step + 1) / 50) * 0.5 * (1 + math.cos(math.pi * step / steps))
        x = crops(rng, batch, crop)
        if decoder_only:
            with torch.no_grad():
                z = enc(x)
        else:
            z = enc(x)
        y = dec(z + latent_noise * torch.randn_like(z))
        rec = (y - x).pow(2).mean()
        loss = rec if decoder_only else rec + 0.05 * latent_stats_loss(z)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if step % log_every == 0 or step == steps - 1:
            print(f"vae step {step} rec {rec.item():.5f} z mean {z.mean().item():+.3f} "
                  f"std {z.std().item():.3f} {time.time() - start:.0f}s", flush=True)
    return enc, dec


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--steps", type=int, default=1200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--crop", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--resume", action="store_true", help="continue from the saved weights")
    p.add_argument("--decoder-only", action="store_true", help="freeze the encoder")
    args = p.parse_args()
    torch.set_num_threads(1)
    resume = vae.load_modules() if args.resume else None
    enc, dec = train(args.steps, args.seed, args.batch, args.crop, args.lr, resume=resume,
                     decoder_only=args.decoder_only)
    vae.save(enc, dec)
    print("saved", vae.WEIGHTS)


if __name__ == "__main__":
    main()
