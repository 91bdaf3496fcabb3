"""Multi-Query Disentangled cross-attention at the price of one attention call per block.

Each DiT block's `cross_attn` is replaced (object patch on a cloned ModelPatcher, restored
after the run) with an `MQDCrossAttention` that shares the stock module's linear layers, so
weight patches (LoRA) and low-VRAM casting apply unchanged.

The routing and the prompts are fixed for a run, so everything that depends only on them is
computed once, outside the model's forward (and outside any torch.compile region), by the
APPLY_MODEL wrapper (`MQDRun.prepare`): every block's keys/values of all layers' prompts,
side by side and padded to a bucket of `KEY_BUCKET` keys, and an additive bias that is 0 where
a token's owner's prompt keys are and -inf elsewhere. Per model call (`MQDRun.select`) the
wrapper picks the layout of the CFG batch: conditional rows attend to the routed keys; in a
batched CFG call the unconditional rows attend to their own caption's keys, appended after
the routed ones (the bias hides each set from the other rows). Each block then makes ONE
attention call for the whole batch, in the tokens' own order: no gather, no scatter.

The attention call is torch's `scaled_dot_product_attention`, not ComfyUI's
`optimized_attention`: sage attention ignores masks, flash attention rejects them, and the
`sdpa_kernel` context managers ComfyUI wraps around SDPA cost launch time. PixArt passes no
transformer_options to its attention, so no user setting is lost.

Patched modules hold the run's tensors only, never the diffusion model, and their forward
reads no tensor value on the host: torch.compile (ComfyUI's TorchCompileModel) traces them
without graph breaks, and a second edit with the same number of layers re-traces nothing.
"""
from __future__ import annotations

import comfy.patcher_extension
import torch
import torch.nn.functional as F
from comfy.ldm.pixart.blocks import MultiHeadCrossAttention

from .routing import RoutingPlan, layer_routing

WRAPPER_KEY = "layer_memory_mqd"
COND = 0  # ComfyUI's marker for a conditional chunk in cond_or_uncond
KEY_BUCKET = 64  # routed keys are padded to a multiple of this: same shapes for similar edits
STOCK, ROUTED, MIXED = "stock", "routed", "mixed"  # layouts of one model call's batch


