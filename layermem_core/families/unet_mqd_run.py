"""Per-run state of UNet MQD: ownership per level, the run's keys and values, each call's bias.

Every key a row may see is known before the run: the prompts of all layers (conditional rows,
routed by owner, padded to a bucket) and the run's negative prompt (unconditional rows, in a
call of their own: they never pay for the layers' keys, cfg_rows). Each block projects them
once per run with its own to_k / to_v (LoRA weight patches included), head-major; per call the
wrapper only picks the call's rows and the level's bias. Built outside the model's forward by
the run's APPLY_MODEL wrapper (so outside any torch.compile region); unet_mqd's attn2 patches
only read it. See unet_mqd for the routing.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..cfg_rows import RowSplit, conditional_rows
from ..masks import TOKEN_THRESHOLD
from .base import round_up

KEY_BUCKET = 8  # eager: keys padded to a multiple of 8 (kernels like an aligned bias)
# Compiled: a multiple of four CLIP chunks, so a background and a layer of one chunk each share
# one shape with other prompts of that size; padded keys are masked (-inf).
COMPILED_KEY_BUCKET = 4 * 77
PADDING = -1  # the owner of a padding key


def token_owners(latent_masks: list[torch.Tensor], hw: tuple[int, int]) -> torch.Tensor:
    """Owner per token of an (h, w) level, row-major; 0 = background, i = latent_masks[i - 1].

    `latent_masks` are the layers above the background, oldest first, on the latent grid.
    """
    h, w = hw
    owners = torch.zeros(h * w, dtype=torch.long)
    for i, mask in enumerate(latent_masks, start=1):
        pooled = F.interpolate(mask[None, None].float(), size=(h, w), mode="area")[0, 0]
        owners[(pooled >= TOKEN_THRESHOLD).reshape(-1)] = i
    return owners


@dataclass
class CallLayout:
    """One model call's batch: its conditional rows (built outside the model)."""

    rows: tuple[bool, ...]  # conditional per batch row
    split: RowSplit | None = None  # both kinds of rows: one attention call per kind


