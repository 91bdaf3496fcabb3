"""Attention grouped by key owner: each query token attends to its own group's keys only, at
the price of one attention call whatever the number of groups (issue 22).

A bias over every layer's keys side by side makes the attention's FLOPs grow with the stack
(every token computes scores for keys it may not see). Here the tokens of a call (all rows,
flattened) are sorted by group and cut into chunks of `chunk` tokens of one group each; one
batched SDPA call runs over the chunks, each chunk against its group's keys only (gathered from
the per-run [groups, keys, C] tensors). Per call that is one gather of the queries, one of the
keys and one of the values per block, the attention, and one gather putting the outputs back in
token order. The layout depends only on the routing and the call's rows, so it is built once
per run, level and batch layout, outside the model's forward (and any torch.compile region);
its shapes depend only on the token count, the number of groups and the chunk size (a fixed
upper bound of chunks), so another edit with the same number of layers re-traces nothing.

Padding slots of a chunk repeat a real token and their outputs are never read; padding keys
(groups with shorter prompts) get a -inf key bias, and every group has a real key, so no row
of the softmax is empty (no NaN).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

MIN_CHUNK, MAX_CHUNK = 16, 256  # tokens per chunk: small enough that padding stays cheap


@dataclass(frozen=True)
class ChunkLayout:
    """Where each flattened token goes in the chunked call, and whose keys each chunk reads."""

    gather: torch.Tensor  # [chunks * chunk]: flattened token index of each slot
    scatter: torch.Tensor  # [tokens]: slot of each flattened token
    chunk_group: torch.Tensor  # [chunks]: the group whose keys a chunk attends to
    key_bias: torch.Tensor | None  # [chunks, 1, 1, keys]: -inf on a group's padding keys
    chunk: int

    @property
    def chunks(self) -> int:
        return int(self.chunk_group.shape[0])


def chunk_size(tokens: int, groups: int) -> int:
    """A power of two near a quarter of the tokens per group, within [MIN_CHUNK, MAX_CHUNK]:
    the padding (under one chunk per group, plus the bound's spare chunks) stays a fraction of
    the tokens."""
    target = max(1, tokens // (4 * max(groups, 1)))
    size = 1 << (target.bit_length() - 1)
    return max(MIN_CHUNK, min(MAX_CHUNK, size))


def build(token_group: torch.Tensor, group_keys: list[int], keys: int, device,
          dtype) -> ChunkLayout:
    """The layout for flattened tokens with these groups (`token_group`, on the CPU), groups
    with `group_keys` real keys each out of `keys`."""
    token_group = token_group.reshape(-1).long().cpu()
    tokens, groups = int(token_group.numel()), len(group_keys)
    chunk = chunk_size(tokens, groups)
    counts = torch.bincount(token_group, minlength=groups)
    per_group = (counts + chunk - 1) // chunk  # chunks of each group
    chunks = -(-tokens // chunk) + groups  # a bound of sum(per_group): fixed shapes
    order = torch.argsort(token_group, stable=True)
    sorted_group = token_group[order]
    first_token = torch.cumsum(counts, 0) - counts  # each group's start in sorted order
    first_slot = (torch.cumsum(per_group, 0) - per_group) * chunk
    rank = torch.arange(tokens) - first_token[sorted_group]
    slots = torch.empty(tokens, dtype=torch.long)
    slots[order] = first_slot[sorted_group] + rank
    gather = torch.full((chunks * chunk,), int(order[0]) if tokens else 0, dtype=torch.long)
    gather[slots] = torch.arange(tokens)
    spare = int(sorted_group[0]) if tokens else 0  # spare chunks read a group with real keys
    chunk_group = torch.full((chunks,), spare, dtype=torch.long)
    used = int(per_group.sum())
    chunk_group[:used] = torch.repeat_interleave(torch.arange(groups), per_group)
    lengths = torch.tensor(group_keys)
    key_bias = None
    if bool((lengths < keys).any()):
        hidden = torch.arange(keys)[None, :] >= lengths[chunk_group][:, None]  # [chunks, keys]
        key_bias = torch.zeros(hidden.shape, dtype=dtype).masked_fill_(hidden, float("-inf"))
        key_bias = key_bias.to(device)[:, None, None]
    return ChunkLayout(gather.to(device), slots.to(device), chunk_group.to(device), key_bias,
                       chunk)


def attend(q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, layout: ChunkLayout,
           heads: int, fp32: bool = False) -> torch.Tensor:
    """Grouped attention of q [B, N, heads*d] over per-group keys/values [groups, L, heads*d]:
    [B, N, heads*d] in q's dtype."""
    b, n, inner = q.shape
    d = inner // heads
    m, c = layout.chunks, layout.chunk
    qc = q.reshape(b * n, inner).index_select(0, layout.gather).view(m, c, heads, d)
    kc = keys.index_select(0, layout.chunk_group).view(m, -1, heads, d)
    vc = values.index_select(0, layout.chunk_group).view(m, -1, heads, d)
    qc, kc, vc = (t.transpose(1, 2) for t in (qc, kc, vc))
    bias = layout.key_bias
    if fp32 and q.dtype != torch.float32:
        qc, kc, vc = qc.float(), kc.float(), vc.float()
        bias = bias.float() if bias is not None else None
    out = F.scaled_dot_product_attention(qc, kc, vc, attn_mask=bias)  # [m, heads, c, d]
    out = out.transpose(1, 2).reshape(m * c, inner).index_select(0, layout.scatter)
    out = out.view(b, n, inner)
    return out if out.dtype == q.dtype else out.to(q.dtype)


def pad_to(t: torch.Tensor, length: int) -> torch.Tensor:
    """[1, L, C] zero-padded to `length` keys (the key bias hides the padding)."""
    return F.pad(t, (0, 0, 0, length - t.shape[1])) if t.shape[1] < length else t
