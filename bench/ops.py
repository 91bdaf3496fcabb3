"""The operations the benchmark times and counts, each a closure with its inputs bound.

txt2img and the latent-blending edit are what ComfyUI users run today (comfy.sample.sample);
AddLayer, the BCG edit and DeleteLayer are the pack's. Memories with N layers are stacked on a
sampled background without sampling each layer: what an edit costs depends on the number of
layers, their masks and prompts, never on the values of the stored trajectories.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from . import inputs


@dataclass
class Workload:
    """Everything the operations share: host, model, VAE, schedule, scene and model family."""

    h: object  # the booted host (tools/comfy_host.boot)
    model: object
    vae: object
    size: int
    steps: int
    cfg: float
    sampler: str
    scheduler: str
    tokens: int
    seed: int
    scene: inputs.Scene
    family: str = "pixart"  # or "sdxl": what the prompts look like
    memories: dict[int, object] = field(default_factory=dict)

    def cond(self, text: str) -> list:
        return inputs.cond(text, self.tokens, self.size, self.family)

    def mask(self, obj: dict) -> torch.Tensor:
        return inputs.box_mask(obj["coordinates"], self.size)

    def latent(self) -> torch.Tensor:
        return torch.zeros(1, 4, self.size // 8, self.size // 8)

    @property
    def negative(self) -> list:
        return self.cond(inputs.NEGATIVE_PROMPT)

    def stock_sample(self, model, positive, latent, seed, noise_mask=None):
        """What KSampler runs (comfy.sample.sample), on the memory's schedule."""
        import comfy.sample as cs

        latent = cs.fix_empty_latent_channels(model, latent)
        noise = cs.prepare_noise(latent, seed)
        return cs.sample(
            model,
            noise,
            self.steps,
            self.cfg,
            self.sampler,
            self.scheduler,
            positive,
            self.negative,
            latent,
            denoise=1.0,
            noise_mask=noise_mask,
            disable_pbar=True,
            seed=seed,
        )


def start(work: Workload):
    """The sampled background memory (layer 0)."""
    return work.h.layer_ops.start_memory(
        work.model,
        work.cond(work.scene.background_prompt),
        work.negative,
        work.size,
        work.size,
        work.seed,
        steps=work.steps,
        cfg=work.cfg,
        sampler_name=work.sampler,
        scheduler=work.scheduler,
        name="background",
        prompt=work.scene.background_prompt,
    )


def stacked(work: Workload, background, n_layers: int):
    """A memory of `n_layers` (background included): the scene's objects over the background."""
    h = work.h
    memory = background
    for obj in work.scene.objects[: n_layers - 1]:
        latent_mask = h.masks.prepare_layer_mask(work.mask(obj), memory.latent_hw, 0, 0)
        layer = h.memory.Layer(
            name=obj["class"],
            positive=h.conditioning.Conditioning.from_comfy(
                work.cond(obj["local_prompt"]), "positive", h.families.get(work.family)
            ),
            negative=memory.top.negative,
            seed=work.seed,
            latent_mask=latent_mask,
            token_mask=h.masks.token_mask(latent_mask),
            trajectory=memory.top.trajectory,
            prompt=obj["local_prompt"],
        )
        memory = memory.with_layer(layer)
    return memory


def add_layer(work: Workload, memory) -> Callable[[], object]:
    """AddLayer of the scene's next object onto `memory` (MQD + BCG)."""
    obj = work.scene.objects[len(memory.layers) - 1]
    pos, mask = work.cond(obj["local_prompt"]), work.mask(obj)
    return lambda: work.h.layer_ops.add_layer(
        memory, work.model, pos, mask, seed=work.seed + len(memory.layers), name=obj["class"]
    )


def delete_layer(work: Workload, memory) -> tuple[Callable[[], object], dict]:
    """DeleteLayer of a visible middle layer (regenerate_fraction 0.4); (the op, its details)."""
    lo = work.h.layer_ops
    n = len(memory.layers)
    candidates = [n // 2] + [i for i in range(1, n - 1) if i != n // 2]
    index = next((i for i in candidates if bool(lo.deletion_region(memory, i, 2).any())), None)
    if index is None:
        raise RuntimeError("every middle layer is hidden behind newer ones; pick another scene")
    region = float(lo.deletion_region(memory, index, 2).float().mean())
    details = {
        "layer_index": index,
        "layers_in_memory": n,
        "regenerate_fraction": 0.4,
        "region_fraction": round(region, 4),
    }
    return (
        lambda: lo.delete_layer(memory, work.model, index, regenerate_fraction=0.4, seed=work.seed)
    ), details


def txt2img(work: Workload) -> Callable[[], object]:
    pos = work.cond(work.scene.background_prompt)
    return lambda: work.stock_sample(work.model, pos, work.latent(), work.seed)


def bcg_edit(work: Workload, memory) -> Callable[[Callable[[str], None]], None]:
    """The BCGBlend node's patch + stock sampling + VAE decode; lap(name) after each part."""
    node = work.h.nodes.NODE_CLASS_MAPPINGS["LayerMem_BCGBlend"]
    obj = work.scene.objects[len(memory.layers) - 1]
    pos, mask = work.cond(obj["local_prompt"]), work.mask(obj)

    def run(lap):
        patched = node.execute(work.model, memory, mask, 0, 0).result[0]
        samples = work.stock_sample(patched, pos, work.latent(), work.seed + 1)
        lap("patch_and_sample")
        work.vae.decode(samples)
        lap("vae_decode")

    return run


def lb_edit(work: Workload, memory) -> Callable[[Callable[[str], None]], None]:
    """What users do today: VAE encode, SetLatentNoiseMask, sample, VAE decode."""
    obj = work.scene.objects[len(memory.layers) - 1]
    pos, mask = work.cond(obj["local_prompt"]), work.mask(obj)
    picture = work.vae.decode(memory.composite_latent()["samples"])
    noise_mask = mask.reshape((-1, 1, mask.shape[-2], mask.shape[-1]))

    def run(lap):
        encoded = work.vae.encode(picture[:, :, :, :3])
        lap("vae_encode")
        samples = work.stock_sample(work.model, pos, encoded, work.seed + 1, noise_mask=noise_mask)
        lap("sample")
        work.vae.decode(samples)
        lap("vae_decode")

    return run
