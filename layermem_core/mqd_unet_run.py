"""Per-run state of UNet MQD: ownership per level, each call's layout and routed context.

Built outside the model's forward by the run's APPLY_MODEL wrapper (so outside any
torch.compile region); mqd_unet's attn2 patches only read it. See mqd_unet for the routing.
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
# Compiled: a multiple of four CLIP chunks, so a background and a layer of one to three chunks
# (or four one-chunk layers) share one shape; the padded keys are masked out (-inf).
COMPILED_KEY_BUCKET = 4 * 77
STOCK, ROUTED, OWN = "stock", "routed", "own"  # kinds of a model call's batch layout


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
    """How one model call's batch is routed: what the patches read, built outside the model."""

    kind: str  # ROUTED: every row conditional; OWN: some rows see their own context's keys
    rows: tuple[bool, ...]  # conditional per batch row
    own_keys: int  # real keys of the rows' own context (OWN)
    length: int  # keys per row: the routed keys (ROUTED) or the padded own context (OWN)
    cond: torch.Tensor | None = None  # [B, 1, 1] bool on the model's device (OWN)
    biases: dict = field(default_factory=dict)  # level (h, w) -> [B, 1, h*w, length]


class UNetMQDRun:
    """State of one sampling run: masks, prompts, and per-run caches (K/V, biases, layouts)."""

    def __init__(self, latent_masks: list[torch.Tensor], prompts: list[torch.Tensor]):
        if len(prompts) != len(latent_masks) + 1:
            raise ValueError("one prompt per layer: the background's first, then one per mask")
        self.latent_masks = [m.detach().to("cpu", torch.float32) for m in latent_masks]
        self.latent_hw = tuple(latent_masks[0].shape) if latent_masks else (0, 0)
        self.prompts = prompts  # [1, L_i, D] per owner; background first
        lengths = [int(p.shape[1]) for p in prompts]
        self.key_owner = torch.repeat_interleave(torch.arange(len(prompts)), torch.tensor(lengths))
        self.key_bucket = KEY_BUCKET
        self.current: CallLayout | None = None  # the routed call in progress (None: stock)
        self.active = False  # inside `routing`: the patches may read `current`
        self._bias: dict[tuple, torch.Tensor] = {}
        self._contexts: dict[tuple, torch.Tensor] = {}
        self._layouts: dict[tuple, CallLayout] = {}

    @property
    def total_keys(self) -> int:
        return int(self.key_owner.numel())

    @property
    def routed_keys(self) -> int:
        """The prompts' keys padded to the bucket: the routed rows' key count."""
        return _round_up(self.total_keys, self.key_bucket)

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

    def use_key_bucket(self, bucket: int) -> None:
        """Pad keys to a multiple of `bucket` from now on (drops what was built for another)."""
        if bucket != self.key_bucket:
            self.key_bucket = bucket
            self._contexts.clear()
            self._layouts.clear()

    def layout(self, cond_or_uncond, batch: int, own_keys: int, device) -> CallLayout | None:
        """The routing of a call with this batch (`own_keys`: its context's tokens); None when
        no row is conditional or the batch does not split into ComfyUI's chunks (stock)."""
        rows = conditional_rows(cond_or_uncond, batch)
        if not rows or not any(rows):
            return None
        if all(rows):
            kind, key = ROUTED, (tuple(rows), 0, self.routed_keys)
        else:
            length = max(self.routed_keys, _round_up(own_keys, self.key_bucket))
            kind, key = OWN, (tuple(rows), own_keys, length)
        found = self._layouts.get(key)
        if found is None:
            cond = torch.tensor(rows, device=device).view(-1, 1, 1)
            found = self._layouts[key] = CallLayout(kind, *key, cond=cond)
        return found

    def level_bias(self, call: CallLayout, hw: tuple[int, int], device, dtype) -> torch.Tensor:
        """The call's bias at level `hw`, built once per run and layout (a run samples on one
        device in one dtype)."""
        bias = call.biases.get(hw)
        if bias is None:
            bias = self.batch_bias(hw, call.rows, call.own_keys, call.length, device, dtype)
            call.biases[hw] = bias
        return bias

    def prompt_context(self, length: int, device, dtype) -> torch.Tensor:
        """Every layer's prompt, concatenated and zero-padded to `length` keys: [1, length, D]."""
        key = (length, str(device), dtype)
        context = self._contexts.get(key)
        if context is None:
            context = torch.cat([p.to(device=device, dtype=dtype) for p in self.prompts], dim=1)
            context = self._contexts[key] = pad_keys(context, length)
        return context

    def routed_context(self, call: CallLayout, context: torch.Tensor) -> torch.Tensor:
        """The context the model gets for a routed call: conditional rows get every layer's
        prompt, the others their own context, all padded to `call.length`. The block's own
        to_k / to_v then project exactly the keys each row may see (LoRA patches included),
        and the patch adds nothing but the bias to the stock attention call."""
        prompts = self.prompt_context(call.length, context.device, context.dtype)
        if call.kind == ROUTED:
            return prompts.expand(len(call.rows), -1, -1)
        return torch.where(call.cond, prompts, pad_keys(context, call.length))

    def prepare(self, diffusion_model, call: CallLayout, latent_hw, device, dtype) -> None:
        """Build the call's bias at every level of the UNet (outside the model's forward)."""
        dm = getattr(diffusion_model, "_orig_mod", diffusion_model)  # a torch.compile wrapper
        h, w = latent_hw
        for _ in range(len(getattr(dm, "channel_mult", ())) or 4):
            self.level_bias(call, (h, w), device, dtype)
            h, w = (h + 1) // 2, (w + 1) // 2  # the UNet's stride-2 convolutions round up

    @contextlib.contextmanager
    def routing(self, diffusion_model, cond_or_uncond, x: torch.Tensor,
                context: torch.Tensor | None, dtype) -> Iterator[torch.Tensor | None]:
        """Route one model call: yields the context to give the model; the patches read the
        call's layout while inside."""
        call = None
        if context is not None:
            call = self.layout(cond_or_uncond, x.shape[0], int(context.shape[1]), x.device)
        if call is not None:
            self.prepare(diffusion_model, call, tuple(x.shape[-2:]), x.device, dtype)
            context = self.routed_context(call, context)
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
