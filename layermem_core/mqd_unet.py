"""Multi-Query Disentangled cross-attention for SD 1.5 / SDXL UNets (attn2 of every block).

Installed through ComfyUI's own per-clone mechanism, `ModelPatcher.set_model_attn2_replace`,
one patch per transformer block that has a cross-attention. ComfyUI projects q (and k/v of
the batch's own context) with the block's attn2 and hands them to the patch with
transformer_options, which carry `cond_or_uncond` and `activations_shape` (the level's
[b, c, h, w]); the patch's output goes through the block's own `to_out`.

Ownership at each resolution level: every layer's latent mask is area-pooled to the level's
(h, w) (an average over the factor x factor latent pixels: 1, 2, 4, 8) and thresholded at
`masks.TOKEN_THRESHOLD` (0.5, PixArt's rule at its 2x2 token grid). Newest first: the newest
layer owns its tokens, each older layer keeps what no newer mask covers, the background owns
the rest. The map is built lazily once per (h, w) and run.

One attention call per block for the whole CFG batch: conditional rows see the keys of every
layer's prompt concatenated (projected once per run per block with the block's own
to_k / to_v, so LoRA weight patches apply) under an additive bias that is 0 on the owner's
keys and -inf elsewhere; unconditional rows see their own (negative) keys, padded with -inf.
The call is torch's scaled_dot_product_attention whatever attention backend the user chose:
sage attention ignores masks and flash refuses them, so routing through them would be wrong.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .masks import TOKEN_THRESHOLD

COND = 0  # ComfyUI's marker for a conditional chunk in cond_or_uncond


def owner_map(latent_masks: list[torch.Tensor], hw: tuple[int, int]) -> torch.Tensor:
    """Owner per token of an (h, w) level, row-major; 0 = background, i = latent_masks[i - 1].

    `latent_masks` are the layers above the background, oldest first, on the latent grid.
    """
    h, w = hw
    owners = torch.zeros(h * w, dtype=torch.long)
    for i, mask in enumerate(latent_masks, start=1):
        pooled = F.interpolate(mask[None, None].float(), size=(h, w), mode="area")[0, 0]
        owners[(pooled >= TOKEN_THRESHOLD).reshape(-1)] = i
    return owners


class UNetMQDRun:
    """State of one sampling run: masks, prompts, and per-run caches (owner bias, prompt K/V)."""

    def __init__(self, latent_masks: list[torch.Tensor], prompts: list[torch.Tensor]):
        if len(prompts) != len(latent_masks) + 1:
            raise ValueError("one prompt per layer: the background's first, then one per mask")
        self.latent_masks = [m.detach().to("cpu", torch.float32) for m in latent_masks]
        self.latent_hw = tuple(latent_masks[0].shape) if latent_masks else (0, 0)
        self.prompts = prompts  # [1, L_i, D] per owner; background first
        lengths = [int(p.shape[1]) for p in prompts]
        self.key_owner = torch.repeat_interleave(torch.arange(len(prompts)), torch.tensor(lengths))
        self._bias: dict[tuple, torch.Tensor] = {}
        self._kv: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}

    @property
    def total_keys(self) -> int:
        return int(self.key_owner.numel())

    def owner_bias(self, hw: tuple[int, int], device, dtype) -> torch.Tensor:
        """[h*w, L_total]: 0 where the key belongs to the token's owner, -inf elsewhere."""
        key = (hw, str(device), dtype)
        bias = self._bias.get(key)
        if bias is None:
            owners = owner_map(self.latent_masks, hw)
            allowed = owners[:, None] == self.key_owner[None, :]
            bias = (
                torch.zeros(allowed.shape, dtype=dtype)
                .masked_fill(~allowed, float("-inf"))
                .to(device)
            )
            self._bias[key] = bias
        return bias

    def batch_bias(
        self, hw: tuple[int, int], rows: tuple[bool, ...], own_keys: int, length: int, device, dtype
    ) -> torch.Tensor:
        """[B, 1, N, length] for one batch layout: conditional rows route by owner over the
        prompts' keys, unconditional rows see their own `own_keys` keys; padding is -inf."""
        key = (hw, rows, own_keys, length, str(device), dtype)
        bias = self._bias.get(key)
        if bias is None:
            routed = F.pad(
                self.owner_bias(hw, device, dtype),
                (0, length - self.total_keys),
                value=float("-inf"),
            )
            own = torch.zeros(length, dtype=dtype, device=device)
            own = own.masked_fill(torch.arange(length, device=device) >= own_keys, float("-inf"))
            bias = torch.stack([routed if c else own.expand_as(routed) for c in rows])[:, None]
            self._bias[key] = bias
        return bias

    def prompt_kv(self, block: tuple, attn2, device, dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """Every layer's prompt through this block's to_k / to_v, concatenated: [1, L, inner]."""
        key = (block, str(device), dtype)
        kv = self._kv.get(key)
        if kv is None:
            context = torch.cat([p.to(device=device, dtype=dtype) for p in self.prompts], dim=1)
            kv = (attn2.to_k(context), attn2.to_v(context))
            self._kv[key] = kv
        return kv


def conditional_rows(cond_or_uncond, batch: int) -> list[bool] | None:
    """Per batch row: conditional? None when the batch does not split into ComfyUI's chunks."""
    marks = list(cond_or_uncond or [])
    if not marks or batch % len(marks):
        return None
    per = batch // len(marks)
    return [m == COND for m in marks for _ in range(per)]


def _level_hw(extra_options: dict, tokens: int, latent_hw: tuple[int, int]) -> tuple[int, int]:
    """The level's grid: from activations_shape, else the latent grid downsampled until it fits."""
    shape = extra_options.get("activations_shape")
    if shape is not None and int(shape[-2]) * int(shape[-1]) == tokens:
        return int(shape[-2]), int(shape[-1])
    h, w = latent_hw
    for _ in range(6):  # the UNet's stride-2 convolutions round up: 13 -> 7 -> 4
        if h * w == tokens:
            return h, w
        h, w = (h + 1) // 2, (w + 1) // 2
    raise RuntimeError(
        f"cannot tell the attention level's grid for {tokens} tokens (activations_shape {shape})"
    )


def _pad_keys(t: torch.Tensor, length: int) -> torch.Tensor:
    return F.pad(t, (0, 0, 0, length - t.shape[1])) if t.shape[1] < length else t


class RoutedAttn2:
    """attn2 replace patch of one transformer block: (q, k, v, extra_options) -> attention."""

    def __init__(self, run: UNetMQDRun, block: tuple, attn2):
        self.run = run
        self.block = block  # (block name, number, transformer index), the patch key
        self.attn2 = attn2  # the block's CrossAttention (its to_k / to_v project the prompts)

    def __call__(self, q, k, v, extra_options):
        heads = int(extra_options["n_heads"])
        rows = conditional_rows(extra_options.get("cond_or_uncond"), q.shape[0])
        if not rows or not any(rows):
            return _sdpa(q, k, v, heads, None, extra_options)
        kp, vp = self.run.prompt_kv(self.block, self.attn2, q.device, q.dtype)
        hw = _level_hw(extra_options, q.shape[1], self.run.latent_hw)
        length = max(kp.shape[1], k.shape[1])
        bias = self.run.batch_bias(hw, tuple(rows), int(k.shape[1]), length, q.device, q.dtype)
        keys = [
            _pad_keys(kp, length) if c else _pad_keys(k[b : b + 1], length)
            for b, c in enumerate(rows)
        ]
        values = [
            _pad_keys(vp, length) if c else _pad_keys(v[b : b + 1], length)
            for b, c in enumerate(rows)
        ]
        return _sdpa(q, torch.cat(keys), torch.cat(values), heads, bias, extra_options)


def _sdpa(q, k, v, heads: int, bias, extra_options: dict) -> torch.Tensor:
    """torch SDPA on [B, N, heads*d] tensors (fp32 when the model asks for fp32 attention)."""
    b, n, inner = q.shape
    d = inner // heads
    dtype = q.dtype
    if extra_options.get("attn_precision") == torch.float32 and dtype != torch.float32:
        q, k, v = q.float(), k.float(), v.float()
        bias = bias.float() if bias is not None else None
    q, k, v = (t.reshape(t.shape[0], -1, heads, d).transpose(1, 2) for t in (q, k, v))
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
    return out.transpose(1, 2).reshape(b, n, inner).to(dtype)


def attn2_blocks(diffusion_model) -> list[tuple[tuple[str, int, int], str]]:
    """(patch key, module path) of every transformer block with a cross-attention, in UNet order."""
    from comfy.ldm.modules.attention import SpatialTransformer

    found = []
    groups = [("input", i, blk) for i, blk in enumerate(diffusion_model.input_blocks)]
    groups.append(("middle", 0, diffusion_model.middle_block))
    groups += [("output", i, blk) for i, blk in enumerate(diffusion_model.output_blocks)]
    prefix = {"input": "input_blocks", "middle": "middle_block", "output": "output_blocks"}
    for name, number, seq in groups:
        for j, layer in enumerate(seq):
            if not isinstance(layer, SpatialTransformer):
                continue
            for t, tb in enumerate(layer.transformer_blocks):
                if getattr(tb, "attn2", None) is not None:
                    base = prefix[name] if name == "middle" else f"{prefix[name]}.{number}"
                    found.append(
                        (
                            (name, number, t),
                            f"diffusion_model.{base}.{j}.transformer_blocks.{t}.attn2",
                        )
                    )
    return found


def install(patcher, run: UNetMQDRun) -> list[tuple[str, int, int]]:
    """Set an attn2 replace patch for every cross-attention on `patcher` (a clone the caller
    owns); the patches live in the clone's model_options and go away with it."""
    keys = []
    for key, path in attn2_blocks(patcher.get_model_object("diffusion_model")):
        patcher.set_model_attn2_replace(RoutedAttn2(run, key, patcher.get_model_object(path)), *key)
        keys.append(key)
    return keys
