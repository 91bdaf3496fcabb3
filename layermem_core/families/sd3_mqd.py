"""Multi-Query Disentangled attention for SD3's joint attention: one routed call per block.

SD3's MMDiT concatenates (context, x) per block (`mmdit._block_mixing`: text tokens first, then
image tokens, every block; the last block's context side is pre-only, its text output dropped)
and calls `optimized_attention(q, k, v, heads=, transformer_options=)` without a mask. The
routing is FLUX's (`flux_mqd.FluxMQDRun`, whose rule, prompt layout and bias this run reuses):
for the conditional rows of a call the APPLY_MODEL wrapper gives the model every live layer's
prompt side by side (SD3 has no text positions, and its image positions are its own, so prompts
side by side break nothing), padded to a bucket, and ONE additive bias (0 / -inf in the model's
dtype) over [text..., image...]:

- an image token owned by layer o attends to o's text and to every image token;
- the text of prompt i attends to itself and to the image tokens i owns;
- padding attends to itself only and nobody attends to it.

Since SD3 passes no mask, the bias reaches the call through
`transformer_options["optimized_attention_override"]`, set for the routed model call only: the
override runs the joint call on torch SDPA with the bias (whatever backend the user picked: sage
drops masks, flash refuses them). It tells the joint call by its sequence, exactly the routed
text plus the image tokens; SD3.5 Medium's second self-attention (MMDiT-X `x_block.attn2`, over
the image tokens only, same options) has the image tokens alone and goes to the backend (or to
another node's override) stock, as does any other call. A routed model call in which no joint
call reached the override (another node replaced the MMDiT's attention function or its blocks)
stops the run with the pack's error instead of sampling unrouted. The pooled vector `y` stays
the sampled (newest) layer's, as ComfyUI batched it. Everything is built in the wrapper (once per
run and batch layout), outside the model's forward; nothing is patched but the clone's wrappers.
"""
from __future__ import annotations

import logging

import torch
import torch.nn.functional as F

from ..cfg_rows import COND, conditional_rows
from ..errors import LayerMemoryError
from .flux_mqd import OVERRIDE, FluxMQDRun

WRAPPER_KEY = "layer_memory_mqd_sd3"
log = logging.getLogger("LayerMemory")


class SD3MQDRun(FluxMQDRun):
    """FLUX's routing and bias, delivered by the attention override (SD3 passes no mask)."""

    MODEL_LABEL = "SD3"

    _bias: torch.Tensor | None = None  # [B, 1, S, S] of the routed call in progress
    _routed = 0  # joint calls routed in the model call in progress

    def attention(self, func, *args, **kwargs):
        """optimized_attention_override: the routed joint call (sequence = routed text + image
        tokens, no mask of its own) on torch SDPA with the bias; every other call (attn2 over
        the image tokens, anything else) to the backend or the override another node set."""
        bias = self._bias
        q, k, v = args[:3]
        heads = args[3] if len(args) > 3 else kwargs.get("heads")
        routed = (bias is not None and heads is not None and kwargs.get("mask") is None
                  and not kwargs.get("skip_reshape", False) and q.dim() == 3
                  and q.shape[0] == bias.shape[0] and q.shape[1] == bias.shape[-1]
                  and k.shape[1] == bias.shape[-1])
        if not routed:
            return self._theirs(func, *args, **kwargs) if self._theirs else func(*args, **kwargs)
        self._routed += 1
        b, s, inner = q.shape
        q, k, v = (t.view(b, -1, heads, inner // heads).transpose(1, 2) for t in (q, k, v))
        out = sdpa(q, k, v, bias.to(q.dtype))
        if kwargs.get("skip_output_reshape", False):
            return out
        return out.transpose(1, 2).reshape(b, s, inner)

    def apply_model_wrapper(self, executor, x, t, c_concat=None, c_crossattn=None, control=None,
                            transformer_options={}, **kwargs):  # noqa: B006 (ComfyUI's signature)
        """APPLY_MODEL wrapper: route this call's conditional rows (built here, outside the
        model's forward) or run it stock."""
        rows = conditional_rows(transformer_options.get("cond_or_uncond", [COND]), x.shape[0])
        if c_crossattn is None or not rows or not any(rows):
            return executor(x, t, c_concat, c_crossattn, control, transformer_options, **kwargs)
        base = executor.class_obj
        dtype = base.manual_cast_dtype or base.get_dtype()
        patch = int(getattr(base.diffusion_model, "patch_size", 2))
        image_tokens = (-(-x.shape[-2] // patch)) * (-(-x.shape[-1] // patch))
        context, bias = self._routed_call(tuple(rows), c_crossattn.to(x.device, dtype),
                                          image_tokens)
        options = dict(transformer_options)
        options[OVERRIDE] = self.attention
        self._bias, self._routed = bias, 0
        try:
            out = executor(x, t, c_concat, context, control, options, **kwargs)
            routed = self._routed
        finally:
            self._bias = None
        if routed == 0:  # never a silent no-op
            raise LayerMemoryError(
                "model", "MQD could not reach SD3's joint attention: no block's attention call "
                "went through ComfyUI's attention override (another node replaced the MMDiT's "
                "attention function or its blocks)",
                "remove the node that replaces SD3's attention, or set use_mqd off")
        return out


def sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """One routed joint attention call, head-major [B, heads, S, d] (a module function, so a
    test can watch every call)."""
    return F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
