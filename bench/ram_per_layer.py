"""RAM per cached layer (issue 12, item 8): chained AddLayer calls in-process, every output kept
alive as ComfyUI's cache keeps it; RSS, live CPU tensor storage, malloc heap and Python heap per
layer. Usage: python3 -m bench.ram_per_layer [layers=6]  (random PixArt-alpha, 512 px, 3 steps, CPU;
about 15 s a layer on 2 shared cores). LM_TRIM=1 calls glibc's malloc_trim(0) before every run and
every reading, which shows how much of RSS is only freed heap glibc has not given back."""
from __future__ import annotations

import ctypes
import gc
import os
import sys
import tempfile
import tracemalloc
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


class _MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t)
                for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                          "fsmblks", "uordblks", "fordblks", "keepcost")]


def _malloc() -> dict[str, int]:
    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = _MallInfo2
    m = libc.mallinfo2()
    return {"malloc in use": m.uordblks, "malloc free": m.fordblks}


def _live_tensor_bytes() -> int:
    import torch

    storages = {}
    for o in gc.get_objects():
        if isinstance(o, torch.Tensor) and o.device.type == "cpu":
            st = o.untyped_storage()
            storages[st.data_ptr()] = st.nbytes()
    return sum(storages.values())


def _trim() -> None:
    if os.environ.get("LM_TRIM") == "1":
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _snapshot(memory) -> dict[str, int]:
    import psutil

    gc.collect()
    _trim()
    return {"RSS": psutil.Process().memory_info().rss, "live CPU tensors": _live_tensor_bytes(),
            "memory.nbytes()": memory.nbytes(), "Python heap": tracemalloc.get_traced_memory()[0],
            **_malloc()}


def main(layers: int) -> None:
    from tools import comfy_host

    tmp = Path(tempfile.mkdtemp(prefix="lm_ram_"))
    (tmp / "models").mkdir()
    (tmp / "custom_nodes").mkdir()
    host = comfy_host.boot(comfy_host.find_comfyui(), tmp / "models", tmp / "custom_nodes")
    import comfy.sd

    from tools import random_models, scenes

    alpha = comfy.sd.load_diffusion_model(
        random_models.write_models(str(tmp / "models"))["pixart_alpha_512"])
    node = host.nodes.NODE_CLASS_MAPPINGS
    kept = [node["LayerMem_LayerMemory"].execute(alpha, scenes.cond(1, tokens=20),
                                                 scenes.negative(),
                                        512, 512, 0, 3, 4.5, "dpmpp_2m", "karras").result]

    def add(i: int) -> None:
        _trim()
        mask = scenes.box_mask(512, 0.1 + 0.02 * (i % 10), 0.1, 0.6, 0.6)
        kept.append(node["LayerMem_AddLayer"].execute(kept[-1][0], alpha, scenes.cond(100 + i,
                                                                                      tokens=20),
                                             mask, i).result)

    for i in range(2):  # warm-up: lazy initialisation, allocator growth
        add(i)
    tracemalloc.start()
    before = _snapshot(kept[-1][0])
    rss = []
    for i in range(layers):
        add(10 + i)
        rss.append(_snapshot(kept[-1][0])["RSS"])
    after = _snapshot(kept[-1][0])
    for key in before:
        print(f"{key:>18}: {(after[key] - before[key]) / layers / 1e6:+.3f} MB per layer")
    mean_i, mean_r = (layers - 1) / 2, sum(rss) / layers
    slope = (sum((i - mean_i) * (r - mean_r) for i, r in enumerate(rss))
             / sum((i - mean_i) ** 2 for i in range(layers)))
    print(f"{'RSS (fitted slope)':>18}: {slope / 1e6:+.3f} MB per layer over {layers} layers")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 6)
