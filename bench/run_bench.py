#!/usr/bin/env python3
"""Issue 4 benchmark: what an edit costs against what ComfyUI users do today.

One process boots the real ComfyUI in-process (tools/comfy_host.boot), writes a random-weight
PixArt-alpha checkpoint with the real key names into a temp dir (tools/random_models), loads
it through ComfyUI's own loader, and measures in ONE run:

  1. plain txt2img (comfy.sample.sample, no patches);
  2. AddLayer (layer_ops.add_layer, MQD + BCG) with 1, 3 and 5 layers already in memory (the
     background counts as a layer), and the same edit with BCG alone (the BCGBlend node's patch on
     a clone + comfy.sample.sample with the memory's steps/sampler/scheduler/cfg, then VAE decode);
  3. the latent-blending edit users make today: VAE encode of the current picture,
     SetLatentNoiseMask, comfy.sample.sample with the noise mask, VAE decode;
  4. DeleteLayer of a middle layer (regenerate_fraction 0.4);
  5. one DiT forward on a CFG batch of 2, MQD-patched (6 routed groups) vs stock;
  6. RAM (process RSS, LayerMemory.nbytes()) and VRAM after each of 10 added layers.

GPU run (the figures issue 4 asks for):
    python bench/run_bench.py --device cuda [--comfyui PATH] [--out FILE]
CPU smoke (random depth-1 model, 512 px, 2 steps, 1 repeat; checks the script, not the targets):
    python bench/run_bench.py --cpu-smoke [--out FILE]

ComfyUI is found at --comfyui / the positional path, else $COMFYUI_PATH, else ~/ComfyUI. No network.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import gc
import hashlib
import json
import logging
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TOOLS = REPO / "tools"
SCENE_FILE = "multi_edit_bench_dev70.json"
MB = 1e6  # the targets are in MB (10^6 bytes); MiB are in the JSON too

TARGETS = {
    "addlayer5_over_txt2img": ("<=", 1.10, "AddLayer with 5 layers in memory <= 1.10x txt2img"),
    "bcg_edit_over_lb_edit": ("<", 1.00, "BCG-alone edit faster than the latent-blending edit"),
    "delete_over_addlayer5": ("<=", 0.45, "DeleteLayer <= 0.45x AddLayer"),
    "ram_mb_per_layer": ("<=", 12.0, "<= 12 MB RAM per layer at 1024 px"),
    "vram_growth_pct": ("<=", 1.0, "VRAM growth <= 1% over 10 layers"),
}


# ----------------------------------------------------------------------------------------------
# arguments


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("comfyui_path", nargs="?", default=None, help="ComfyUI checkout (else --comfyui, $COMFYUI_PATH, ~/ComfyUI)")
    p.add_argument("--comfyui", default=None, help="ComfyUI checkout")
    p.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    p.add_argument("--cpu-smoke", action="store_true",
                   help="CPU-sized run: depth-1 model, 512 px, 2 steps, layers 1 and 2, a chain of 2, 1 repeat, TAESD")
    p.add_argument("--size", type=int, default=1024, help="image width = height in px")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--depth", type=int, default=28, help="DiT blocks (PixArt-alpha XL-2: 28)")
    p.add_argument("--cfg", type=float, default=4.5)
    p.add_argument("--sampler", default="dpmpp_2m")
    p.add_argument("--scheduler", default="karras")
    p.add_argument("--tokens", type=int, default=20,
                   help="T5 tokens of every prompt (equal lengths let ComfyUI batch cond+uncond: CFG batch 2)")
    p.add_argument("--layers-in-memory", default="1,3,5", help="memory sizes (background included) AddLayer is timed at")
    p.add_argument("--chain", type=int, default=10, help="layers added for the RAM/VRAM section")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per measurement (medians reported)")
    p.add_argument("--warmup", type=int, default=1, help="untimed runs before each measurement")
    p.add_argument("--forward-iters", type=int, default=20, help="timed DiT forwards per variant")
    p.add_argument("--vae", choices=("sd", "taesd"), default=None,
                   help="random SD-VAE (default on cuda) or TAESD (default on cpu)")
    p.add_argument("--dtype", choices=("fp16", "bf16", "fp32"), default="fp16", help="checkpoint weight dtype")
    p.add_argument("--scenes", default=None, help=f"Multi-Edit Bench scenes ({SCENE_FILE})")
    p.add_argument("--scene", default=None, help="scene id for sections 2-5 (default: the first with >= 5 objects)")
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--out", default=None, help="JSON path (default bench/results/<device>-<date>.json)")
    p.add_argument("--pack-commit", default=os.environ.get("LAYERMEM_PACK_COMMIT"),
                   help="pack commit to record when the tree has no .git (default: git rev-parse HEAD)")
    p.add_argument("--verbose", action="store_true", help="keep ComfyUI's INFO log")
    a = p.parse_args(argv)
    if a.cpu_smoke:
        a.device = "cpu"
        explicit = set(_explicit_options(argv if argv is not None else sys.argv[1:]))
        smoke = {"size": 512, "steps": 2, "depth": 1, "layers_in_memory": "1,2", "chain": 2, "repeats": 1,
                 "warmup": 0, "forward_iters": 1, "vae": "taesd"}
        for k, v in smoke.items():
            if k not in explicit:
                setattr(a, k, v)
    if a.vae is None:
        a.vae = "sd" if a.device == "cuda" else "taesd"
    a.layers_in_memory = sorted({int(x) for x in str(a.layers_in_memory).split(",") if x.strip()})
    if not a.layers_in_memory or min(a.layers_in_memory) < 1:
        p.error("--layers-in-memory needs sizes >= 1 (the background is layer 1)")
    if a.size % 16 or a.size < 512:
        p.error("--size must be a multiple of 16 and >= 512 (ComfyUI's PixArt divides by zero below 512)")
    if a.chain < 1 or a.repeats < 1 or a.warmup < 0:
        p.error("--chain and --repeats must be >= 1, --warmup >= 0")
    return a


def _explicit_options(argv) -> list[str]:
    return [x[2:].split("=")[0].replace("-", "_") for x in argv if x.startswith("--")]


# ----------------------------------------------------------------------------------------------
# small helpers


def find_comfyui(args) -> Path:
    import comfy_host as host_support  # tools/comfy_host.py: the one place that knows where ComfyUI may be

    found = host_support.find_comfyui(args.comfyui_path, args.comfyui)
    if found is None:
        raise SystemExit("ComfyUI not found: pass its path, or set COMFYUI_PATH, or put a checkout at ~/ComfyUI")
    return found


def find_scenes(args) -> Path:
    candidates = [args.scenes] if args.scenes else []
    candidates += [REPO.parent / "shared" / "bench" / SCENE_FILE, REPO / "shared" / "bench" / SCENE_FILE,
                   REPO / ".bench_data" / SCENE_FILE]  # .bench_data: staged by bench/prepare_device.sh
    for c in candidates:
        if c and Path(c).is_file():
            return Path(c)
    raise SystemExit(f"{SCENE_FILE} not found; pass --scenes PATH")


def git_commit(path: Path) -> str | None:
    """HEAD of the git checkout rooted at `path` (not of a repository it merely sits in), '+dirty' if changed."""
    try:
        top = subprocess.run(["git", "-C", str(path), "rev-parse", "--show-toplevel"], capture_output=True, text=True, timeout=10)
        if top.returncode != 0 or Path(top.stdout.strip()).resolve() != Path(path).resolve():
            return None
        sha = subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        if sha.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(path), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=30)
        return sha.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def comfyui_version(root: Path) -> dict:
    version = None
    vfile = root / "comfyui_version.py"
    if vfile.is_file():
        m = re.search(r"__version__\s*=\s*['\"]([^'\"]+)", vfile.read_text())
        version = m.group(1) if m else None
    return {"path": str(root), "version": version, "commit": git_commit(root) or os.environ.get("COMFYUI_COMMIT")}


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower() or "device"


def summary(samples: list[float]) -> dict:
    return {"median_s": statistics.median(samples), "min_s": min(samples), "max_s": max(samples),
            "runs": len(samples), "samples_s": [round(s, 6) for s in samples]}


def median(entry: dict) -> float:
    return entry["median_s"]


# ----------------------------------------------------------------------------------------------
# the benchmark


class Bench:
    def __init__(self, args, host, torch, workdir: Path):
        import comfy.model_management as mm
        import comfy.sample
        import comfy.samplers
        import comfy.sd
        import psutil

        self.a, self.h, self.torch, self.mm = args, host, torch, mm
        self.comfy_sample, self.comfy_sd = comfy.sample, comfy.sd
        self.workdir = workdir
        self.cuda = args.device == "cuda"
        self.proc = psutil.Process()
        self.W = self.H = args.size
        self.results: dict = {}

    # -- timing --------------------------------------------------------------------------------
    def sync(self):
        if self.cuda:
            self.torch.cuda.synchronize()

    def timed(self, fn, repeats=None, warmup=None):
        """(summary of wall-clock times with the device synchronised around each run, last result)."""
        repeats = self.a.repeats if repeats is None else repeats
        warmup = self.a.warmup if warmup is None else warmup
        out = None
        for _ in range(warmup):
            out = fn()
        self.sync()
        times = []
        for _ in range(repeats):
            self.sync()
            t0 = time.perf_counter()
            out = fn()
            self.sync()
            times.append(time.perf_counter() - t0)
        return summary(times), out

    def timed_parts(self, fn) -> dict:
        """Like timed(), for a run made of parts: fn(lap) calls lap(name) after each part."""
        for _ in range(self.a.warmup):
            fn(lambda name: None)
        totals, parts = [], {}
        for _ in range(self.a.repeats):
            self.sync()
            state = {"t": time.perf_counter(), "total": 0.0}

            def lap(name, state=state):
                self.sync()
                now = time.perf_counter()
                parts.setdefault(name, []).append(now - state["t"])
                state["total"] += now - state["t"]
                state["t"] = now

            fn(lap)
            totals.append(state["total"])
        entry = summary(totals)
        entry["parts"] = {name: summary(v) for name, v in parts.items()}
        return entry

    # -- inputs ----------------------------------------------------------------------------------
    def embedding(self, text: str):
        """A deterministic random T5-XXL-shaped embedding per prompt text (no T5 here)."""
        torch = self.torch
        seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") & ((1 << 63) - 1)
        g = torch.Generator().manual_seed(seed)
        return torch.randn(1, self.a.tokens, 4096, generator=g) * 0.2

    def cond(self, text: str) -> list:
        return [[self.embedding(text), {"width": self.W, "height": self.H}]]

    def box_mask(self, box):
        """[1, H, W] MASK, ones inside the normalised box [x0, y0, x1, y1] (x right, y down; rows = y)."""
        x0, y0, x1, y1 = box
        m = self.torch.zeros(1, self.H, self.W)
        m[:, round(y0 * self.H):round(y1 * self.H), round(x0 * self.W):round(x1 * self.W)] = 1.0
        return m

    def load_scenes(self, path: Path):
        data = json.loads(path.read_text())
        scenes = {str(k): sorted(v, key=lambda layer: layer["layer"]) for k, v in data.items()}
        need = max(self.a.layers_in_memory)
        sid = self.a.scene or next((k for k, v in scenes.items() if len(v) >= need and self.groups(v[:need]) == need + 1),
                                   next((k for k, v in scenes.items() if len(v) >= need), None))
        if sid is None or sid not in scenes:
            raise SystemExit(f"no scene with >= {need} objects (or --scene {self.a.scene} unknown) in {path}")
        if len(scenes[sid]) < need:
            raise SystemExit(f"scene {sid} has {len(scenes[sid])} objects; AddLayer({need}) needs {need}")
        self.scene_id, self.scene = sid, scenes[sid]
        order = list(scenes)
        start = order.index(sid)
        chain = []
        for k in order[start:] + order[:start]:
            chain.extend(scenes[k])
            if len(chain) >= self.a.chain:
                break
        self.chain_objects = chain[:self.a.chain]
        self.background_prompt = self.scene[0]["background_prompt"]
        self.negative_prompt = "low quality, blurry, distorted, deformed, watermark, text, jpeg artifacts"

    def groups(self, objects) -> int:
        """Routed MQD groups (background included) that these objects' boxes give at the token grid."""
        h = self.h
        hw = (self.H // 8, self.W // 8)
        tokens = [h.masks.token_mask(h.masks.prepare_layer_mask(self.box_mask(o["coordinates"]), hw, 0, 0)) for o in objects]
        return int((self.torch.bincount(h.routing.token_owners(tokens)) > 0).sum())

    # -- models --------------------------------------------------------------------------------
    def load_pixart(self):
        import random_models
        from safetensors.torch import save_file

        torch = self.torch
        dtype = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}[self.a.dtype]
        variant = random_models.PixArtVariant(f"pixart_alpha_{self.a.size}", self.a.size, True)
        path = self.workdir / "models" / "diffusion_models" / variant.filename
        t0 = time.perf_counter()
        save_file(random_models.pixart_state_dict(variant, depth=self.a.depth, seed=0, dtype=dtype), str(path))
        t_write = time.perf_counter() - t0
        t0 = time.perf_counter()
        self.model = self.comfy_sd.load_diffusion_model(str(path))
        bm = self.model.model
        self.results["model"] = {
            "architecture": f"PixArt-alpha (PixArtMS), {len(bm.diffusion_model.blocks)} blocks, hidden 1152, random weights",
            "checkpoint_dtype": self.a.dtype, "checkpoint_bytes": path.stat().st_size,
            "compute_dtype": str(bm.manual_cast_dtype or bm.get_dtype()), "weight_dtype": str(bm.get_dtype()),
            "load_device": str(self.model.load_device),
            "write_s": round(t_write, 3), "load_s": round(time.perf_counter() - t0, 3),
        }

    def load_vae(self):
        torch = self.torch
        g = torch.Generator().manual_seed(7)
        if self.a.vae == "taesd":
            import random_models

            enc, dec = random_models.taesd_state_dicts(seed=0)
            sd = {f"taesd_encoder.{k}": v for k, v in enc.items()}
            sd.update({f"taesd_decoder.{k}": v for k, v in dec.items()})
            sd["vae_scale"], sd["vae_shift"] = torch.tensor(0.18215), torch.tensor(0.0)
            kind = "TAESD (random weights, ComfyUI's comfy.taesd modules)"
        else:
            from comfy.ldm.models.autoencoder import AutoencoderKL

            # comfy/sd.py's default SD1.x/SD2.x VAE config; AutoencoderKL gives the real key names and shapes.
            ddconfig = {"double_z": True, "z_channels": 4, "resolution": 256, "in_channels": 3, "out_ch": 3, "ch": 128,
                        "ch_mult": [1, 2, 4, 4], "num_res_blocks": 2, "attn_resolutions": [], "dropout": 0.0}
            shapes = {k: v.shape for k, v in AutoencoderKL(ddconfig=ddconfig, embed_dim=4).state_dict().items()}
            sd = {}
            for k, shape in shapes.items():
                if len(shape) > 1:
                    fan_in = max(1, int(torch.Size(shape[1:]).numel()))
                    sd[k] = torch.randn(shape, generator=g) / fan_in ** 0.5
                elif k.endswith("weight") and "norm" in k:
                    sd[k] = torch.ones(shape)
                else:
                    sd[k] = torch.zeros(shape)
            kind = "SD VAE architecture (AutoencoderKL, default ddconfig of comfy/sd.py), random weights"
        self.vae = self.comfy_sd.VAE(sd=sd)
        self.results["vae"] = {"kind": kind, "parameters": int(sum(v.numel() for v in sd.values())),
                               "dtype": str(self.vae.vae_dtype), "device": str(self.vae.device)}

    # -- operations --------------------------------------------------------------------------
    def latent(self):
        return self.torch.zeros(1, 4, self.H // 8, self.W // 8)

    def stock_sample(self, model, positive, negative, latent, seed, noise_mask=None):
        import comfy.sample as cs

        latent = cs.fix_empty_latent_channels(model, latent)
        noise = cs.prepare_noise(latent, seed)
        return cs.sample(model, noise, self.a.steps, self.a.cfg, self.a.sampler, self.a.scheduler, positive, negative,
                         latent, denoise=1.0, noise_mask=noise_mask, disable_pbar=True, seed=seed)

    # -- sections ------------------------------------------------------------------------------
    def run(self):
        a, h, torch = self.a, self.h, self.torch
        lo = h.layer_ops
        pos_bg, neg = self.cond(self.background_prompt), self.cond(self.negative_prompt)
        sched = dict(steps=a.steps, cfg=a.cfg, sampler_name=a.sampler, scheduler=a.scheduler)
        R = self.results

        # warm-up of the whole path (kernels, allocator, model and VAE loads)
        t0 = time.perf_counter()
        if a.warmup:
            self.vae.decode(self.stock_sample(self.model, pos_bg, neg, self.latent(), a.seed))
        R["warmup_s"] = round(time.perf_counter() - t0, 3)

        # 1. plain txt2img; a forward pre-hook counts the batch sizes the DiT sees (2 = cond and uncond batched)
        log(f"[1] txt2img: {a.size}px, {a.steps} steps {a.sampler}/{a.scheduler}, cfg {a.cfg}")
        batches: list[int] = []
        hook = self.model.model.diffusion_model.register_forward_pre_hook(lambda m, args: batches.append(int(args[0].shape[0])))
        try:
            R["txt2img"], image_latent = self.timed(lambda: self.stock_sample(self.model, pos_bg, neg, self.latent(), a.seed))
        finally:
            hook.remove()
        R["txt2img_output_finite"] = bool(torch.isfinite(image_latent).all())  # random weights: informative only
        R["cfg_batch_sizes_seen"] = sorted(set(batches))
        R["model_calls_per_run"] = len(batches) // (a.warmup + a.repeats)

        # 2. LayerMemory background, then AddLayer at each memory size
        log("[2] LayerMemory background and AddLayer (MQD + BCG)")
        R["start_memory"], background = self.timed(
            lambda: lo.start_memory(self.model, pos_bg, neg, self.W, self.H, a.seed, name="background",
                                    prompt=self.background_prompt, **sched), warmup=0)
        memories = {1: background}
        objects = self.scene
        add = {}
        top = max(a.layers_in_memory)
        for n in range(1, top + 1):
            obj = objects[n - 1]
            mask, pos = self.box_mask(obj["coordinates"]), self.cond(obj["local_prompt"])

            def do_add(mem=memories[n], mask=mask, pos=pos, n=n, obj=obj):
                return lo.add_layer(mem, self.model, pos, mask, seed=a.seed + n, name=obj["class"], prompt=obj["local_prompt"])

            if n in a.layers_in_memory:
                entry, memories[n + 1] = self.timed(do_add)
                entry["mqd_groups"] = len(h.mqd.MQDRun(*lo._routing(list(memories[n + 1].layers))).plan.segments)
                add[str(n)] = entry
                log(f"    AddLayer with {n} layer(s) in memory: {median(entry):.3f} s")
            else:
                memories[n + 1] = do_add()
        R["add_layer"] = add
        full = memories[top + 1]  # background + `top` objects

        # BCG alone: the BCGBlend node's patch on a clone + stock sampling, then VAE decode
        last = objects[top - 1]
        edit_mask, edit_pos = self.box_mask(last["coordinates"]), self.cond(last["local_prompt"])
        base = memories[top]
        bcg_node = h.nodes.NODE_CLASS_MAPPINGS["BCGBlend"]

        def bcg_edit(lap):
            patched = bcg_node.execute(self.model, base, edit_mask, 0, 0).result[0]
            samples = self.stock_sample(patched, edit_pos, neg, self.latent(), a.seed + top)
            lap("patch_and_sample")
            self.vae.decode(samples)
            lap("vae_decode")

        log("    BCG-alone edit (BCGBlend patch + KSampler + VAEDecode)")
        R["bcg_edit"] = self.timed_parts(bcg_edit)

        # 3. latent blending: VAE encode, SetLatentNoiseMask, stock sampling with the mask, VAE decode
        log("[3] latent-blending edit (VAEEncode + SetLatentNoiseMask + KSampler + VAEDecode)")
        picture = self.vae.decode(base.composite_latent()["samples"])  # the current picture, as an IMAGE
        noise_mask = edit_mask.reshape((-1, 1, edit_mask.shape[-2], edit_mask.shape[-1]))  # SetLatentNoiseMask

        def lb_edit(lap):
            encoded = self.vae.encode(picture[:, :, :, :3])
            lap("vae_encode")
            samples = self.stock_sample(self.model, edit_pos, neg, encoded, a.seed + top, noise_mask=noise_mask)
            lap("sample")
            self.vae.decode(samples)
            lap("vae_decode")

        R["lb_edit"] = self.timed_parts(lb_edit)

        # 4. DeleteLayer of a middle layer
        log("[4] DeleteLayer of a middle layer")
        n_layers = len(full.layers)
        middle = (n_layers) // 2
        candidates = [middle] + [i for i in range(1, n_layers - 1) if i != middle]
        index = next((i for i in candidates if bool(lo.deletion_region(full, i, 2).any())), None)
        if index is None:
            raise RuntimeError("every middle layer is hidden behind newer ones; pick another --scene")
        R["delete_layer"], _ = self.timed(lambda: lo.delete_layer(full, self.model, index, regenerate_fraction=0.4, seed=a.seed))
        R["delete_layer"].update({"layer_index": index, "layers_in_memory": n_layers, "regenerate_fraction": 0.4,
                                  "region_fraction": round(float(lo.deletion_region(full, index, 2).float().mean()), 4)})

        # 5. MQD forward vs stock forward
        log("[5] one DiT forward, CFG batch 2: stock vs MQD")
        R["forward"] = self.forward_section(full, neg)

        # 6. RAM / VRAM over a chain of added layers
        memories.clear()
        full = base = None  # only the background stays alive for the growth section
        gc.collect()
        log(f"[6] RAM / VRAM over {a.chain} added layers")
        R["memory_growth"] = self.memory_section(background)
        return R

    def forward_section(self, memory, neg) -> dict:
        torch, h, mm = self.torch, self.h, self.mm
        model = self.model
        bm = model.model
        dm = bm.diffusion_model
        device = model.load_device
        dtype = bm.manual_cast_dtype or bm.get_dtype()
        hl, wl = self.H // 8, self.W // 8
        g = torch.Generator().manual_seed(5)
        x = torch.randn(2, 4, hl, wl, generator=g).to(device, dtype)
        t = torch.full((2,), 500.0, device=device)
        pos = memory.top.positive.embedding
        ctx = torch.cat([pos, neg[0][0]]).to(device, dtype)  # [cond, uncond] as ComfyUI batches them
        micro = {"c_size": torch.tensor([[self.H, self.W]] * 2, dtype=dtype, device=device),
                 "c_ar": torch.tensor([[self.H / self.W]] * 2, dtype=dtype, device=device)}
        iters = self.a.forward_iters

        def time_forwards():
            for _ in range(max(1, self.a.warmup) if self.cuda else self.a.warmup):
                dm(x, t, ctx, **micro)
            self.sync()
            samples = []
            for _ in range(iters):
                if self.cuda:
                    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                    start.record()
                    dm(x, t, ctx, **micro)
                    end.record()
                    end.synchronize()
                    samples.append(start.elapsed_time(end) / 1000.0)
                else:
                    t0 = time.perf_counter()
                    dm(x, t, ctx, **micro)
                    samples.append(time.perf_counter() - t0)
            return summary(samples)

        mm.load_models_gpu([model])
        stock_attn = type(dm.blocks[0].cross_attn)
        stock = time_forwards()

        run = h.mqd.MQDRun(*h.layer_ops._routing(list(memory.layers)))
        clone = model.clone()
        h.mqd.install(clone, run)
        try:
            mm.load_models_gpu([clone])
            if not isinstance(dm.blocks[0].cross_attn, h.mqd.MQDCrossAttention):
                raise RuntimeError("the MQD object patches did not reach the loaded diffusion model")
            run.diffusion_model = dm
            run.cond_or_uncond = [0, 1]  # what the APPLY_MODEL wrapper sets from transformer_options
            mqd = time_forwards()
        finally:
            run.cond_or_uncond = None
            clone.unpatch_model(unpatch_weights=False)
        if type(dm.blocks[0].cross_attn) is not stock_attn:
            raise RuntimeError("the diffusion model was not restored to stock after the MQD timing")
        groups = [(int(o), int(e - s)) for o, s, e in run.plan.segments]
        return {"stock": stock, "mqd": mqd, "batch": 2, "groups": len(groups),
                "tokens_per_group": {str(o): n for o, n in groups}, "timer": "cuda events" if self.cuda else "perf_counter"}

    def memory_section(self, background) -> dict:
        torch, lo = self.torch, self.h.layer_ops
        rows = []

        def snapshot(memory, added, seconds=None, peak=None):
            gc.collect()
            row = {"layers_added": added, "layers_in_memory": len(memory.layers),
                   "rss_mb": self.proc.memory_info().rss / MB, "memory_nbytes": memory.nbytes()}
            if seconds is not None:
                row["add_s"] = round(seconds, 4)
            if self.cuda:
                row["vram_allocated_mb"] = torch.cuda.memory_allocated() / MB
                row["vram_max_allocated_mb"] = (peak if peak is not None else torch.cuda.max_memory_allocated()) / MB
            rows.append(row)

        memory = background
        snapshot(memory, 0)
        for i, obj in enumerate(self.chain_objects, start=1):
            if self.cuda:
                torch.cuda.reset_peak_memory_stats()
            self.sync()
            t0 = time.perf_counter()
            memory = lo.add_layer(memory, self.model, self.cond(obj["local_prompt"]), self.box_mask(obj["coordinates"]),
                                  seed=self.a.seed + 100 + i, name=obj["class"], prompt=obj["local_prompt"])
            self.sync()
            dt = time.perf_counter() - t0
            snapshot(memory, i, dt, torch.cuda.max_memory_allocated() if self.cuda else None)
            row = rows[-1]
            vram = f", VRAM {row['vram_allocated_mb']:.0f} MB (peak {row['vram_max_allocated_mb']:.0f})" if self.cuda else ""
            log(f"    layer {i}: RSS {row['rss_mb']:.0f} MB, memory {row['memory_nbytes'] / MB:.2f} MB{vram}")
        n = len(rows) - 1
        out = {"rows": rows, "layers_added": n,
               "nbytes_per_layer_mb": (rows[-1]["memory_nbytes"] - rows[0]["memory_nbytes"]) / n / MB,
               "nbytes_per_layer_mib": (rows[-1]["memory_nbytes"] - rows[0]["memory_nbytes"]) / n / 2 ** 20,
               "rss_per_layer_mb": (rows[-1]["rss_mb"] - rows[0]["rss_mb"]) / n,
               "expected_bytes_per_layer": expected_layer_bytes(background.top.trajectory.calls, self.H // 8, self.W // 8,
                                                                self.a.tokens),
               "expected_bytes_per_layer_1024px_20_steps": expected_layer_bytes(20, 128, 128, self.a.tokens)}
        five = memory.with_layers(memory.layers[:5])  # issue 5: "a saved memory of 5 layers"
        out["saved_bytes"] = {"layers": len(five.layers),
                              **{dtype: len(self.h.serialization.to_bytes(five, dtype))
                                 for dtype in self.h.serialization.TRAJECTORY_DTYPES}}
        if self.cuda:
            first, last = rows[1], rows[-1]
            base_alloc, base_peak = rows[0]["vram_allocated_mb"], first["vram_max_allocated_mb"]
            out["vram_allocated_growth_pct"] = 100.0 * (last["vram_allocated_mb"] - base_alloc) / base_alloc
            out["vram_peak_growth_pct"] = 100.0 * (last["vram_max_allocated_mb"] - base_peak) / base_peak
        return out


def expected_layer_bytes(calls: int, h: int, w: int, tokens: int) -> int:
    """What one added layer should hold: the model input per model call, the final latent, its latent mask,
    token mask and prompt embedding, and per-call sigma/step (the negative prompt is shared)."""
    return (calls + 1) * 4 * h * w * 4 + h * w * 4 + (h // 2) * (w // 2) + tokens * 4096 * 4 + calls * 16


# ----------------------------------------------------------------------------------------------
# report


def ratios(R: dict, layers: list[int]) -> dict:
    txt = median(R["txt2img"])
    top = str(max(layers))
    add_top = median(R["add_layer"][top])
    out = {
        "addlayer5_over_txt2img": add_top / txt,
        "bcg_edit_over_lb_edit": median(R["bcg_edit"]) / median(R["lb_edit"]),
        "bcg_sample_over_lb_sample": median(R["bcg_edit"]["parts"]["patch_and_sample"]) / median(R["lb_edit"]["parts"]["sample"]),
        "delete_over_addlayer5": median(R["delete_layer"]) / add_top,
        "mqd_forward_overhead_pct": 100.0 * (median(R["forward"]["mqd"]) / median(R["forward"]["stock"]) - 1.0),
        "ram_mb_per_layer": R["memory_growth"]["nbytes_per_layer_mb"],
        "rss_mb_per_layer": R["memory_growth"]["rss_per_layer_mb"],
        "vram_growth_pct": R["memory_growth"].get("vram_peak_growth_pct"),
        "vram_allocated_growth_pct": R["memory_growth"].get("vram_allocated_growth_pct"),
    }
    for n in layers:
        out[f"addlayer{n}_over_txt2img"] = median(R["add_layer"][str(n)]) / txt
    out["addlayer_top_layers_in_memory"] = int(top)
    return out


def judge(ratio: dict, gpu_config: bool) -> dict:
    verdicts = {}
    for key, (op, limit, text) in TARGETS.items():
        v = ratio.get(key)
        met = None
        if v is not None and gpu_config:
            met = v <= limit if op == "<=" else v < limit
        verdicts[key] = {"target": f"{op} {limit}", "description": text, "value": v, "met": met}
    return verdicts


def table(result: dict) -> str:
    R, r, c = result["measurements"], result["ratios"], result["config"]
    env = result["environment"]
    lines = [f"device: {env['device']}   torch {env['torch']}   "
             f"ComfyUI {env['comfyui']['version']} ({env['comfyui']['commit'] or 'no git'})   pack {env['pack_commit']}",
             f"config: {c['size']}px, {c['steps']} steps {c['sampler']}/{c['scheduler']}, cfg {c['cfg']}, depth {c['depth']}, "
             f"{c['checkpoint_dtype']} weights, {c['tokens']} tokens/prompt, {c['repeats']} repeats (medians), "
             f"CFG batch seen {R['cfg_batch_sizes_seen']}", ""]
    rows = [("txt2img (comfy.sample.sample)", R["txt2img"]), ("LayerMemory background (start_memory)", R["start_memory"])]
    for n, e in R["add_layer"].items():
        rows.append((f"AddLayer, {n} layer(s) in memory ({e['mqd_groups']} MQD groups)", e))
    bp, lp = R["bcg_edit"]["parts"], R["lb_edit"]["parts"]
    dl = R["delete_layer"]
    rows += [("BCG-alone edit: patch + sample + VAE decode", R["bcg_edit"]),
             ("  BCGBlend patch + sample", bp["patch_and_sample"]), ("  VAE decode", bp["vae_decode"]),
             ("latent-blending edit: encode + sample + decode", R["lb_edit"]), ("  VAE encode", lp["vae_encode"]),
             ("  sample with noise_mask", lp["sample"]), ("  VAE decode", lp["vae_decode"]),
             (f"DeleteLayer (layer {dl['layer_index']} of {dl['layers_in_memory']}, fraction {dl['regenerate_fraction']})", dl),
             ("DiT forward, CFG batch 2, stock", R["forward"]["stock"]),
             (f"DiT forward, CFG batch 2, MQD {R['forward']['groups']} groups", R["forward"]["mqd"])]
    lines.append(f"{'measurement':58s} {'median':>10s} {'min':>10s} {'max':>10s} runs")
    for name, e in rows:
        ms = [f"{e[k] * 1e3:8.1f}ms" for k in ("median_s", "min_s", "max_s")]
        lines.append(f"{name:58s} {' '.join(ms)} {e['runs']:4d}")
    lines.append("")
    fmt = {"addlayer5_over_txt2img": ("AddLayer({}) / txt2img".format(r["addlayer_top_layers_in_memory"]), "{:.3f}x"),
           "bcg_edit_over_lb_edit": ("BCG-alone edit / latent-blending edit", "{:.3f}x"),
           "delete_over_addlayer5": ("DeleteLayer / AddLayer({})".format(r["addlayer_top_layers_in_memory"]), "{:.3f}x"),
           "ram_mb_per_layer": (f"RAM per layer (LayerMemory.nbytes) at {c['size']}px", "{:.2f} MB"),
           "vram_growth_pct": (f"VRAM growth over {R['memory_growth']['layers_added']} layers (peak per add)", "{:.2f}%")}
    lines.append(f"{'ratio':58s} {'value':>12s}  target")
    for key, v in result["targets"].items():
        name, f = fmt[key]
        value = "n/a" if v["value"] is None else f.format(v["value"])
        why = "no CUDA" if key == "vram_growth_pct" and v["value"] is None else "not the GPU configuration"
        verdict = {True: "MET", False: "MISSED", None: f"(not judged: {why})"}[v["met"]]
        lines.append(f"{name:58s} {value:>12s}  {v['target']:8s} {verdict}")
    lines.append(f"{'MQD forward overhead':58s} {r['mqd_forward_overhead_pct']:+11.1f}%  (reported)")
    lines.append(f"{'BCG sample / latent-blending sample (no VAE)':58s} {r['bcg_sample_over_lb_sample']:11.3f}x  (reported)")
    lines.append(f"{'process RSS per layer':58s} {r['rss_mb_per_layer']:9.2f} MB  (reported)")
    saved = R["memory_growth"]["saved_bytes"]
    lines.append(f"{'saved memory of ' + str(saved['layers']) + ' layers, float32 / float16 trajectories':58s} "
                 f"{saved['float32'] / 2 ** 20:8.2f} MiB / {saved['float16'] / 2 ** 20:.2f} MiB  (reported)")
    if r.get("vram_allocated_growth_pct") is not None:
        lines.append(f"{'VRAM allocated after the adds, growth':58s} {r['vram_allocated_growth_pct']:+10.2f}%  (reported)")
    return "\n".join(lines)


def log(msg: str) -> None:
    print(msg, flush=True)


# ----------------------------------------------------------------------------------------------


def main(argv=None) -> int:
    args = parse_args(argv)
    sys.path.insert(0, str(TOOLS))
    import comfy_host as host_support  # tools/comfy_host.py

    comfy_root = find_comfyui(args)
    scenes_path = find_scenes(args)

    workdir = Path(tempfile.mkdtemp(prefix="layermem_bench_"))
    for sub in ("models", "custom_nodes", "input", "output"):
        (workdir / sub).mkdir()
    t_boot = time.perf_counter()
    h = host_support.boot(comfy_root, workdir / "models", workdir / "custom_nodes", cpu=(args.device == "cpu"))
    import comfy.model_management as mm
    import comfy.utils
    import torch

    comfy.utils.set_progress_bar_enabled(False)
    if not args.verbose:
        logging.getLogger().setLevel(logging.WARNING)
    if args.device == "cuda" and (not torch.cuda.is_available() or mm.get_torch_device().type != "cuda"):
        raise SystemExit("--device cuda but ComfyUI's torch device is " + str(mm.get_torch_device()))
    boot_s = time.perf_counter() - t_boot

    bench = Bench(args, h, torch, workdir)
    bench.load_scenes(scenes_path)
    if args.device == "cuda":
        device_name = torch.cuda.get_device_name(0)
    else:
        device_name = f"CPU {platform.processor() or platform.machine()} ({torch.get_num_threads()} torch threads)"
    log(f"LayerMemory benchmark on {device_name}; ComfyUI at {comfy_root}; scene {bench.scene_id}")
    bench.load_pixart()
    bench.load_vae()
    wall = time.perf_counter()
    with torch.inference_mode():  # as ComfyUI's executor runs every node
        measurements = bench.run()
    # the targets are judged only for issue 4's configuration
    gpu_config = (args.device == "cuda" and args.size == 1024 and args.steps == 20 and args.depth == 28
                  and args.sampler == "dpmpp_2m" and args.cfg == 4.5 and args.dtype == "fp16" and args.vae == "sd"
                  and max(args.layers_in_memory) == 5 and args.chain == 10 and args.repeats >= 3)
    r = ratios(measurements, args.layers_in_memory)
    pack_commit = git_commit(REPO) or args.pack_commit or "unknown"
    result = {
        "benchmark": "layer memory issue 4: edit cost vs txt2img and latent blending",
        "kind": "gpu" if gpu_config else ("cpu-smoke" if args.cpu_smoke else f"custom-{args.device}"),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "environment": {
            "device": device_name, "torch": torch.__version__, "cuda": torch.version.cuda if args.device == "cuda" else None,
            "python": platform.python_version(), "comfyui": comfyui_version(comfy_root), "pack_commit": pack_commit,
            "boot_s": round(boot_s, 2), "torch_threads": torch.get_num_threads(),
        },
        "config": {"size": args.size, "steps": args.steps, "depth": args.depth, "cfg": args.cfg, "sampler": args.sampler,
                   "scheduler": args.scheduler, "batch": 1, "tokens": args.tokens, "checkpoint_dtype": args.dtype,
                   "layers_in_memory": args.layers_in_memory, "chain": args.chain, "repeats": args.repeats,
                   "warmup": args.warmup, "forward_iters": args.forward_iters, "vae": args.vae, "seed": args.seed,
                   "scene_file": scenes_path.name, "scene": bench.scene_id,
                   "scene_objects": [o["class"] for o in bench.scene],
                   "scene_groups": bench.groups(bench.scene[:max(args.layers_in_memory)]),
                   "chain_objects": [o["class"] for o in bench.chain_objects]},
        "model": bench.results.get("model"), "vae": bench.results.get("vae"),
        "measurements": measurements, "ratios": r, "targets": judge(r, gpu_config),
        "notes": [] if gpu_config else ["Not the GPU configuration of issue 4: the ratios are not the GPU targets."],
        "bench_wall_s": round(time.perf_counter() - wall, 2),
    }
    out = Path(args.out) if args.out else REPO / "bench" / "results" / f"{slug(device_name)}-{_dt.date.today().isoformat()}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(result, indent=2))
    tmp.replace(out)
    print()
    print(table(result))
    print(f"\nJSON: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
