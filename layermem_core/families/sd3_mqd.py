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

import torch
import torch.nn.functional as F

from ..errors import LayerMemoryError
from .flux_mqd import FluxMQDRun


class SD3MQDRun(FluxMQDRun):
    """FLUX's routing, bias and wrapper; the bias is delivered by the attention override alone
    (SD3 passes no mask), and a routed model call that reached no joint call is refused."""

    MODEL_LABEL = "SD3"

    def routed_bias(self, args: tuple, kwargs: dict) -> torch.Tensor | None:
        """The run's bias for the routed joint call (sequence = routed text + image tokens, no
        mask of its own), None for every other call (attn2 over the image tokens, anything
        else)."""
        bias = self._bias
        q, k = args[0], args[1]
        heads = args[3] if len(args) > 3 else kwargs.get("heads")
        routed = (bias is not None and heads is not None and kwargs.get("mask") is None
                  and not kwargs.get("skip_reshape", False) and q.dim() == 3
                  and q.shape[0] == bias.shape[0] and q.shape[1] == bias.shape[-1]
                  and k.shape[1] == bias.shape[-1])
        return bias if routed else None

    def deliver(self, bias: torch.Tensor, kwargs: dict) -> dict:
        """SD3's blocks take no mask: the override alone applies the bias."""
        return kwargs

    def check_reached(self, routed: int) -> None:
        """Never a silent no-op: a routed call in which no joint call reached the override."""
        if routed == 0:
            raise LayerMemoryError(
                "model", f"MQD could not reach {self.MODEL_LABEL}'s joint attention: no "
                "block's attention call went through ComfyUI's attention override (another node "
                "replaced the model's attention function or its blocks)",
                f"remove the node that replaces {self.MODEL_LABEL}'s attention, or set use_mqd "
                "off")

    def kernel(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
               bias: torch.Tensor) -> torch.Tensor:
        return sdpa(q, k, v, bias)


def sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """One routed joint attention call, head-major [B, heads, S, d] (a module function, so a
    test can watch every call)."""
    return F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
