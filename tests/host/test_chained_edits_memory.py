"""Thirty chained edits, every memory kept alive as ComfyUI's cache keeps each node's output
(issue 19, "not yet tried"): what stays resident is the layers each edit made, nothing more.

A verb shares every layer it does not rebuild with the memory it read (values are frozen, so
sharing is safe): AddLayer on top makes one layer, an EditLayer of layer k in n makes n - k, a
DeleteLayer of k without a heal makes n - 1 - k. So the tensors all 31 memories hold together
are at most the background plus those layers (less: a re-made layer still shares its prompt
embedding and masks), and the live CPU tensors of the process (every tensor the
garbage collector can reach: the pack's caches and patches included) grow by no more. A copy of
the stack per edit would hold about 15 times as much after 30 edits.
"""
from __future__ import annotations

import gc

import pytest
import torch

from tools import scenes

pytestmark = pytest.mark.host
SIZE, STEPS, EDITS = 512, 1, 30


def _storages(memories) -> dict[int, int]:
    """Distinct tensor storages the memories hold: data pointer -> bytes. (The tensors held:
    `stored_tensors`, since `tensors()` assembles a patched trajectory's x anew, issue 22.)"""
    found = {}
    for memory in memories:
        for _, t in memory.stored_tensors():
            found[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
    return found


def _live_cpu_tensor_bytes() -> int:
    gc.collect()
    found = {}
    for o in gc.get_objects():
        if isinstance(o, torch.Tensor) and o.device.type == "cpu":
            st = o.untyped_storage()
            found[st.data_ptr()] = st.nbytes()
    return sum(found.values())


def test_thirty_chained_edits_hold_only_the_layers_they_made(host, alpha):
    lo, eo = host.layer_ops, host.edit_ops
    start = lo.start_memory(alpha, scenes.cond(1, tokens=20), scenes.negative(), SIZE, SIZE,
                            seed=1, steps=STEPS, cfg=4.5, sampler_name="euler",
                            scheduler="normal")

    def add(memory, i):
        box = (0.05 + 0.02 * (i % 12), 0.1, 0.45 + 0.02 * (i % 12), 0.6)
        return lo.add_layer(memory, alpha, scenes.cond(100 + i, tokens=20),
                            scenes.box_mask(SIZE, *box), seed=i, name=f"object {i}")

    kept = [start, add(start, 0)]
    per_layer = kept[1].nbytes() - kept[0].nbytes()  # one object layer: all are the same shape
    live_before = _live_cpu_tensor_bytes()
    made = 0  # layers the verbs' rules say were made after kept[1]
    for i in range(1, EDITS):
        memory, n = kept[-1], len(kept[-1].layers)
        if i % 6 == 5 and n > 3:  # re-roll a layer in the middle: it and those above are new
            k = n // 2
            kept.append(eo.edit_layer(memory, alpha, k, seed=1000 + i))
            made += n - k
        elif i % 8 == 7 and n > 3:  # delete the second object, no heal: those above are new
            kept.append(lo.delete_layer(memory, alpha, 2, regenerate_fraction=0.0))
            made += n - 1 - 2
        else:
            kept.append(add(memory, i))
            made += 1
    assert len(kept) == EDITS + 1 and made > EDITS
    held = sum(_storages(kept).values())
    expected = kept[1].nbytes() + made * per_layer
    growth = _live_cpu_tensor_bytes() - live_before
    print(f"30 chained edits: {len(kept[-1].layers)} layers on top, {made} layers made; "
          f"memories hold {held / 1e6:.2f} MB (rule: {expected / 1e6:.2f} MB, "
          f"{per_layer / 1e6:.3f} MB a layer); live CPU tensors grew {growth / 1e6:.2f} MB; "
          f"one copy of the stack per edit would be "
          f"{sum(m.nbytes() for m in kept) / 1e6:.2f} MB")
    assert held <= expected * 1.01, "an edit copied layers it did not rebuild"
    assert growth <= held - kept[1].nbytes() + 2 * 2**20, (
        "the process holds tensors beyond the memories' own (a cache or patch kept alive)")
