"""Multi-Query Disentangled attention for Qwen-Image's joint attention: one routed call per block.

Qwen-Image's blocks concatenate (text, image) per block (`torch.cat([txt, img], dim=1)`: text
first, like SD3) and call `optimized_attention_masked(q, k, v, heads, attention_mask,
transformer_options=)`. The routing and the one additive bias (0 / -inf in the model's dtype)
are FLUX's and the delivery SD3's (`sd3_mqd.SD3MQDRun`: the override runs the joint call, told
by its length, on torch SDPA with the bias, whatever backend the user picked):

- an image token owned by layer o attends to o's text and to every image token;
- the text of prompt i attends to itself and to the image tokens i owns;
- padding attends to itself only and nobody attends to it.

ComfyUI's Qwen-Image passes `attention_mask=None` to the joint call (the text encoder's prompts
arrive unpadded, `encoder_hidden_states_mask` is not forwarded): the only padding is the run's
own bucket padding, which the bias hides. A joint call that does carry a mask is not one this
run built, so it goes stock, and a routed model call in which no joint call was routed stops with
the pack's error (never a silent no-op).

What is Qwen-Image's own is the text RoPE: `txt_ids = arange(txt_start, txt_start + T)` with
`txt_start = max(h_tokens, w_tokens) // 2`, so prompts side by side would get running
positions. On the run's clone the diffusion model's `pe_embedder` is an object patch
(`RestartedTextIds`) that, for the routed rows of a routed call, restarts each prompt's text ids
at `txt_start` (prompt i's token j gets `txt_start + j`, as if it were alone); unconditional rows
and every other call keep ComfyUI's ids. It reads the layout the APPLY_MODEL wrapper set for the
call in progress; the wrapper builds everything outside the model's forward.
"""
from __future__ import annotations

import torch

from .sd3_mqd import SD3MQDRun

PE_KEY = "diffusion_model.pe_embedder"


class RestartedTextIds(torch.nn.Module):
    """The model's own EmbedND, with each routed prompt's text ids restarted at `txt_start` for
    the routed rows of the call in progress (an nn.Module: it replaces a child module)."""

    def __init__(self, stock: torch.nn.Module, run: QwenImageMQDRun):
        super().__init__()
        self._stock = (stock,)  # a tuple: not registered, so no state-dict keys of its own
        self._run = (run,)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        layout = self._run[0].rope_layout
        if layout is not None:
            rows, offsets = layout
            text = offsets.numel()
            ids = ids.clone()
            for b, routed in enumerate(rows):
                if routed:  # ComfyUI's txt ids start at txt_start on all three axes
                    ids[b, :text] = ids[b, :1] + offsets.to(ids.device, ids.dtype)[:, None]
        return self._stock[0](ids)


class QwenImageMQDRun(SD3MQDRun):
    """SD3's override delivery, plus each routed prompt's text RoPE restarted at txt_start."""

    MODEL_LABEL = "Qwen-Image"

    rope_layout: tuple[tuple[bool, ...], torch.Tensor] | None = None  # the routed call's

    def text_offsets(self, length: int) -> torch.Tensor:
        """Each routed text token's place in its own prompt (0, 1, ... per prompt), the padding
        after them numbered on (it is masked out, its ids matter to nobody)."""
        parts = [torch.arange(int(p.shape[1])) for p in self.prompts]
        pad = torch.arange(length - self.real_text) + (parts[-1].numel() if parts else 0)
        return torch.cat([*parts, pad]).long()

    def install(self, patcher) -> list:
        """SD3's APPLY_MODEL wrapper, and the text-id patch on the clone's pe_embedder."""
        keys = super().install(patcher)
        stock = patcher.get_model_object(PE_KEY)
        patcher.add_object_patch(PE_KEY, RestartedTextIds(stock, self))
        return [*keys, PE_KEY]

    def attention(self, func, *args, **kwargs):
        """Qwen-Image passes the mask positionally: a joint call with a mask of its own is not
        one this run built (it goes stock); the others as SD3's."""
        if len(args) > 4 and args[4] is not None:
            return self._theirs(func, *args, **kwargs) if self._theirs else func(*args, **kwargs)
        return super().attention(func, *args, **kwargs)

    def _routed_call(self, rows, context, image_tokens):
        """SD3's (context, bias), with the text-id layout of the call set for the patch."""
        routed, bias = super()._routed_call(rows, context, image_tokens)
        self.rope_layout = (rows, self.text_offsets(int(routed.shape[1])))
        return routed, bias

    def apply_model_wrapper(self, executor, x, t, c_concat=None, c_crossattn=None, control=None,
                            transformer_options={}, **kwargs):  # noqa: B006 (ComfyUI's signature)
        """SD3's wrapper; the text-id layout lives for this model call only."""
        try:
            return super().apply_model_wrapper(executor, x, t, c_concat, c_crossattn, control,
                                               transformer_options, **kwargs)
        finally:
            self.rope_layout = None
