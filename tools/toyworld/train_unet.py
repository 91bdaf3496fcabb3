"""Trains the toy UNet and its text encoder as a text-to-image model: whole-scene captions,
SD 1.5's noise schedule from ComfyUI's model_sampling, eps prediction, no layer routing (why: the
pack's MQD and BCG are then judged on a model that never saw them).
"""
from __future__ import annotations

import argparse
import copy
import hashlib
import math
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from . import text, unet, vae, world
from .comfy_env import ensure_comfy


def encoder_from(folder: Path) -> torch.nn.Module:
    enc, _ = vae.build()
    sd = load_file(str(folder / vae.ENCODER_FILE))
    enc.load_state_dict({k: v.float() for k, v in sd.items()})
    return enc.eval()


@torch.no_grad()
def dataset(n: int, seed: int, folder: Path, batch: int = 32,
            cache: Path | None = None) -> tuple[torch.Tensor, list]:
    """(model-space latents [n, 4, 16, 16], scenes): seeded scenes through the trained encoder.
    With `cache` (a folder), the latents are kept in a file named by the seed, the scene count
    and the encoder file's sha256, so a second stage skips the encoding (411 s for 1500)."""
    rng = np.random.default_rng(seed)
    scenes = [world.random_scene(rng, 0, 4) for _ in range(n)]
    path = None
    if cache is not None:
        digest = hashlib.sha256((folder / vae.ENCODER_FILE).read_bytes()).hexdigest()[:16]
        path = cache / f"toyworld_latents_seed{seed}_n{n}_{digest}.pt"
        if path.exists():
            return torch.load(path), scenes
    enc = encoder_from(folder)
    latents = []
    for i in range(0, n, batch):
        images = np.stack([world.render(s)[0] for s in scenes[i:i + batch]])
        latents.append(enc(torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()))
    latents = torch.cat(latents)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(latents, path)
    return latents, scenes


def load_trained(net: torch.nn.Module, enc: torch.nn.Module, folder: Path) -> None:
    """Start from a trained UNet and text encoder (`--resume`: a second stage)."""
    from tools import random_models as rm

    sd = load_file(str(folder / unet.FILE))
    net.load_state_dict({k[len(rm.UNET_PREFIX):]: v.float() for k, v in sd.items()})
    enc.load_state_dict({k: v.float() for k, v in load_file(str(folder / text.FILE)).items()})


def loss_weight(sigma: torch.Tensor, data_var: float, weighting: str) -> torch.Tensor:
    """Per-row weight of the eps MSE. "edm": (sigma^2 + sigma_data^2) / sigma_data^2, EDM's
    weighting (Karras et al. 2022) written for an eps-predicting model: the error of the x0 it
    implies (sigma x the eps error) weighted so that every noise level counts alike. Why: with
    plain eps MSE an eps error at sigma 14.6 costs 1/213 of its x0 error, and the shipped model's
    x0 at the sampler's first sigmas was 5x worse than predicting zero, its global colour wrong
    and the caption unused (docs/toyworld.md)."""
    if weighting == "eps":
        return torch.ones_like(sigma)
    if weighting == "edm":
        return (sigma ** 2 + data_var) / data_var
    raise ValueError(f"weighting {weighting!r}: use 'eps' or 'edm'")


def ema_update(ema: torch.nn.Module, live: torch.nn.Module, decay: float) -> None:
    with torch.no_grad():
        for e, p in zip(ema.parameters(), live.parameters(), strict=True):
            e.lerp_(p, 1.0 - decay)


