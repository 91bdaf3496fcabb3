"""Multi-Query Disentangled attention for FLUX's joint attention: one attention call per block.

FLUX attends over one joint sequence [text tokens..., image tokens...] in every double and
single block. For the conditional rows of a call the run's APPLY_MODEL wrapper gives the model,
instead of the newest layer's prompt, every live layer's prompt side by side (padded to a
bucket of `TEXT_BUCKET` tokens; FLUX's text positions are all zero, so prompts side by side
break no RoPE), and ONE additive bias over the joint sequence (0 / -inf in the model's dtype,
never a bool mask: ComfyUI casts every non-integer kwarg to the model dtype, so a bool would
become 0/1 floats):

- an image token owned by layer o attends to o's text and to every image token;
- the text of prompt i attends to itself and to the image tokens i owns;
- padding attends to itself only (no row is all -inf, so no NaN) and nobody attends to it.

Unconditional rows (cfg > 1, the negative) keep the context ComfyUI gave them; their bias only
hides the padding that makes their text as long as the routed one, so they compute what stock
does. Prompts of layers that own no token (hidden under later ones) are left out. The pooled
vector `y` and the guidance stay the sampled (newest) layer's, as ComfyUI batched them.

The bias reaches every block through ComfyUI's own path: the model's `attention_mask` kwarg
(`Flux._forward` -> `forward_orig(attn_mask=)` -> each block -> `math.attention(mask=)`). The
call itself goes to torch SDPA through `transformer_options["optimized_attention_override"]`
for this call only, whatever backend the user picked: sage attention drops masks silently and
flash refuses them, so routing through them would be a silent no-op. Calls without the run's
bias go to the backend (or to another node's override) unchanged. Everything is built in the
wrapper (once per run and batch layout), outside the model's forward; nothing is patched but
the clone's wrappers, and nothing global.

The wrapper and the override are shared by every joint-attention model (FLUX, Chroma:
chroma_mqd.py, SD3: sd3_mqd.py); what differs is four small hooks: `routed_bias` (which
attention call is a routed joint call), `deliver` (how the bias reaches the blocks: FLUX's
`attention_mask` kwarg, or the override alone), `check_reached` (SD3 refuses a routed model call
that reached no joint call) and `kernel` (the module's `sdpa`, which tests watch).
"""
from __future__ import annotations

import logging

import comfy.patcher_extension
import torch
import torch.nn.functional as F

from ..cfg_rows import COND, conditional_rows
from .base import round_up
from .pixart import layer_owners  # the same 2x2 token grid and newest-first rule

WRAPPER_KEY = "layer_memory_mqd_flux"
OVERRIDE = "optimized_attention_override"
TEXT_BUCKET = 64  # routed text padded to a multiple of this: similar edits share shapes
PADDING = -1  # the owner of a padding text token
log = logging.getLogger("LayerMemory")


