"""Multi-Query Disentangled cross-attention at the price of one attention call per block.

Each DiT block's `cross_attn` is replaced (object patch on a cloned ModelPatcher, restored
after the run) with an `MQDCrossAttention` that shares the stock module's linear layers, so
weight patches (LoRA) and low-VRAM casting apply unchanged.

The routing and the prompts are fixed for a run, so everything that depends only on them is
computed once, outside the model's forward (and outside any torch.compile region), by the
APPLY_MODEL wrapper (`MQDRun.prepare`): every block's keys/values of all layers' prompts,
side by side and padded to a bucket of `KEY_BUCKET` keys, and an additive bias that is 0 where
a token's owner's prompt keys are and -inf elsewhere. Per model call (`MQDRun.select`) the
wrapper picks the layout of the CFG batch: conditional rows attend to the routed keys with
the bias, in the tokens' own order (no gather, no scatter); in a batched CFG call the
unconditional rows attend, in a second call without a bias, to their own caption's keys only,
as stock: they never pay for the routed keys, so their cost does not grow with the stack
(issue 22). Prompts of layers that own no token (hidden under later layers) get no keys.

Band layout (pixart_bands.py, issue 22): that bias still makes every conditional token pay for
every owning layer's keys. When the tokens split into bands of consecutive tokens (whole patch
rows) that each need fewer keys than all routed prompts, the run gathers, once per run and
block, each band's keys (its owners' prompts only) into [bands, heads, band keys, d] and
builds a [bands, 1, band, band keys] bias.
Per call every row is then viewed as [rows * bands, heads, band, d] (no copy, no gather): the
conditional rows attend to their bands' keys, the negative's rows to its keys broadcast over
the bands (a view made once per run); a call dispatches the bias layout's ops op for op. The
cost: the per-run keys are held per band (bands x band keys instead of the routed keys), so the
plan takes the largest bands that need the fewest keys and holds at most
`pixart_bands.HELD_KEYS_BUDGET` times the routed keys per block. Otherwise (one layer
everywhere, owners mixed in every band, or no band size within the budget) and under
torch.compile (a plan's shapes follow the masks: another edit would re-trace) the run keeps the
bias layout.

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

from ..cfg_rows import COND, RowSplit, batched, conditional_rows
from . import pixart_bands
from .base import TORCH_COMPILE_KWARGS, round_up
from .pixart import layer_owners

WRAPPER_KEY = "layer_memory_mqd"
KEY_BUCKET = 64  # routed keys are padded to a multiple of this: same shapes for similar edits
STOCK, ROUTED, MIXED = "stock", "routed", "mixed"  # layouts of one model call's batch


class MQDRun:
    """State of one sampling run: routing, prompts, and per-run keys, values and biases."""

    def __init__(self, token_owner: torch.Tensor, prompts: list[torch.Tensor],
                 negative: torch.Tensor | None = None):
        # the run's negative [1, L, 4096] (the newest layer's, which the run samples with): its
        # keys are projected once per run; without it each call projects its rows' captions
        self.negative = negative
        self.token_owner = token_owner.reshape(-1).long()  # owner per token, row-major
        owners = self.token_owner.tolist()  # host lists: the routing costs no tensor op
        # only the prompts of owners of a token: a layer hidden under later ones costs no keys
        owning = set(owners)
        self.prompt_owner = [o for o in range(len(prompts)) if o in owning]
        self.prompts = [prompts[o] for o in self.prompt_owner]  # raw T5 [1, L, 4096]
        lengths = [int(p.shape[-2]) for p in self.prompts]
        self.routed_keys = round_up(max(sum(lengths), 1), KEY_BUCKET)
        key_owner = [o for o, n in zip(self.prompt_owner, lengths, strict=True) for _ in range(n)]
        # owner of each routed key, -1 on padding
        self.key_owner = torch.tensor(key_owner + [-1] * (self.routed_keys - len(key_owner)))
        # bands of tokens that see only their owners' keys (None: one band, all routed keys)
        self.bands = pixart_bands.plan(owners, self.prompt_owner, lengths, self.routed_keys,
                                       KEY_BUCKET)
        self.layout = STOCK
        # the conditional rows' bias: [1, 1, N, routed_keys], or with bands
        # [n_c * bands, 1, band, band keys] for this call's n_c conditional rows
        self.bias: torch.Tensor | None = None
        self.split: RowSplit | None = None  # MIXED: the conditional and unconditional rows
        self._splits: dict[tuple, RowSplit | None] = {}
        # per block, head-major [1, heads, keys, d] (what SDPA reads): the routed prompts' keys
        # and values (with bands [bands, heads, band keys, d]), and the negative's
        self.routed_kv: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.negative_kv: list[tuple[torch.Tensor, torch.Tensor]] = []
        # with bands: the keys/values and bias laid out for this call's n_c conditional rows
        # ([n_c * bands, ...]), cached per n_c so no call expands or copies them
        self.cond_kv: list[tuple[torch.Tensor, torch.Tensor]] = []
        self._band_rows: dict[int, tuple[list, torch.Tensor]] = {}
        # with bands, a mixed call: its band rows' split and the negative's keys/values for them
        self.band_split: RowSplit | None = None
        self.uncond_kv: list[tuple[torch.Tensor, torch.Tensor]] = []
        self._band_splits: dict[tuple, tuple[RowSplit, list]] = {}
        self._prepared_for: tuple | None = None

    @classmethod
    def for_layers(cls, layers) -> MQDRun:
        """The run for these layers (background first), as AddLayer/DeleteLayer route them:
        it samples with the newest layer's negative."""
        return cls(layer_owners(layers), [layer.positive.embedding for layer in layers],
                   layers[-1].negative.embedding)

    def prepare(self, diffusion_model, device: torch.device, dtype: torch.dtype) -> None:
        """Every block's keys/values of all prompts, once per run (and device/dtype)."""
        if self._prepared_for == (device, dtype):
            return
        dm = getattr(diffusion_model, "_orig_mod", diffusion_model)  # a torch.compile wrapper

        def caption(p: torch.Tensor) -> torch.Tensor:
            return dm.y_embedder(p.to(device=device, dtype=dtype)[:, None], False)[:, 0]

        y = torch.cat([caption(p) for p in self.prompts], dim=1)
        if self.bands is not None:  # each band's keys gathered once per run and block
            index = self.bands.key_index.to(device)
            self.routed_kv = [_band_kv(block.cross_attn, y, self.bands, index)
                              for block in dm.blocks]
        else:
            pad = self.routed_keys - y.shape[1]
            y = torch.cat([y, y.new_zeros(1, pad, y.shape[2])], dim=1) if pad else y
            self.routed_kv = [_heads_kv(block.cross_attn, y) for block in dm.blocks]
        self.negative_kv = [] if self.negative is None else \
            [_heads_kv(block.cross_attn, caption(self.negative)) for block in dm.blocks]
        self.bias = None
        self._splits.clear()
        self._band_rows.clear()
        self._band_splits.clear()
        self._prepared_for = (device, dtype)

    def select(self, cond_or_uncond: list[int], batch: int) -> None:
        """Set the layout (and the rows) of the next model call."""
        rows = conditional_rows(cond_or_uncond or [COND], batch)
        if not rows or not any(rows):
            self.layout = STOCK
            return
        key = tuple(rows)
        if key not in self._splits:  # once per run and batch layout, not per call
            self._splits[key] = RowSplit.of(key, self._prepared_for[0])
        self.split = self._splits[key]
        self.layout = ROUTED if self.split is None else MIXED
        if self.bands is not None:
            self.cond_kv, self.bias = self._rows_of_bands(sum(rows))
            if self.split is not None:
                self.band_split, self.uncond_kv = self._band_split(key)
        elif self.bias is None:
            self.bias = self._make_bias()

    def release(self) -> None:
        self.layout = STOCK

    def install(self, patcher) -> list[str]:
        """Patch `patcher` (a clone the caller owns) for this run; the patched keys."""
        return install(patcher, self)

    def _rows_of_bands(self, n_c: int) -> tuple[list, torch.Tensor]:
        """The band keys/values and bias for n_c conditional rows, once per run and n_c."""
        if n_c not in self._band_rows:
            device, dtype = self._prepared_for
            bias = self.bands.bias(self.token_owner, dtype).to(device)
            if n_c == 1:
                self._band_rows[n_c] = (self.routed_kv, bias)
            else:
                kv = [(k.repeat(n_c, 1, 1, 1), v.repeat(n_c, 1, 1, 1)) for k, v in self.routed_kv]
                self._band_rows[n_c] = (kv, bias.repeat(n_c, 1, 1, 1))
        return self._band_rows[n_c]

    def _band_split(self, rows: tuple[bool, ...]) -> tuple[RowSplit, list]:
        """The split of a mixed batch's band rows (each row's nb bands, consecutive) and the
        negative's keys/values broadcast to its n_u * nb band rows: once per run and layout."""
        if rows not in self._band_splits:
            nb = self.bands.count
            split = RowSplit.of(tuple(r for r in rows for _ in range(nb)), self._prepared_for[0])
            n = (len(rows) - sum(rows)) * nb
            kv = [(k.expand(n, *k.shape[1:]), v.expand(n, *v.shape[1:]))
                  for k, v in self.negative_kv]
            self._band_splits[rows] = (split, kv)
        return self._band_splits[rows]

    def _make_bias(self) -> torch.Tensor:
        """[1, 1, N, routed_keys]: 0 on the keys of a token's owner's prompt, -inf elsewhere."""
        device, dtype = self._prepared_for
        routed = self.token_owner[:, None] == self.key_owner[None, :]  # [N, routed_keys]
        bias = torch.zeros(routed.shape, dtype=dtype).masked_fill_(~routed, float("-inf"))
        return bias.to(device)[None, None]

    def apply_model_wrapper(self, executor, x, t, c_concat=None, c_crossattn=None, control=None,
                            transformer_options={}, **kwargs):  # noqa: B006 (ComfyUI's signature)
        """APPLY_MODEL wrapper: prepare the run once, pick this call's layout, run the model."""
        base = executor.class_obj
        dtype = base.manual_cast_dtype or base.get_dtype()
        self.prepare(base.diffusion_model, x.device, dtype)
        self.select(transformer_options.get("cond_or_uncond", [COND]), x.shape[0])
        if self.layout == ROUTED or (self.layout == MIXED and self.negative_kv):
            # No block reads the captions then: one token of them keeps the model's input shape
            # fixed, so prompts of other lengths re-trace nothing.
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
        if run.bands is not None:
            return self._forward_bands(x, cond, run)
        q = self.q_linear(x).view(B, N, self.num_heads, -1).transpose(1, 2)  # [B, h, N, d]
        k, v = run.routed_kv[self.block_index]  # [1, h, routed_keys, d]
        # proj_drop is skipped: PixArt's is Dropout(0) and this path only ever runs inference
        if run.layout == ROUTED:
            out = F.scaled_dot_product_attention(q, batched(k, B), batched(v, B),
                                                 attn_mask=run.bias)
            return self.proj(out.transpose(1, 2).reshape(B, N, C))
        split = run.split
        q_c, q_u = q[split.cond], q[split.uncond]
        n_c, n_u = q_c.shape[0], q_u.shape[0]
        out_c = F.scaled_dot_product_attention(q_c, batched(k, n_c), batched(v, n_c),
                                               attn_mask=run.bias)
        if run.negative_kv:  # the negative's rows: its own keys only, as stock
            k_u, v_u = (batched(t, n_u) for t in run.negative_kv[self.block_index])
        else:  # no negative given to the run: the rows' own captions, projected now
            k_u, v_u = _heads_kv(self, cond.view(B, -1, C)[split.uncond])
        out_u = F.scaled_dot_product_attention(q_u, k_u, v_u)
        out = split.merge(out_c.transpose(1, 2), out_u.transpose(1, 2))  # [B, N, h, d]
        return self.proj(out.reshape(B, N, C))

    def _forward_bands(self, x, cond, run: MQDRun):
        """Every row band by band: [rows * bands, h, band, d] queries (a view of q_linear's
        output, no copy). The conditional rows attend to each band's keys (gathered once per
        run); the negative's rows to its keys, broadcast over the bands (a view made once per
        run). The ops per call are the bias layout's, op for op."""
        B, N, C = x.shape
        h, nb, band = self.num_heads, run.bands.count, run.bands.band
        q = self.q_linear(x).view(B * nb, band, h, -1).transpose(1, 2)  # [B * nb, h, band, d]
        k, v = run.cond_kv[self.block_index]  # [n_c * nb, h, band keys, d]
        if run.layout == ROUTED:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=run.bias)
            return self.proj(out.transpose(1, 2).reshape(B, N, C))
        split = run.band_split  # over the B * nb band rows
        out_c = F.scaled_dot_product_attention(q[split.cond], k, v, attn_mask=run.bias)
        if run.negative_kv:  # the negative's rows: its own keys only, as stock
            k_u, v_u = run.uncond_kv[self.block_index]  # [n_u * nb, h, L, d] broadcast
            out_u = F.scaled_dot_product_attention(q[split.uncond], k_u, v_u).transpose(1, 2)
        else:  # no negative given to the run: the rows' own captions, projected now
            q_u = q[split.uncond]
            n_u = q_u.shape[0] // nb
            q_u = q_u.transpose(1, 2).reshape(n_u, N, h, -1).transpose(1, 2)  # [n_u, h, N, d]
            k_u, v_u = _heads_kv(self, cond.view(B, -1, C)[run.split.uncond])
            out_u = F.scaled_dot_product_attention(q_u, k_u, v_u).transpose(1, 2)
            out_u = out_u.reshape(n_u * nb, band, h, -1)
        out = split.merge(out_c.transpose(1, 2), out_u)  # [B * nb, band, h, d]
        return self.proj(out.reshape(B, N, C))


