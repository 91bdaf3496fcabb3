"""A GGUF-quantized MODEL (issue 21: "GGUF-loaded models must work"), loaded as users load one:
city96's ComfyUI-GGUF node pack (`UnetLoaderGGUF`, loaded with ComfyUI's own custom-node
loader from ComfyUI's custom_nodes folder) reading a Q8_0 file of a small random SD3.5 Medium
(`tools/gguf_scenes.py`). Its weights stay quantized and are dequantized in every forward.

ComfyUI-GGUF is not on the package registries: this test is skipped, saying why, unless it is
in `$COMFYUI_PATH/custom_nodes/ComfyUI-GGUF` (with `gguf` from requirements-test.txt)."""
import asyncio
import os
from pathlib import Path

import pytest
import torch
from attention_probe import assert_joint_routing
from joint_start import start_joint

from tools import gguf_scenes, scenes
from tools import sd3_scenes as s3
from tools.family_kits import KITS, FamilyKit

pytestmark = pytest.mark.host
SIZE = s3.SIZE
FILE = "layermem_tiny_sd35m_q8.gguf"


@pytest.fixture(scope="module")
def gguf_loader(host, tmp_path_factory):
    """ComfyUI-GGUF's UnetLoaderGGUF, and the random Q8_0 file in a `unet` folder it lists."""
    pytest.importorskip("gguf", reason="gguf is in requirements-test.txt: run tools/setup.sh")
    root = Path(os.environ.get("COMFYUI_PATH", Path.home() / "ComfyUI"))
    pack = root / "custom_nodes" / "ComfyUI-GGUF"
    if not (pack / "__init__.py").is_file():
        pytest.skip(f"ComfyUI-GGUF is not in {pack.parent} (git clone "
                    "https://github.com/city96/ComfyUI-GGUF there to run this test)")
    if "UnetLoaderGGUF" not in host.nodes.NODE_CLASS_MAPPINGS:
        assert asyncio.run(host.nodes.load_custom_node(str(pack), module_parent="custom_nodes"))
    folder = tmp_path_factory.mktemp("unet")
    counts = gguf_scenes.write(folder / FILE)
    assert counts["Q8_0"] > 0
    import folder_paths
    folder_paths.add_model_folder_path("unet", str(folder))
    return host.nodes.NODE_CLASS_MAPPINGS["UnetLoaderGGUF"]()


@pytest.fixture(scope="module")
def gguf_model(gguf_loader):
    return gguf_loader.load_unet(FILE)[0]


def _quantized(model) -> int:
    return sum(type(p).__name__ == "GGMLTensor" and getattr(p, "tensor_type", None) is not None
               and p.tensor_type.name == "Q8_0"
               for p in model.model.diffusion_model.parameters())


def _start(host, model):
    return start_joint(host.layer_ops, s3, model=model)


def test_a_gguf_model_is_sd3_and_keeps_the_background_bit_for_bit(host, gguf_model):
    assert _quantized(gguf_model) > 0, "the loader dequantized everything: not a GGUF test"
    assert host.families.family_of(gguf_model) is host.families.get("sd3")
    bg = _start(host, gguf_model)
    added = host.layer_ops.add_layer(bg, gguf_model, s3.cond(4),
                                     scenes.box_mask(SIZE, 0.2, 0.2, 0.7, 0.6), seed=4)
    outside = added.top.latent_mask == 0
    assert torch.equal(added.top.trajectory.x[..., outside], bg.top.trajectory.x[..., outside])
    assert torch.equal(added.top.trajectory.final[..., outside],
                       bg.top.trajectory.final[..., outside])
    inside = added.top.latent_mask > 0
    assert not torch.equal(added.top.trajectory.final[..., inside],
                           bg.top.trajectory.final[..., inside])
    assert _quantized(gguf_model) > 0, "the run left the weights dequantized"


def test_mqd_routes_every_joint_call_of_a_gguf_model(host, gguf_model):
    """Every block's joint call of the quantized model gives the keys a token may not see
    exactly zero weight, and the routing leaves the MODEL as it was."""
    kit = FamilyKit("sd3_gguf", host.families.get("sd3"), SIZE, gguf_model, KITS["sd3"])
    bg = _start(host, gguf_model)
    layers = host.layer_ops.add_layer(bg, gguf_model, s3.cond(4),
                                      scenes.box_mask(SIZE, 0.2, 0.2, 0.7, 0.7), seed=4).layers
    assert_joint_routing(host, kit, layers, (SIZE // 16, SIZE // 16),
                         len(gguf_model.model.diffusion_model.joint_blocks))
    assert not gguf_model.model_options.get("transformer_options", {}).get(
        "optimized_attention_override")


def test_a_memory_of_the_float_checkpoint_continues_on_its_gguf(host, gguf_model):
    """The same checkpoint quantized (as fp16 / fp8 storage) is the same model to the memory:
    a background made with the float weights takes a layer from the Q8_0 file, exactly outside
    its mask."""
    bg = _start(host, s3.model("medium35"))
    added = host.layer_ops.add_layer(bg, gguf_model, s3.cond(4),
                                     scenes.box_mask(SIZE, 0.3, 0.3, 0.8, 0.8), seed=5)
    outside = added.top.latent_mask == 0
    assert torch.equal(added.top.trajectory.final[..., outside],
                       bg.top.trajectory.final[..., outside])
