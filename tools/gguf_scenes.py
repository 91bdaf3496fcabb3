"""A small random SD3.5 Medium written as a GGUF file (Q8_0) for the GGUF test (issue 21).

Users load quantized FLUX / SD3.5 / SDXL as GGUF files with city96's ComfyUI-GGUF node pack
(`UnetLoaderGGUF`): its weights stay quantized `GGMLTensor`s and its ops dequantize them in every
forward. The pack must work on such a MODEL as on any other. SD3's detection reads shapes from
the state dict, so the small model of `tools/sd3_scenes.py` goes through ComfyUI-GGUF's own
loader; 2-D weights whose rows split into 32-wide blocks are Q8_0, the rest F32 (as
ComfyUI-GGUF's convert script keeps 1-D tensors).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from tools import sd3_scenes

ARCH = "sd3"  # ComfyUI-GGUF's IMG_ARCH_LIST name


def write(path: Path, variant: str = "medium35", seed: int = 0) -> dict[str, int]:
    """Write the variant's random checkpoint to `path`; returns the count of tensors per type."""
    import gguf

    q8 = gguf.GGMLQuantizationType.Q8_0
    writer = gguf.GGUFWriter(path=None, arch=ARCH)
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0)
    counts = {"Q8_0": 0, "F32": 0}
    for name, tensor in sd3_scenes.state_dict(variant, seed).items():
        data = tensor.numpy().astype(np.float32)
        if data.ndim == 2 and data.shape[-1] % 32 == 0:
            writer.add_tensor(name, gguf.quants.quantize(data, q8), raw_dtype=q8)
            counts["Q8_0"] += 1
        else:
            writer.add_tensor(name, data)
            counts["F32"] += 1
    writer.write_header_to_file(path=str(path))
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return counts
