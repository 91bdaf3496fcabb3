"""Multi-Query Disentangled cross-attention, patched into PixArt through a cloned ModelPatcher.

Each DiT block's `cross_attn` is replaced (object patch, restored by ComfyUI and by us after
the run) with an `MQDCrossAttention` that shares the stock module's linear layers, so weight
patches (LoRA) and low-VRAM casting work unchanged. On the conditional rows of the CFG batch,
image tokens are sorted by owner once per run and each contiguous group attends to its own
layer's prompt; the unconditional rows run the stock attention with their negative prompt.

PixArt's forward drops transformer_options, so an APPLY_MODEL wrapper tells the blocks which
rows are conditional (`cond_or_uncond`) and where the caption embedder lives.
"""
from __future__ import annotations

import comfy.patcher_extension
import torch
from comfy.ldm.modules.attention import optimized_attention
from comfy.ldm.pixart.blocks import MultiHeadCrossAttention

from .routing import RoutingPlan

WRAPPER_KEY = "layer_memory_mqd"
COND = 0  # ComfyUI's marker for a conditional chunk in cond_or_uncond


class MQDRun:
    """State of one sampling run: routing, prompts, and per-run caches of their projections."""

    def __init__(self, plan: RoutingPlan, prompts: list[torch.Tensor]):
        self.plan = plan
        self.prompts = prompts  # raw T5 embeddings [1, L, 4096], indexed by owner
        self.cond_or_uncond: list[int] | None = None
        self.diffusion_model = None
        self._device_plan: RoutingPlan | None = None
        self._captions: list[torch.Tensor] | None = None
        self._kv: dict[int, list[tuple[torch.Tensor, torch.Tensor]]] = {}

    def device_plan(self, device: torch.device) -> RoutingPlan:
        if self._device_plan is None or self._device_plan.permutation.device != device:
            self._device_plan = self.plan.to(device)
        return self._device_plan

    def prompt_kv(self, block_index: int, attn: MultiHeadCrossAttention, device, dtype) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Key/value projections of every layer's prompt for one block, computed once per run."""
        cached = self._kv.get(block_index)
        if cached is not None:
            return cached
        if self._captions is None:
            embedder = self.diffusion_model.y_embedder
            self._captions = [embedder(p.to(device=device, dtype=dtype)[:, None], False)[:, 0] for p in self.prompts]
        kv = []
        for y in self._captions:
            k, v = attn.kv_linear(y).view(1, -1, 2, attn.d_model).unbind(2)
            kv.append((k.contiguous(), v.contiguous()))
        self._kv[block_index] = kv
        return kv

    def apply_model_wrapper(self, executor, x, t, c_concat=None, c_crossattn=None, control=None, transformer_options={}, **kwargs):
        """APPLY_MODEL wrapper: expose which rows are conditional while the model runs."""
        self.cond_or_uncond = list(transformer_options.get("cond_or_uncond", [COND]))
        self.diffusion_model = executor.class_obj.diffusion_model
        try:
            return executor(x, t, c_concat, c_crossattn, control, transformer_options, **kwargs)
        finally:
            self.cond_or_uncond = None

    def conditional_rows(self, batch: int) -> list[bool] | None:
        marks = self.cond_or_uncond
        if not marks or batch % len(marks):
            return None
        per = batch // len(marks)
        return [m == COND for m in marks for _ in range(per)]


class MQDCrossAttention(MultiHeadCrossAttention):
    """Stock cross-attention with the conditional rows routed per layer (see module doc)."""

    def __init__(self, stock: MultiHeadCrossAttention, block_index: int, run: MQDRun):
        torch.nn.Module.__init__(self)
        self.d_model, self.num_heads, self.head_dim = stock.d_model, stock.num_heads, stock.head_dim
        # The same submodules under the same names: weight patches keyed on the stock path still apply.
        self.q_linear, self.kv_linear, self.proj = stock.q_linear, stock.kv_linear, stock.proj
        self.attn_drop, self.proj_drop = stock.attn_drop, stock.proj_drop
        self.block_index = block_index
        self.run = run

    def forward(self, x, cond, mask=None):
        rows = self.run.conditional_rows(x.shape[0])
        if not rows or not any(rows):
            return super().forward(x, cond, mask)
        B = x.shape[0]
        q = self.q_linear(x)  # one projection for every row and group
        out = torch.empty_like(q)
        row_len = cond.shape[1] // B  # PixArtMS passes the rows' captions concatenated: [1, B * L, C]
        for b, is_cond in enumerate(rows):
            if is_cond:
                out[b] = self._routed(q[b])
            else:  # the negative prompt, exactly as the stock module does it
                k, v = self.kv_linear(cond[:, b * row_len:(b + 1) * row_len]).view(1, -1, 2, self.d_model).unbind(2)
                out[b] = optimized_attention(q[b:b + 1], k, v, self.num_heads)[0]
        return self.proj_drop(self.proj(out))

    def _routed(self, q: torch.Tensor) -> torch.Tensor:
        """[N, C] queries of one conditional row -> attention output, each owner's tokens on its own prompt."""
        plan = self.run.device_plan(q.device)
        kv = self.run.prompt_kv(self.block_index, self, q.device, q.dtype)
        if plan.is_single_group:
            k, v = kv[plan.segments[0][0]]
            return optimized_attention(q[None], k, v, self.num_heads)[0]
        q_sorted = q.index_select(0, plan.permutation)  # owners are contiguous segments now: slices, no scatter
        parts = [optimized_attention(q_sorted[None, start:end], kv[owner][0], kv[owner][1], self.num_heads)[0]
                 for owner, start, end in plan.segments]
        return torch.cat(parts).index_select(0, plan.inverse)


def install(patcher, run: MQDRun) -> list[str]:
    """Patch every block's cross-attention on `patcher` (a clone the caller owns); returns the keys."""
    diffusion_model = patcher.get_model_object("diffusion_model")
    keys = []
    for i in range(len(diffusion_model.blocks)):
        key = f"diffusion_model.blocks.{i}.cross_attn"
        stock = patcher.get_model_object(key)
        if isinstance(stock, MQDCrossAttention):  # a patched model passed in again: wrap the stock one
            raise RuntimeError(f"{key} is already MQD-patched")
        patcher.add_object_patch(key, MQDCrossAttention(stock, i, run))
        keys.append(key)
    patcher.remove_wrappers_with_key(comfy.patcher_extension.WrappersMP.APPLY_MODEL, WRAPPER_KEY)
    patcher.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.APPLY_MODEL, WRAPPER_KEY, run.apply_model_wrapper)
    return keys
