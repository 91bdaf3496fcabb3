"""Records every cross-attention call of one routed model call, for the shared MQD invariant.

The routed model is built the pack's own way (the family's `attention_run` over a memory's layers,
its `install` on a clone) and called once through ComfyUI's `apply_model` with a CFG
batch [negative, positive], so the pack's wrappers and patches run as they do while sampling.
Each call keeps its input, its routed output and the stock module, so a test can compare every
token group with the stock cross-attention for that group's own prompt, at every level.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

THRESHOLD = 0.5  # the documented ownership rule: area-pooled mask >= 0.5, newest first


@dataclass
class AttentionCall:
    hw: tuple[int, int]  # the level's token grid
    x: torch.Tensor  # the call's input rows [negative, positive]
    out: torch.Tensor  # the routed output
    stock: object  # f(x_rows, prompt) -> the block's stock cross-attention output


def expected_owners(latent_masks: list[torch.Tensor], hw: tuple[int, int]) -> torch.Tensor:
    """Owner per token of an (h, w) grid, computed from the rule alone (not the pack's code)."""
    owners = torch.zeros(hw[0] * hw[1], dtype=torch.long)
    for i, mask in enumerate(latent_masks, start=1):
        pooled = F.interpolate(mask[None, None].float(), size=hw, mode="area")[0, 0]
        owners[pooled.reshape(-1) >= THRESHOLD] = i
    return owners


def repeat_to(t: torch.Tensor, length: int) -> torch.Tensor:
    """A prompt repeated along its tokens, as ComfyUI batches prompts of other lengths."""
    return t.repeat(1, length // t.shape[1], 1)


def _context(negative: torch.Tensor, positive: torch.Tensor) -> torch.Tensor:
    length = math.lcm(negative.shape[1], positive.shape[1])
    return torch.cat([repeat_to(negative, length), repeat_to(positive, length)])


def _call(kit, clone, context: torch.Tensor, seed: int) -> None:
    """One model call of the clone, as the sampler makes it (wrappers and patches included)."""
    g = torch.Generator().manual_seed(seed)
    latent = kit.size // 8
    x = torch.randn(2, 4, latent, latent, generator=g)
    options = dict(clone.model_options.get("transformer_options", {}), cond_or_uncond=[1, 0])
    options["wrappers"] = clone.wrappers
    extra = {"y": torch.randn(2, 2816, generator=g)} if kit.family == "sdxl" else {}
    clone.model.apply_model(x, torch.full((2,), 2.0), c_crossattn=context,
                            transformer_options=options, **extra)


def _pixart_calls(host, kit, clone, context, seed) -> list[AttentionCall]:
    dm = kit.model.model.diffusion_model
    stocks = [block.cross_attn for block in dm.blocks]
    grid = (kit.size // 16, kit.size // 16)
    calls: list[AttentionCall] = []

    def stock_fn(module):
        def run(x, prompt):
            return module(x, dm.y_embedder(prompt[:, None], False)[:, 0], None)
        return run

    def record(module, args, out):
        stock = stock_fn(stocks[len(calls)])
        calls.append(AttentionCall(grid, args[0].clone(), out.clone(), stock))

    clone.patch_model(load_weights=False)
    hooks = [block.cross_attn.register_forward_hook(record) for block in dm.blocks]
    try:
        routed = host.pixart_mqd.MQDCrossAttention
        assert all(type(block.cross_attn) is routed for block in dm.blocks)
        _call(kit, clone, context, seed)
    finally:
        for hook in hooks:
            hook.remove()
        clone.unpatch_model(unpatch_weights=False)
    return calls


def _unet_calls(host, kit, clone, context, seed) -> list[AttentionCall]:

    paths = dict(host.unet_mqd.attn2_blocks(kit.model.model.diffusion_model))
    inputs: list = []
    calls: list[AttentionCall] = []

    def take_input(n, context_attn2, value, extra_options):
        inputs.append((n.clone(), dict(extra_options)))
        return n, context_attn2, value

    def take_output(n, extra_options):
        x, opts = inputs[len(calls)]
        attn2 = kit.model.get_model_object(
            paths[(opts["block"][0], opts["block"][1], opts["block_index"])])
        hw = tuple(int(v) for v in opts["activations_shape"][-2:])
        calls.append(AttentionCall(hw, x, n.clone(),
                                   lambda rows, prompt, a=attn2: a(rows, context=prompt)))
        return n

    clone.set_model_attn2_patch(take_input)
    clone.set_model_attn2_output_patch(take_output)
    _call(kit, clone, context, seed)
    return calls


@torch.no_grad()
def routed_calls(host, kit, layers, negative: torch.Tensor, seed: int = 1) -> list[AttentionCall]:
    """Every cross-attention call of one [negative, newest layer's prompt] model call with MQD
    routing `layers` (background first) installed the pack's way."""
    family = kit.family
    run = host.families.get(family).attention_run(layers)
    clone = kit.model.clone()
    run.install(clone)
    context = _context(negative, layers[-1].positive.embedding)
    if family == "pixart":
        return _pixart_calls(host, kit, clone, context, seed)
    return _unet_calls(host, kit, clone, context, seed)
