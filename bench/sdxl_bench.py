#!/usr/bin/env python3
"""SDXL timings for issue 11, in one run: txt2img, AddLayer(5), BCG edit vs latent blending,
DeleteLayer vs AddLayer, one UNet forward stock vs MQD.

The model is a full-size SDXL UNet (ComfyUI's `supported_models.SDXL` config and
`model_base.SDXL` class, the real unet_config) with random fp16 weights: the same compute as a
real SDXL checkpoint. No VAE: the latent-blending edit is ComfyUI's noise-mask sampling
(`SetLatentNoiseMask` + KSampler) without the VAE encode/decode around it.

    COMFYUI_PATH=~/ComfyUI python3 bench/sdxl_bench.py              # GPU, 1024 px, 20 steps
    COMFYUI_PATH=~/ComfyUI python3 bench/sdxl_bench.py --small      # CPU smoke: small UNet
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

TOOLS = Path(__file__).resolve().parents[1] / "tools"
sys.path.insert(0, str(TOOLS))

SDXL_FULL = {
    "use_checkpoint": False,
    "image_size": 32,
    "use_spatial_transformer": True,
    "legacy": False,
    "num_classes": "sequential",
    "adm_in_channels": 2816,
    "in_channels": 4,
    "out_channels": 4,
    "model_channels": 320,
    "num_res_blocks": [2, 2, 2],
    "channel_mult": [1, 2, 4],
    "transformer_depth": [0, 0, 2, 2, 10, 10],
    "transformer_depth_output": [0, 0, 0, 2, 2, 2, 10, 10, 10],
    "transformer_depth_middle": 10,
    "use_linear_in_transformer": True,
    "context_dim": 2048,
    "use_temporal_resblock": False,
    "use_temporal_attention": False,
}


@torch.no_grad()
def full_sdxl():
    """A ModelPatcher of a full-size SDXL UNet with random fp16 weights on the torch device."""
    import comfy.model_management as mm
    import comfy.model_patcher
    import comfy.supported_models as sm

    config = sm.SDXL(dict(SDXL_FULL))
    config.set_inference_dtype(torch.float16, None)
    model = config.get_model({}, device=mm.get_torch_device())
    for p in model.diffusion_model.parameters():
        fan_in = max(1, p[0].numel()) if p.dim() > 1 else 1
        p.normal_(0.0, fan_in**-0.5 if p.dim() > 1 else 0.02)
    return comfy.model_patcher.ModelPatcher(
        model, load_device=mm.get_torch_device(), offload_device=mm.unet_offload_device()
    )


def _sync():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        _sync()
        t0 = time.perf_counter()
        fn()
        _sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--small", action="store_true", help="CPU smoke with the small test UNet")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    import comfy_host

    work = Path(tempfile.mkdtemp(prefix="lm_sdxl_bench_"))
    (work / "models").mkdir()
    (work / "custom_nodes").mkdir()
    h = comfy_host.boot(
        comfy_host.find_comfyui(), work / "models", work / "custom_nodes", cpu=args.small
    )
    import unet_scenes as us

    model = us.model("sdxl") if args.small else full_sdxl()
    size, steps, repeats = (256, 2, 1) if args.small else (1024, 20, args.repeats)
    results = run(h, us, model, size, steps, repeats)
    results["device"] = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    print(json.dumps(results, indent=2))


def _cond(seed: int, size: int) -> list:
    """CLIPTextEncodeSDXL-shaped conditioning: 77 tokens x 2048, pooled 1280, size extras."""
    import unet_scenes

    return unet_scenes.cond("sdxl", seed, size=size)


BOXES = [
    (0.05, 0.05, 0.4, 0.45),
    (0.5, 0.1, 0.9, 0.5),
    (0.1, 0.55, 0.45, 0.95),
    (0.55, 0.55, 0.95, 0.9),
    (0.3, 0.3, 0.7, 0.7),
]


def _memory(lo, model, size: int, steps: int):
    """A background and four objects (the AddLayer(5) setting: the timed edit adds the fifth)."""
    import scenes

    memory = lo.start_memory(model, _cond(1, size), _cond(2, size), size, size, seed=1, steps=steps,
                             cfg=6.0, sampler_name="dpmpp_2m", scheduler="karras")
    for i in range(4):
        memory = lo.add_layer(memory, model, _cond(10 + i, size),
                              scenes.box_mask(size, *BOXES[i]), seed=20 + i)
    return memory


def _timings(h, model, memory, size: int, repeats: int) -> dict:
    """Seconds (median) of txt2img, AddLayer(5) with and without MQD, BCG and latent-blending
    edits, and DeleteLayer, on the same memory, prompt and mask."""
    import comfy.sample
    import scenes

    lo, hw, s = h.layer_ops, size // 8, memory.schedule
    latent = torch.zeros(1, 4, hw, hw)
    noise = comfy.sample.prepare_noise(latent, 40)
    pos, neg, mask = _cond(30, size), _cond(2, size), scenes.box_mask(size, *BOXES[4])

    def sample(m, image, **kw):
        return comfy.sample.sample(m, noise, s.steps, s.cfg, s.sampler_name, s.scheduler, pos, neg,
                                   image, seed=40, disable_pbar=True, **kw)

    patched = h.nodes.NODE_CLASS_MAPPINGS["BCGBlend"].execute(model, memory, mask, 0, 0).result[0]
    latent_mask = h.masks.to_latent_mask(mask, (hw, hw))[None, None]
    composite = memory.composite_latent()["samples"]
    return {
        "txt2img": timed(lambda: sample(model, latent), repeats),
        "add_layer_5": timed(lambda: lo.add_layer(memory, model, pos, mask, seed=40), repeats),
        "add_layer_5_no_mqd": timed(
            lambda: lo.add_layer(memory, model, pos, mask, seed=40, use_mqd=False), repeats),
        "bcg_edit": timed(lambda: sample(patched, latent), repeats),
        "latent_blending_edit": timed(lambda: sample(model, composite, noise_mask=latent_mask),
                                      repeats),
        "delete_layer_2": timed(lambda: lo.delete_layer(memory, model, "2", 0.4, seed=3), repeats),
    }


def run(h, us, model, size: int, steps: int, repeats: int) -> dict:
    memory = _memory(h.layer_ops, model, size, steps)
    t = _timings(h, model, memory, size, repeats)
    t.update(forwards(h, us, model, memory, size // 8, repeats * 10))
    ratios = {
        "add_layer_5 / txt2img": t["add_layer_5"] / t["txt2img"],
        "bcg_edit / latent_blending_edit": t["bcg_edit"] / t["latent_blending_edit"],
        "delete_layer_2 / add_layer_5": t["delete_layer_2"] / t["add_layer_5"],
        "mqd_forward / stock_forward": t["forward_mqd"] / t["forward_stock"],
    }
    return {"size": size, "steps": steps, "repeats": repeats, "seconds": t, "ratios": ratios,
            "memory_nbytes": memory.nbytes()}


@torch.no_grad()
def forwards(h, us, model, memory, hw: int, repeats: int) -> dict:
    """One UNet forward on a CFG batch of 2: stock vs MQD over the memory's 5 layers + 1."""
    import comfy.model_management as mm

    mqd_unet = us.core(h, "mqd_unet")
    mm.load_models_gpu([model])
    inner = model.model
    device, dtype = mm.get_torch_device(), inner.get_dtype()
    layers = list(memory.layers)
    masks = [layer.latent_mask for layer in layers[1:]] + [torch.zeros(hw, hw)]
    masks[-1][hw // 4 : 3 * hw // 4, hw // 4 : 3 * hw // 4] = 1.0
    prompts = [layer.positive.embedding for layer in layers] + [_cond(31, hw * 8)[0][0]]
    clone = model.clone()
    mqd_unet.install(clone, mqd_unet.UNetMQDRun(masks, prompts))
    x = torch.randn(2, 4, hw, hw, device=device, dtype=dtype)
    ts = torch.tensor([500.0, 500.0], device=device)
    ctx = torch.cat([layers[0].negative.embedding, prompts[-1]]).to(device, dtype)
    y = torch.randn(2, 2816, device=device, dtype=dtype)
    dm = inner.diffusion_model
    routed = dict(clone.model_options["transformer_options"], cond_or_uncond=[1, 0])
    return {
        "forward_stock": timed(
            lambda: dm(x, ts, context=ctx, y=y, transformer_options={"cond_or_uncond": [1, 0]}),
            repeats,
        ),
        "forward_mqd": timed(
            lambda: dm(x, ts, context=ctx, y=y, transformer_options=dict(routed)), repeats
        ),
    }


if __name__ == "__main__":
    main()