def _heads_kv(cross_attn, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Keys and values of captions y [b, L, C] through the block's own kv_linear, head-major
    [b, heads, L, d]."""
    b, L, C = y.shape
    kv = cross_attn.kv_linear(y).view(b, L, 2, cross_attn.num_heads, C // cross_attn.num_heads)
    k, v = kv.permute(2, 0, 3, 1, 4).unbind(0)
    return k.contiguous(), v.contiguous()


def _band_kv(cross_attn, y: torch.Tensor, bands: pixart_bands.BandPlan, index: torch.Tensor
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """Each band's keys and values of the routed captions y [1, L, C], head-major
    [bands, heads, band keys, d]: the projection once, then one gather (`index`: the plan's
    key_index on y's device)."""
    C = y.shape[-1]
    kv = bands.gather(cross_attn.kv_linear(y), index)  # [1, bands * band keys, 2C]
    kv = kv.view(bands.count, bands.keys, 2, cross_attn.num_heads, C // cross_attn.num_heads)
    k, v = kv.permute(2, 0, 3, 1, 4).unbind(0)
    return k.contiguous(), v.contiguous()


def install(patcher, run: MQDRun) -> list[str]:
    """Patch every block's cross-attention on `patcher` (a clone the caller owns); the keys."""
    diffusion_model = patcher.get_model_object("diffusion_model")
    if TORCH_COMPILE_KWARGS in patcher.model_options:
        # a band plan's shapes follow the masks: under torch.compile another edit of the same
        # size would re-trace, which costs more than the bands save; one band keeps the shapes
        run.bands = None
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