class UNetMQDRun:
    """State of one sampling run: masks, prompts, the negative, and per-run caches."""

    def __init__(self, latent_masks: list[torch.Tensor], prompts: list[torch.Tensor],
                 negative: torch.Tensor):
        if len(prompts) != len(latent_masks) + 1:
            raise ValueError("one prompt per layer: the background's first, then one per mask")
        self.latent_masks = [m.detach().to("cpu", torch.float32) for m in latent_masks]
        self.latent_hw = tuple(latent_masks[0].shape) if latent_masks else (0, 0)
        self.prompts = prompts  # [1, L_i, D] per owner; background first
        self.negative = negative  # [1, L, D]: the unconditional rows' prompt in this run
        lengths = [int(p.shape[1]) for p in prompts]
        self._real_owner = torch.repeat_interleave(torch.arange(len(prompts)),
                                                   torch.tensor(lengths))
        self.key_bucket = KEY_BUCKET
        self.current: CallLayout | None = None  # the routed call in progress (None: stock)
        self.active = False  # inside `routing`: the patches may read `current`
        # per block, head-major [1, heads, keys, d]: the layers' prompts (routed, padded) and the
        # negative's (its own length: its rows attend without a bias)
        self.block_kv: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}
        self.block_negative_kv: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}
        self._prepared_for: tuple | None = None
        self._bias: dict[tuple, torch.Tensor] = {}
        self._layouts: dict[tuple, CallLayout] = {}

    @classmethod
    def for_layers(cls, layers) -> UNetMQDRun:
        """The run for these layers (background first), as AddLayer/DeleteLayer route them:
        it samples with the newest layer's negative."""
        return cls([layer.latent_mask for layer in layers[1:]],
                   [layer.positive.embedding for layer in layers], layers[-1].negative.embedding)

    def install(self, patcher) -> list[tuple[str, int, int]]:
        """Patch `patcher` (a clone the caller owns) for this run; the patched blocks."""
        from .unet_mqd import install

        return install(patcher, self)

    @property
    def routed_keys(self) -> int:
        """The layers' prompt keys of the run, padded to the bucket."""
        return round_up(int(self._real_owner.numel()), self.key_bucket)

    @property
    def key_owner(self) -> torch.Tensor:
        """Owner per routed key: a layer's index, or PADDING."""
        pad = self.routed_keys - int(self._real_owner.numel())
        return F.pad(self._real_owner, (0, pad), value=PADDING)

    def use_key_bucket(self, bucket: int) -> None:
        """Pad keys to a multiple of `bucket` from now on (drops what was built for another)."""
        if bucket != self.key_bucket:
            self.key_bucket = bucket
            self.block_kv.clear()
            self.block_negative_kv.clear()
            self._prepared_for = None
            self._bias.clear()
            self._layouts.clear()

    def owner_bias(self, hw: tuple[int, int], device, dtype) -> torch.Tensor:
        """[1, 1, h*w, routed_keys] for conditional rows: 0 on the token's owner's keys, -inf
        elsewhere; built once per run and level."""
        key = (hw, str(device), dtype)
        bias = self._bias.get(key)
        if bias is None:
            allowed = token_owners(self.latent_masks, hw)[:, None] == self.key_owner[None, :]
            bias = self._bias[key] = _bias(allowed, device, dtype)[None, None]
        return bias

    def call_layout(self, cond_or_uncond, batch: int, device) -> CallLayout | None:
        """The routing of a call with this batch; None when no row is conditional or the batch
        does not split into ComfyUI's chunks (stock)."""
        rows = conditional_rows(cond_or_uncond, batch)
        if not rows or not any(rows):
            return None
        key = tuple(rows)
        if key not in self._layouts:
            self._layouts[key] = CallLayout(key, RowSplit.of(key, device))
        return self._layouts[key]

    def prepare(self, diffusion_model, call: CallLayout, latent_hw, device, dtype) -> None:
        """Every block's keys and values (once per run) and the call's bias at every level of
        the UNet: all outside the model's forward."""
        dm = getattr(diffusion_model, "_orig_mod", diffusion_model)  # a torch.compile wrapper
        if self._prepared_for != (str(device), dtype):
            context = torch.cat([p.to(device=device, dtype=dtype) for p in self.prompts], dim=1)
            context = pad_keys(context, self.routed_keys)
            negative = self.negative.to(device=device, dtype=dtype)
            for block, path in attn2_blocks(dm):
                attn2 = dm.get_submodule(path.split(".", 1)[1])
                self.block_kv[block] = tuple(_heads(t, attn2.heads) for t in
                                             (attn2.to_k(context), attn2.to_v(context)))
                self.block_negative_kv[block] = tuple(
                    _heads(t, attn2.heads) for t in (attn2.to_k(negative), attn2.to_v(negative)))
            self._prepared_for = (str(device), dtype)
        h, w = latent_hw
        for _ in range(len(getattr(dm, "channel_mult", ())) or 4):
            self.owner_bias((h, w), device, dtype)
            h, w = (h + 1) // 2, (w + 1) // 2  # the UNet's stride-2 convolutions round up

    @contextlib.contextmanager
    def routing(self, diffusion_model, cond_or_uncond, x: torch.Tensor,
                context: torch.Tensor | None, dtype) -> Iterator[torch.Tensor | None]:
        """Route one model call: yields the context to give the model (one token of its own
        when routed: no block reads it, and its shape stays fixed for torch.compile)."""
        call = (self.call_layout(cond_or_uncond, x.shape[0], x.device) if context is not None
                else None)
        if call is not None:
            self.prepare(diffusion_model, call, tuple(x.shape[-2:]), x.device, dtype)
            context = context[:, :1].clone(memory_format=torch.contiguous_format)
        self.current, self.active = call, True
        try:
            yield context
        finally:
            self.current, self.active = None, False

    def apply_model_wrapper(self, executor, x, t, c_concat=None, c_crossattn=None, control=None,
                            transformer_options={}, **kwargs):  # noqa: B006 (ComfyUI's signature)
        """APPLY_MODEL wrapper: route this call, built here, outside any compiled region."""
        base = executor.class_obj
        dtype = base.manual_cast_dtype or base.get_dtype()
        marks = transformer_options.get("cond_or_uncond")
        with self.routing(base.diffusion_model, marks, x, c_crossattn, dtype) as context:
            return executor(x, t, c_concat, context, control, transformer_options, **kwargs)


def _bias(allowed: torch.Tensor, device, dtype) -> torch.Tensor:
    return torch.zeros(allowed.shape, dtype=dtype).masked_fill(~allowed, float("-inf")).to(device)


def _heads(t: torch.Tensor, heads: int) -> torch.Tensor:
    """[1, L, heads*d] -> [1, heads, L, d], contiguous (what SDPA reads)."""
    return t.view(t.shape[0], t.shape[1], heads, -1).transpose(1, 2).contiguous()


def level_hw(extra_options: dict, tokens: int, latent_hw: tuple[int, int]) -> tuple[int, int]:
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


def pad_keys(t: torch.Tensor, length: int) -> torch.Tensor:
    """[B, L, C] zero-padded to `length` keys (the bias hides the padding)."""
    return F.pad(t, (0, 0, 0, length - t.shape[1])) if t.shape[1] < length else t


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
