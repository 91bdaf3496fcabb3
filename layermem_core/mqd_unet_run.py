"""Per-run state of UNet MQD: ownership per level, the run's keys and values, each call's bias.

Every key a row may see is known before the run: the prompts of all layers (conditional rows,
routed by owner) and the run's negative prompt (unconditional rows). Each block projects them
once per run with its own to_k / to_v (LoRA weight patches included), head-major, padded to a
bucket; per call the wrapper only picks the call's bias. Built outside the model's forward by
the run's APPLY_MODEL wrapper (so outside any torch.compile region); mqd_unet's attn2 patches
only read it. See mqd_unet for the routing.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from .masks import TOKEN_THRESHOLD

COND = 0  # ComfyUI's marker for a conditional chunk in cond_or_uncond
KEY_BUCKET = 8  # eager: keys padded to a multiple of 8 (kernels like an aligned bias)
# Compiled: a multiple of four CLIP chunks, so a background, a layer and the negative of one
# chunk each share one shape with other prompts of that size; padded keys are masked (-inf).
COMPILED_KEY_BUCKET = 4 * 77
NEGATIVE, PADDING = -2, -1  # key owners besides the layers' indices


def _round_up(n: int, to: int) -> int:
    return -(-n // to) * to


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


@dataclass
class CallLayout:
    """One model call's batch: conditional rows and their biases (built outside the model)."""

    rows: tuple[bool, ...]  # conditional per batch row
    biases: dict = field(default_factory=dict)  # level (h, w) -> [B, 1, h*w, keys]


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
        owners = torch.repeat_interleave(torch.arange(len(prompts)), torch.tensor(lengths))
        self._real_owner = torch.cat(
            [owners, torch.full((int(negative.shape[1]),), NEGATIVE, dtype=torch.long)])
        self.key_bucket = KEY_BUCKET
        self.current: CallLayout | None = None  # the routed call in progress (None: stock)
        self.active = False  # inside `routing`: the patches may read `current`
        self.block_kv: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}  # [1, heads, L, d]
        self._prepared_for: tuple | None = None
        self._bias: dict[tuple, torch.Tensor] = {}
        self._layouts: dict[tuple, CallLayout] = {}

    @property
    def total_keys(self) -> int:
        """Keys of the run, padded to the bucket."""
        return _round_up(int(self._real_owner.numel()), self.key_bucket)

    @property
    def key_owner(self) -> torch.Tensor:
        """Owner per key: a layer's index, NEGATIVE, or PADDING."""
        pad = self.total_keys - int(self._real_owner.numel())
        return F.pad(self._real_owner, (0, pad), value=PADDING)

    def use_key_bucket(self, bucket: int) -> None:
        """Pad keys to a multiple of `bucket` from now on (drops what was built for another)."""
        if bucket != self.key_bucket:
            self.key_bucket = bucket
            self.block_kv.clear()
            self._prepared_for = None
            self._bias.clear()
            self._layouts.clear()

    def owner_bias(self, hw: tuple[int, int], device, dtype) -> torch.Tensor:
        """[h*w, keys] for conditional rows: 0 on the token's owner's keys, -inf elsewhere."""
        key = (hw, str(device), dtype)
        bias = self._bias.get(key)
        if bias is None:
            allowed = owner_map(self.latent_masks, hw)[:, None] == self.key_owner[None, :]
            bias = self._bias[key] = _bias(allowed, device, dtype)
        return bias

    def batch_bias(self, hw: tuple[int, int], rows: tuple[bool, ...], device,
                   dtype) -> torch.Tensor:
        """[B, 1, h*w, keys]: conditional rows route by owner, unconditional rows see the
        negative's keys only."""
        routed = self.owner_bias(hw, device, dtype)
        negative = _bias((self.key_owner == NEGATIVE)[None, :], device, dtype)
        return torch.stack([routed if c else negative.expand_as(routed) for c in rows])[:, None]

    def layout(self, cond_or_uncond, batch: int, device) -> CallLayout | None:
        """The routing of a call with this batch; None when no row is conditional or the batch
        does not split into ComfyUI's chunks (stock)."""
        rows = conditional_rows(cond_or_uncond, batch)
        if not rows or not any(rows):
            return None
        key = tuple(rows)
        if key not in self._layouts:
            self._layouts[key] = CallLayout(key)
        return self._layouts[key]

    def level_bias(self, call: CallLayout, hw: tuple[int, int], device, dtype) -> torch.Tensor:
        """The call's bias at level `hw`, built once per run and layout."""
        bias = call.biases.get(hw)
        if bias is None:
            bias = call.biases[hw] = self.batch_bias(hw, call.rows, device, dtype)
        return bias

    def prepare(self, diffusion_model, call: CallLayout, latent_hw, device, dtype) -> None:
        """Every block's keys and values (once per run) and the call's bias at every level of
        the UNet: all outside the model's forward."""
        dm = getattr(diffusion_model, "_orig_mod", diffusion_model)  # a torch.compile wrapper
        if self._prepared_for != (str(device), dtype):
            context = torch.cat([p.to(device=device, dtype=dtype)
                                 for p in [*self.prompts, self.negative]], dim=1)
            context = pad_keys(context, self.total_keys)
            for block, path in attn2_blocks(dm):
                attn2 = dm.get_submodule(path.split(".", 1)[1])
                self.block_kv[block] = tuple(_heads(t, attn2.heads) for t in
                                             (attn2.to_k(context), attn2.to_v(context)))
            self._prepared_for = (str(device), dtype)
        h, w = latent_hw
        for _ in range(len(getattr(dm, "channel_mult", ())) or 4):
            self.level_bias(call, (h, w), device, dtype)
            h, w = (h + 1) // 2, (w + 1) // 2  # the UNet's stride-2 convolutions round up

    @contextlib.contextmanager
    def routing(self, diffusion_model, cond_or_uncond, x: torch.Tensor,
                context: torch.Tensor | None, dtype) -> Iterator[torch.Tensor | None]:
        """Route one model call: yields the context to give the model (one token of its own
        when routed: no block reads it, and its shape stays fixed for torch.compile)."""
        call = self.layout(cond_or_uncond, x.shape[0], x.device) if context is not None else None
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


def conditional_rows(cond_or_uncond, batch: int) -> list[bool] | None:
    """Per batch row: conditional? None when the batch does not split into ComfyUI's chunks."""
    marks = list(cond_or_uncond or [])
    if not marks or batch % len(marks):
        return None
    per = batch // len(marks)
    return [m == COND for m in marks for _ in range(per)]


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