def train(latents: torch.Tensor, scenes: list, steps: int, seed: int = 0, batch: int = 16,
          lr: float = 8e-4, log_every: int = 100, max_seconds: float | None = None,
          resume: Path | None = None, weighting: str = "eps",
          widths: tuple[int, tuple[int, ...]] = unet.WIDTHS):
    """Returns (BaseModel with EMA weights, EMA text encoder, steps run). `resume`: a weights
    folder whose UNet and text encoder are the starting point (else a seeded fresh init).
    `weighting`: "eps" (plain eps MSE, every t alike) or "edm" (see `loss_weight`)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed + 1)
    if resume is not None:
        widths = unet.widths_of(resume / unet.FILE)
    model = unet.base_model(seed, *widths)
    net = model.diffusion_model
    net.requires_grad_(True)  # ComfyUI builds its models for inference: no gradients
    enc = text.TextEncoder()
    if resume is not None:
        load_trained(net, enc, resume)
    ema_net, ema_enc = copy.deepcopy(net), copy.deepcopy(enc)
    params = list(net.parameters()) + list(enc.parameters())
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    sigmas = model.model_sampling.sigmas.float()
    data_var = float(latents.var())
    start = time.time()
    done = 0
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = lr * min(1.0, (step + 1) / 100) * 0.5 * (1 + math.cos(math.pi * step / steps))
        idx = rng.integers(0, len(scenes), batch)
        x0 = latents[idx]
        captions = [world.caption(scenes[i], rng, drop_background=0.3, drop_all=0.1) for i in idx]
        t = torch.from_numpy(rng.integers(0, len(sigmas), batch))
        sigma = sigmas[t].view(-1, 1, 1, 1)
        eps = torch.randn_like(x0)
        x_in = (x0 + sigma * eps) / torch.sqrt(sigma ** 2 + 1.0)  # ComfyUI's EPS calculate_input
        pred = net(x_in, t.float(), context=enc.encode(captions))
        per_row = (pred - eps).pow(2).mean(dim=(1, 2, 3))
        loss = (loss_weight(sigma.view(-1), data_var, weighting) * per_row).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        decay = min(0.995, (1 + step) / (10 + step))
        ema_update(ema_net, net, decay)
        ema_update(ema_enc, enc, decay)
        done = step + 1
        if step % log_every == 0 or step == steps - 1:
            print(f"unet step {step} loss {loss.item():.4f} {time.time() - start:.0f}s", flush=True)
        if max_seconds is not None and time.time() - start > max_seconds:
            print(f"unet stopped at the time limit after {done} steps", flush=True)
            break
    model.diffusion_model = ema_net
    return model, ema_enc, done


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--scenes", type=int, default=3000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=8e-4)
    p.add_argument("--max-seconds", type=float, default=None)
    p.add_argument("--resume", action="store_true",
                   help="start from the UNet and text encoder in tools/toyworld/weights")
    p.add_argument("--cache", type=Path, default=None,
                   help="folder keeping the encoded training latents between runs")
    p.add_argument("--weighting", choices=("eps", "edm"), default="eps",
                   help="eps: plain eps MSE (the first stage); edm: EDM's per-sigma weight")
    p.add_argument("--channels", type=int, default=unet.WIDTHS[0],
                   help="model channels (a multiple of 32: ComfyUI's GroupNorm has 32 groups)")
    p.add_argument("--channel-mult", default=",".join(map(str, unet.WIDTHS[1])))
    p.add_argument("--out", type=Path, default=vae.WEIGHTS)
    args = p.parse_args()
    torch.set_num_threads(1)
    ensure_comfy(pytorch_attention=True)
    t0 = time.time()
    latents, scenes = dataset(args.scenes, args.seed + 1000, vae.WEIGHTS, cache=args.cache)
    print(f"dataset {latents.shape} mean {latents.mean():+.3f} std {latents.std():.3f} "
          f"{time.time() - t0:.0f}s", flush=True)
    model, enc, done = train(latents, scenes, args.steps, args.seed, args.batch, lr=args.lr,
                             max_seconds=args.max_seconds,
                             resume=vae.WEIGHTS if args.resume else None,
                             weighting=args.weighting,
                             widths=(args.channels,
                                     tuple(int(v) for v in args.channel_mult.split(","))))
    args.out.mkdir(parents=True, exist_ok=True)
    unet.save(model, args.out)
    text.save(enc, args.out)
    print(f"saved {args.out} after {done} steps", flush=True)


if __name__ == "__main__":
    main()
