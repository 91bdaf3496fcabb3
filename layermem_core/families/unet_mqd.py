"""Multi-Query Disentangled cross-attention for SD 1.5 / SDXL UNets (attn2 of every block).

Installed through ComfyUI's own per-clone mechanism, `ModelPatcher.set_model_attn2_replace`,
one patch per transformer block that has a cross-attention. ComfyUI projects q (and k/v of
the batch's own context) with the block's attn2 and hands them to the patch with
transformer_options, which carry `cond_or_uncond` and `activations_shape` (the level's
[b, c, h, w]); the patch's output goes through the block's own `to_out`.

Ownership at each resolution level: every layer's latent mask is area-pooled to the level's
(h, w) (an average over the factor x factor latent pixels: 1, 2, 4, 8) and thresholded at
`masks.TOKEN_THRESHOLD` (0.5, PixArt's rule at its 2x2 token grid). Newest first: the newest
layer owns its tokens, each older layer keeps what no newer mask covers, the background owns
the rest.

One attention call per block for the conditional rows, with nothing added to the stock one but
a bias, and one without a bias for the unconditional rows of a batched CFG call. Every key a
row may see is known before the run: all layers' prompts (conditional rows) and the run's
negative prompt (unconditional rows). Each block projects them once per run with its own
to_k / to_v (LoRA weight patches included); per call the conditional rows attend over the
layers' keys under an additive bias that is 0 on the owner's keys and -inf elsewhere, the
unconditional rows over the negative's keys only (so their cost does not grow with the stack,
issue 22), and the model's own context shrinks to one token nobody reads. The
call is torch's scaled_dot_product_attention whatever attention backend the user chose: sage
attention ignores masks and flash refuses them, so routing through them would be wrong.

Everything that depends on the run or the call's batch layout (keys, values, every level's
bias) is built by the run's APPLY_MODEL wrapper, outside the model's forward and so outside
any torch.compile region (ComfyUI's TorchCompileModel); the patches only read it, with no
tensor value read on the host. Under torch.compile keys are padded to a multiple of
`COMPILED_KEY_BUCKET`, so another edit with the same number of layers and prompts of other
lengths in the same bucket gives the same shapes and re-traces nothing.
"""
from __future__ import annotations

import logging

import torch
import torch.nn.functional as F

from ..cfg_rows import batched
from .base import TORCH_COMPILE_KWARGS
from .unet_mqd_run import COMPILED_KEY_BUCKET, UNetMQDRun, attn2_blocks, level_hw

WRAPPER_KEY = "layer_memory_mqd_unet"


class RoutedAttn2:
    """attn2 replace patch of one transformer block: (q, k, v, extra_options) -> attention.

    Routed calls attend over the run's keys and values of this block (projected once per run)
    under the call's bias: the stock attention call plus a bias, nothing per block besides."""

    def __init__(self, run: UNetMQDRun, block: tuple):
        self.run = run
        self.block = block  # (block name, number, transformer index), the patch key

    def __call__(self, q, k, v, extra_options):
        run = self.run
        if not run.active:
            raise RuntimeError(
                "layer memory: an MQD attn2 patch ran outside its run's APPLY_MODEL wrapper, "
                "so its keys are not routed; call the model through apply_model")
        heads, call = int(extra_options["n_heads"]), run.current
        b, n, inner = q.shape
        q = q.view(b, n, heads, -1).transpose(1, 2)
        if call is None:  # no conditional row: the stock attention
            k, v = (t.view(b, -1, heads, inner // heads).transpose(1, 2) for t in (k, v))
            return _sdpa(q, k, v, None, extra_options).reshape(b, n, inner)
        bias = run.owner_bias(level_hw(extra_options, n, run.latent_hw), q.device, q.dtype)
        k, v = run.block_kv[self.block]
        split = call.split
        if split is None:  # every row conditional
            out = _sdpa(q, batched(k, b), batched(v, b), bias, extra_options)
        else:  # conditional rows routed, the negative's rows over its own keys only
            q_c, q_u = q[split.cond], q[split.uncond]
            n_c, n_u = q_c.shape[0], q_u.shape[0]
            k_n, v_n = run.block_negative_kv[self.block]
            out = split.merge(
                _sdpa(q_c, batched(k, n_c), batched(v, n_c), bias, extra_options),
                _sdpa(q_u, batched(k_n, n_u), batched(v_n, n_u), None, extra_options))
        return out.reshape(b, n, inner)


def _sdpa(q, k, v, bias, extra_options: dict) -> torch.Tensor:
    """torch SDPA on head-major [B, heads, N, d] tensors, as [B, N, heads, d] in q's dtype
    (computed in fp32 when the model asks for fp32 attention)."""
    dtype = q.dtype
    if extra_options.get("attn_precision") == torch.float32 and dtype != torch.float32:
        q, k, v = q.float(), k.float(), v.float()
        bias = bias.float() if bias is not None else None
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias).transpose(1, 2)
    return out if out.dtype == dtype else out.to(dtype)


def install(patcher, run: UNetMQDRun) -> list[tuple[str, int, int]]:
    """Set an attn2 replace patch for every cross-attention on `patcher` (a clone the caller
    owns) and the run's APPLY_MODEL wrapper; both live in the clone's model_options and go
    away with it. A model compiled by TorchCompileModel gets the compile-sized key bucket."""
    import comfy.patcher_extension

    if TORCH_COMPILE_KWARGS in patcher.model_options:
        run.use_key_bucket(COMPILED_KEY_BUCKET)
    _warn_replaced(patcher)
    keys = []
    for key, _ in attn2_blocks(patcher.get_model_object("diffusion_model")):
        patcher.set_model_attn2_replace(RoutedAttn2(run, key), *key)
        keys.append(key)
    apply_model = comfy.patcher_extension.WrappersMP.APPLY_MODEL
    patcher.remove_wrappers_with_key(apply_model, WRAPPER_KEY)
    patcher.add_wrapper_with_key(apply_model, WRAPPER_KEY, run.apply_model_wrapper)
    return keys


def _warn_replaced(patcher) -> None:
    """Say so when MQD takes the place of attn2 patches another node set (not silently)."""
    options = patcher.model_options.get("transformer_options", {})
    theirs = options.get("patches_replace", {}).get("attn2", {})
    if theirs:
        logging.warning(
            "[layer memory] MQD replaces %d attn2 patch(es) another node set on this MODEL "
            "(IP-Adapter, regional prompting, ...) for this run; set use_mqd off to keep them.",
            len(theirs))