def _round_up(n: int, to: int) -> int:
    return -(-n // to) * to


class MQDRun:
    """State of one sampling run: routing, prompts, and per-run keys, values and biases."""

    def __init__(self, plan: RoutingPlan, prompts: list[torch.Tensor]):
        self.plan = plan
        self.prompts = prompts  # raw T5 embeddings [1, L, 4096], indexed by owner
        lengths = [int(p.shape[-2]) for p in prompts]
        self.routed_keys = _round_up(sum(lengths), KEY_BUCKET)
        self.key_owner = torch.full((self.routed_keys,), -1, dtype=torch.long)  # -1: padding
        self.key_owner[:sum(lengths)] = torch.repeat_interleave(
            torch.arange(len(lengths)), torch.tensor(lengths))
        self.token_owner = plan.owners()
        self.layout = STOCK
        self.bias: torch.Tensor | None = None  # [B or 1, 1, N, keys] for the current call
        self.static_kv: list[torch.Tensor] = []  # per block [1, routed_keys, 2C]
        self._prepared_for: tuple | None = None
        self._biases: dict[tuple, torch.Tensor] = {}

    @classmethod
    def for_layers(cls, layers) -> MQDRun:
        """The run for these layers (background first), as AddLayer/DeleteLayer route them."""
        return cls(*layer_routing(layers))

    def prepare(self, diffusion_model, device: torch.device, dtype: torch.dtype) -> None:
        """Every block's keys/values of all prompts, once per run (and device/dtype)."""
        if self._prepared_for == (device, dtype):
            return
        dm = getattr(diffusion_model, "_orig_mod", diffusion_model)  # a torch.compile wrapper
        captions = [dm.y_embedder(p.to(device=device, dtype=dtype)[:, None], False)[:, 0]
                    for p in self.prompts]
        y = torch.cat(captions, dim=1)
        pad = self.routed_keys - y.shape[1]
        y = torch.cat([y, y.new_zeros(1, pad, y.shape[2])], dim=1) if pad else y
        self.static_kv = [block.cross_attn.kv_linear(y).contiguous() for block in dm.blocks]
        self._biases.clear()
        self._prepared_for = (device, dtype)

    def select(self, cond_or_uncond: list[int], batch: int, caption_len: int) -> None:
        """Set the layout and the bias of the next model call (`caption_len`: its rows' tokens)."""
        marks = list(cond_or_uncond) or [COND]
        if batch % len(marks) or COND not in marks:
            self.layout, self.bias = STOCK, None
            return
        rows = tuple(m == COND for m in marks for _ in range(batch // len(marks)))
        self.layout = ROUTED if all(rows) else MIXED
        key = (rows, caption_len) if self.layout == MIXED else ()
        if key not in self._biases:
            self._biases[key] = self._make_bias(rows, caption_len) if key else \
                self._make_bias((True,), 0)
        self.bias = self._biases[key]

    def release(self) -> None:
        self.layout, self.bias = STOCK, None

    def _make_bias(self, rows: tuple[bool, ...], caption_len: int) -> torch.Tensor:
        """[len(rows), 1, N, keys]: 0 where a row's token may look, -inf elsewhere.

        Keys are the routed ones, then `caption_len` keys of the rows' own captions.
        """
        device, dtype = self._prepared_for
        routed = self.token_owner[:, None] == self.key_owner[None, :]  # [N, routed_keys]
        keys = self.routed_keys + caption_len
        allowed = torch.zeros(len(rows), routed.shape[0], _round_up(keys, 8), dtype=torch.bool)
        for b, is_cond in enumerate(rows):
            if is_cond:
                allowed[b, :, :self.routed_keys] = routed
            else:
                allowed[b, :, self.routed_keys:keys] = True
        bias = torch.zeros(allowed.shape, dtype=dtype).masked_fill_(~allowed, float("-inf"))
        # storage padded to 8 keys (kernels want an aligned bias), a view of the real keys
        return bias.to(device)[:, None, :, :keys]

    def apply_model_wrapper(self, executor, x, t, c_concat=None, c_crossattn=None, control=None,
                            transformer_options={}, **kwargs):  # noqa: B006 (ComfyUI's signature)
        """APPLY_MODEL wrapper: prepare the run once, pick this call's layout, run the model."""
        base = executor.class_obj
        dtype = base.manual_cast_dtype or base.get_dtype()
        self.prepare(base.diffusion_model, x.device, dtype)
        caption_len = int(c_crossattn.shape[1]) if c_crossattn is not None else 0
        self.select(transformer_options.get("cond_or_uncond", [COND]), x.shape[0], caption_len)
        if self.layout == ROUTED:
            # No block reads the caption of an all-conditional call: one token of it keeps the
            # model's input shape fixed, so prompts of other lengths re-trace nothing.
            c_crossattn = c_crossattn[:, :1].clone(memory_format=torch.contiguous_format)
        try:
            return executor(x, t, c_concat, c_crossattn, control, transformer_options, **kwargs)
        finally:
            self.release()


class MQDCrossAttention(MultiHeadCrossAttention):
    """Stock cross-attention with the conditional rows routed per layer (see module doc)."""

    def __init__(self, stock: MultiHeadCrossAttention, block_index: int, run: MQDRun):
        torch.nn.Module.__init__(self)
        self.d_model, self.num_heads = stock.d_model, stock.num_heads
        self.head_dim = stock.head_dim
        # The same submodules under the same names: weight patches on the stock path apply.
        self.q_linear, self.kv_linear, self.proj = stock.q_linear, stock.kv_linear, stock.proj
        self.attn_drop, self.proj_drop = stock.attn_drop, stock.proj_drop
        self.block_index = block_index
        self.run = run

    def forward(self, x, cond, mask=None):
        run = self.run
        if run.layout == STOCK:
            return super().forward(x, cond, mask)
        B, N, C = x.shape
        q = self.q_linear(x)
        kv = run.static_kv[self.block_index].expand(B, -1, -1)
        if run.layout == MIXED:  # rows' own captions after the routed keys: [B, keys, 2C]
            kv = torch.cat([kv, self.kv_linear(cond).view(B, -1, 2 * C)], dim=1)
        # proj_drop is skipped: PixArt's is Dropout(0) and this path only ever runs inference
        return self.proj(attend(q, kv, run.bias, self.num_heads))


def attend(q: torch.Tensor, kv: torch.Tensor, bias: torch.Tensor, heads: int) -> torch.Tensor:
    """One SDPA call: q [B, N, C], kv [B, L, 2C], additive bias [B or 1, 1, N, L] -> [B, N, C]."""
    B, N, C = q.shape
    q = q.view(B, N, heads, C // heads).transpose(1, 2)
    k, v = kv.view(B, kv.shape[1], 2, heads, C // heads).transpose(1, 3).unbind(2)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
    return out.transpose(1, 2).reshape(B, N, C)


def install(patcher, run: MQDRun) -> list[str]:
    """Patch every block's cross-attention on `patcher` (a clone the caller owns); the keys."""
    diffusion_model = patcher.get_model_object("diffusion_model")
    keys = []
    for i in range(len(diffusion_model.blocks)):
        key = f"diffusion_model.blocks.{i}.cross_attn"
        stock = patcher.get_model_object(key)
        if isinstance(stock, MQDCrossAttention):
            raise RuntimeError(f"{key} is already MQD-patched")
        patcher.add_object_patch(key, MQDCrossAttention(stock, i, run))
        keys.append(key)
    apply_model = comfy.patcher_extension.WrappersMP.APPLY_MODEL
    patcher.remove_wrappers_with_key(apply_model, WRAPPER_KEY)
    patcher.add_wrapper_with_key(apply_model, WRAPPER_KEY, run.apply_model_wrapper)
    return keys
