"""Records every cross-attention call of one routed model call, for the shared MQD invariant
(and, for joint attention (FLUX), every routed joint attention call: `joint_calls`).

The routed model is built the pack's own way (the family's `attention_run` over a memory's layers,
its `install` on a clone) and called once through ComfyUI's `apply_model` with a CFG
batch [negative, positive], so the pack's wrappers and patches run as they do while sampling.
Each call keeps its input, its routed output and the stock module, so a test can compare every
token group with the stock cross-attention for that group's own prompt, at every level.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
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


# --- Joint attention (FLUX): one sequence [text..., image...] per block --------------------


@dataclass
class JointCall:
    """One routed joint attention call: head-major inputs, the bias and the output."""

    q: torch.Tensor  # [B, heads, S, d]
    k: torch.Tensor
    v: torch.Tensor
    bias: torch.Tensor  # [B, 1, S, S] additive
    out: torch.Tensor  # [B, heads, S, d]

    def weights(self) -> torch.Tensor:
        """The attention weights the call applied, [B, heads, S, S], in float64."""
        scores = self.q.double() @ self.k.double().transpose(-1, -2) / self.q.shape[-1] ** 0.5
        return torch.softmax(scores + self.bias.double(), dim=-1)


def joint_allowed(text_lengths: list[int], token_owner: torch.Tensor,
                  text: int) -> torch.Tensor:
    """[S, S] what the rule lets a conditional row's query see (the rule alone, not the pack's
    code): text of prompt i sees itself and the image tokens i owns; an image token sees its
    owner's text and every image token; padding sees only itself. Prompts side by side in
    `text_lengths` order (owners 0..), padded to `text`."""
    own = torch.full((text,), -1, dtype=torch.long)
    own[:sum(text_lengths)] = torch.repeat_interleave(torch.arange(len(text_lengths)),
                                                      torch.tensor(text_lengths))
    n = token_owner.numel()
    s = text + n
    allowed = torch.zeros(s, s, dtype=torch.bool)
    for i in range(text):
        if own[i] >= 0:
            allowed[i, :text] = own == own[i]
            allowed[i, text:] = token_owner == own[i]
        allowed[i, i] = True
    for j in range(n):
        allowed[text + j, :text] = own == token_owner[j]
        allowed[text + j, text:] = True
    return allowed


def _flux_inputs(kit, context: torch.Tensor, seed: int) -> tuple[torch.Tensor, dict]:
    g = torch.Generator().manual_seed(seed)
    latent = kit.size // 8
    x = torch.randn(2, 16, latent, latent, generator=g)
    if getattr(kit, "family", "flux") == "qwen_image":  # 5-D Wan 2.1 latents, no pooled vector
        return x[:, :, None], {}
    if getattr(kit, "family", "flux") == "sd3":  # pooled CLIP-L + CLIP-G, no guidance
        return x, {"y": torch.randn(2, 2048, generator=g)}
    if getattr(kit, "family", "flux") == "chroma":  # no pooled vector; ComfyUI's guidance 0
        return x, {"guidance": torch.zeros(2)}
    extra = {"y": torch.randn(2, 768, generator=g), "guidance": torch.full((2,), 3.5)}
    return x, extra


@torch.no_grad()
def flux_call(kit, model, context: torch.Tensor, seed: int = 1,
              options: dict | None = None) -> torch.Tensor:
    """One [negative, positive] model call of `model` (cond_or_uncond [1, 0]): its output."""
    x, extra = _flux_inputs(kit, context, seed)
    transformer_options = dict(model.model_options.get("transformer_options", {}),
                               cond_or_uncond=[1, 0], **(options or {}))
    transformer_options["wrappers"] = model.wrappers
    if model.object_patches:  # Qwen-Image's text-id patch: on the module while the call runs
        model.patch_model(load_weights=False)
    try:
        return model.model.apply_model(x, torch.full((2,), 0.7), c_crossattn=context,
                                       transformer_options=transformer_options, **extra)
    finally:
        if model.object_patches:
            model.unpatch_model(unpatch_weights=False)


@torch.no_grad()
def joint_calls(host, kit, layers, negative: torch.Tensor,
                seed: int = 1) -> tuple[list[JointCall], torch.Tensor]:
    """Every routed joint attention call of one [negative, newest layer's prompt] model call
    with MQD routing `layers` installed the pack's way, and the call's output."""
    run = host.families.get(kit.family).attention_run(layers)
    clone = kit.model.clone()
    run.install(clone)
    calls: list[JointCall] = []
    # Qwen-Image's run is SD3's delivery: its routed calls go through sd3_mqd.sdpa
    joint_sd3 = getattr(kit, "family", "flux") in ("sd3", "qwen_image")
    mqd = host.sd3_mqd if joint_sd3 else host.flux_mqd
    original = mqd.sdpa

    def record(q, k, v, bias):
        out = original(q, k, v, bias)
        calls.append(JointCall(q.clone(), k.clone(), v.clone(), bias.clone(), out.clone()))
        return out

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(mqd, "sdpa", record)
        out = flux_call(kit, clone, _context(negative, layers[-1].positive.embedding), seed)
    return calls, out


def assert_joint_routing(host, kit, layers, token_hw: tuple[int, int], blocks: int) -> None:
    """One model call with `layers` routed: every one of the `blocks` joint calls gives the
    conditional row's forbidden keys exactly zero weight and every allowed key some; no NaN."""
    calls, out = joint_calls(host, kit, layers, layers[-1].negative.embedding)
    assert len(calls) == blocks
    assert torch.isfinite(out).all()
    owners = expected_owners([layer.latent_mask for layer in layers[1:]], token_hw)
    lengths = [int(layer.positive.embedding.shape[1]) for layer in layers]
    for call in calls:
        allowed = joint_allowed(lengths, owners, call.q.shape[2] - owners.numel())
        cond = call.weights()[1]  # cond_or_uncond [1, 0]: row 1 is the positive
        assert torch.equal(cond[:, ~allowed], torch.zeros_like(cond[:, ~allowed]))
        assert (cond[:, allowed] > 0).all()