class FluxMQDRun:
    """State of one sampling run: the routing, the prompts, and per-layout contexts and biases."""

    MODEL_LABEL = "FLUX"  # in messages; a subclass for another joint-attention model names it

    def __init__(self, token_owner: torch.Tensor, prompts: list[torch.Tensor]):
        self.token_owner = token_owner.reshape(-1).long()  # owner per image token, row-major
        owning = set(torch.unique(self.token_owner).tolist())
        self.prompt_owner = [o for o in range(len(prompts)) if o in owning]
        self.prompts = [prompts[o] for o in self.prompt_owner]  # raw T5 [1, L, 4096]
        lengths = [int(p.shape[1]) for p in self.prompts]
        self.real_text = sum(lengths)
        self._text_owner = torch.repeat_interleave(
            torch.tensor(self.prompt_owner, dtype=torch.long),
            torch.tensor(lengths, dtype=torch.long))
        self._cache: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}
        self._bias: torch.Tensor | None = None  # [B, 1, S, S] of the routed call in progress
        self._routed = 0  # joint attention calls routed in the model call in progress
        self._theirs = None  # another node's attention override, for the calls not routed here
        self._warned_mask = False

    @classmethod
    def for_layers(cls, layers) -> FluxMQDRun:
        """The run for these layers (background first), as AddLayer/DeleteLayer route them."""
        return cls(layer_owners(layers), [layer.positive.embedding for layer in layers])

    def text_owner(self, length: int) -> torch.Tensor:
        """Owner per routed text token, padded to `length` with PADDING."""
        return F.pad(self._text_owner, (0, length - self.real_text), value=PADDING)

    def allowed(self, rows: tuple[bool, ...], negative_text: int, text: int) -> torch.Tensor:
        """[B, S, S] bool, S = text + image tokens: which key each query of each row may see
        (conditional rows routed, the others stock over their first `negative_text` tokens)."""
        n = self.token_owner.numel()
        t_own, i_own = self.text_owner(text), self.token_owner
        s = text + n
        eye = torch.eye(s, dtype=torch.bool)
        routed = torch.zeros(s, s, dtype=torch.bool)
        routed[:text, :text] = (t_own[:, None] == t_own[None, :]) & (t_own[:, None] >= 0)
        routed[:text, text:] = t_own[:, None] == i_own[None, :]
        routed[text:, :text] = i_own[:, None] == t_own[None, :]
        routed[text:, text:] = True
        real = torch.zeros(s, dtype=torch.bool)
        real[:negative_text] = True
        real[text:] = True
        stock = real[:, None] & real[None, :]
        return torch.stack([(routed if r else stock) | eye for r in rows])

    def _routed_call(self, rows: tuple[bool, ...], context: torch.Tensor,
                     image_tokens: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(context [B, T, D], bias [B, 1, S, S]) of a call with these rows. The routed prompts
        and the bias are built once per run and layout; the unconditional rows' own context is
        taken from each call (padded), so it is never a stale copy."""
        if image_tokens != self.token_owner.numel():
            raise RuntimeError(f"layer memory: the {self.MODEL_LABEL} call has {image_tokens} "
                               f"image tokens, the layers' masks {self.token_owner.numel()}")
        key = (rows, int(context.shape[1]), str(context.device), context.dtype)
        if key not in self._cache:
            text = round_up(max(self.real_text, int(context.shape[1])), TEXT_BUCKET)
            routed = torch.cat([p.to(context.device, context.dtype) for p in self.prompts], 1)
            routed = F.pad(routed, (0, 0, 0, text - routed.shape[1]))
            allowed = self.allowed(rows, int(context.shape[1]), text)
            bias = torch.zeros(allowed.shape, dtype=context.dtype).masked_fill_(
                ~allowed, float("-inf")).to(context.device)[:, None]
            self._cache[key] = (routed, bias)
        routed, bias = self._cache[key]
        if all(rows):
            return routed.expand(len(rows), -1, -1), bias
        own = F.pad(context, (0, 0, 0, routed.shape[1] - context.shape[1]))
        return torch.cat([routed if r else own[b:b + 1] for b, r in enumerate(rows)]), bias

    def attention(self, func, *args, **kwargs):
        """optimized_attention_override: the run's routed joint calls on torch SDPA with the
        bias, every other call to the backend (or the override another node set)."""
        bias = self.routed_bias(args, kwargs)
        if bias is None:
            return self._theirs(func, *args, **kwargs) if self._theirs else func(*args, **kwargs)
        self._routed += 1
        q, k, v, heads = args[0], args[1], args[2], (args[3] if len(args) > 3 else kwargs["heads"])
        if not kwargs.get("skip_reshape", False):
            b, s, inner = q.shape
            q, k, v = (t.view(b, -1, heads, inner // heads).transpose(1, 2) for t in (q, k, v))
        out = self.kernel(q, k, v, bias.to(q.dtype))
        if kwargs.get("skip_output_reshape", False):
            return out
        b, h, s, d = out.shape
        return out.transpose(1, 2).reshape(b, s, h * d)

    # The hooks a joint-attention model's run sets (SD3MQDRun: sd3_mqd.py).

    def routed_bias(self, args: tuple, kwargs: dict) -> torch.Tensor | None:
        """The bias of this attention call when it is one of the routed model call's joint calls,
        else None. FLUX hands the bias to every block as the call's mask."""
        mask = kwargs.get("mask")
        if self._bias is None or mask is None or tuple(mask.shape) != tuple(self._bias.shape):
            return None
        return mask

    def deliver(self, bias: torch.Tensor, kwargs: dict) -> dict:
        """The model call's kwargs carrying `bias` to the blocks: FLUX's `attention_mask`."""
        if kwargs.get("attention_mask") is not None and not self._warned_mask:
            self._warned_mask = True
            log.warning("[layer memory] MQD replaces the %s attention mask another node set "
                        "for this run's conditional calls; set use_mqd off to keep it.",
                        self.MODEL_LABEL)
        return dict(kwargs, attention_mask=bias)

    def check_reached(self, routed: int) -> None:
        """After a routed model call that made `routed` joint calls on the override: FLUX's
        blocks always pass the mask, so nothing to check (SD3 refuses a silent no-op)."""

    def kernel(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
               bias: torch.Tensor) -> torch.Tensor:
        """This module's `sdpa` (a subclass calls its own module's, so a test can watch it)."""
        return sdpa(q, k, v, bias)

    def install(self, patcher) -> list:
        """Set the run's APPLY_MODEL wrapper on `patcher` (a clone the caller owns); no object
        patch, so no keys to restore."""
        options = patcher.model_options.get("transformer_options", {})
        self._theirs = options.get(OVERRIDE)
        if self._theirs is not None:
            log.warning("[layer memory] MQD runs %s's routed attention calls on torch SDPA, "
                        "bypassing the attention override another node set (%s) for them; set "
                        "use_mqd off to keep it everywhere.", self.MODEL_LABEL,
                        getattr(self._theirs, "__qualname__", type(self._theirs).__name__))
        apply_model = comfy.patcher_extension.WrappersMP.APPLY_MODEL
        patcher.remove_wrappers_with_key(apply_model, WRAPPER_KEY)
        patcher.add_wrapper_with_key(apply_model, WRAPPER_KEY, self.apply_model_wrapper)
        return []

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
        kwargs = self.deliver(bias, kwargs)
        options = dict(transformer_options)
        options[OVERRIDE] = self.attention
        self._bias, self._routed = bias, 0
        try:
            out = executor(x, t, c_concat, context, control, options, **kwargs)
            routed = self._routed
        finally:
            self._bias = None
        self.check_reached(routed)
        return out


def sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """One routed joint attention call, head-major [B, heads, S, d] (a module function, so a
    test can watch every call)."""
    return F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
