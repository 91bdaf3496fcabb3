"""Multi-Query Disentangled attention for Chroma: FLUX's run, unchanged but for its name.

Chroma's transformer is FLUX's double and single blocks over one joint sequence [text...,
image...] with text positions all zero, and `Chroma._forward` hands the model's
`attention_mask` kwarg to every block's `math.attention(mask=)` as FLUX does, so FLUX's routing,
prompt layout, bias and delivery (`flux_mqd.FluxMQDRun`) apply as they are. What differs is
outside the attention and needs nothing here: there is no pooled vector `y` (the wrapper never
touches it), the guidance value goes to the approximator as the sampled (newest) layer's, as
ComfyUI batched it, and ComfyUI's Chroma text has no padding mask to fold into the bias (the
family refuses a conditioning that carries one; another node's mask on the model call is
replaced for the conditional calls, with a warning, as for FLUX).
"""
from __future__ import annotations

from .flux_mqd import FluxMQDRun


class ChromaMQDRun(FluxMQDRun):
    """FLUX's run; messages name Chroma."""

    MODEL_LABEL = "Chroma"
