"""Mixing families, wrong conditioning widths and SDXL without pooled output are refused before
any sampling, naming the input and the fix; the memory passed in is unchanged."""

import pytest
import torch
from refusals import refused as _refused

from tools import scenes
from tools import unet_scenes as us

pytestmark = pytest.mark.host


@pytest.fixture(scope="module")
def memories(host, models):
    out = {
        "pixart": host.layer_ops.start_memory(
            models("pixart_alpha_512"),
            scenes.cond(1),
            scenes.negative(),
            512,
            512,
            seed=1,
            steps=2,
            cfg=4.5,
            sampler_name="euler",
            scheduler="normal",
        )
    }
    for family in ("sd15", "sdxl"):
        size = us.SIZE[family]
        out[family] = host.layer_ops.start_memory(
            us.model(family),
            us.cond(family, 1),
            us.cond(family, 2),
            size,
            size,
            seed=1,
            steps=2,
            cfg=5.0,
            sampler_name="euler",
            scheduler="normal",
        )
    return out


def test_families_are_detected(host, models):
    model_checks = host.model_checks
    assert model_checks.require_supported(us.model("sd15")).name == "sd15"
    assert model_checks.require_supported(us.model("sdxl")).name == "sdxl"
    assert model_checks.require_supported(models("pixart_alpha_512")).name == "pixart"
    for family in ("sd15", "sdxl"):
        fp = model_checks.fingerprint(us.model(family))
        assert fp.family == family and fp.latent_channels == 4 and fp.depth > 0
        assert fp.micro_condition == (family == "sdxl")
    with pytest.raises(host.errors.LayerMemoryError, match="not PixArt"):
        model_checks.require_family(us.model("sdxl"), host.families.get("pixart"))


@pytest.mark.parametrize("from_file", [False, True], ids=["in_memory", "saved_and_loaded"])
@pytest.mark.parametrize(
    "memory_family,model_family",
    [("sdxl", "pixart"), ("pixart", "sdxl"), ("sdxl", "sd15"), ("sd15", "sdxl")],
)
def test_memory_of_one_family_with_another_model(
    host, models, memories, no_sampling, memory_family, model_family, from_file, tmp_path
):
    memory = memories[memory_family]
    if from_file:  # a memory file of one family loaded into a graph of the other
        path = str(tmp_path / f"{memory_family}.safetensors")
        host.serialization.save(memory, path)
        memory = host.serialization.load(path)
    model = models("pixart_alpha_512") if model_family == "pixart" else us.model(model_family)
    digest = scenes.memory_digest(memory)
    size = memory.image_size[0]
    labels = {"pixart": "PixArt", "sd15": "SD 1.5", "sdxl": "SDXL"}
    err = _refused(
        host,
        host.layer_ops.add_layer,
        memory,
        model,
        us.cond("sdxl", 3),
        torch.ones(1, size, size),
        0,
        match=f"made with a {labels[memory_family]} model; this is a {labels[model_family]}",
        input_name="model",
    )
    assert labels[memory_family] in err.fix
    _refused(
        host,
        host.layer_ops.delete_layer,
        memory,
        model,
        "0",
        match="which cannot be deleted",
        input_name="layer",
    )
    assert scenes.memory_digest(memory) == digest


def test_same_family_other_weights(host, memories, no_sampling):
    other = us.fresh_model("sdxl", seed=7)
    _refused(
        host,
        host.layer_ops.add_layer,
        memories["sdxl"],
        other,
        us.cond("sdxl", 3),
        torch.ones(1, 256, 256),
        0,
        match="weights differ",
        input_name="model",
    )


@pytest.mark.parametrize(
    "family,wrong,match",
    [
        ("sdxl", 768, "CLIP-L, SD 1.5"),
        ("sdxl", 4096, "T5-XXL"),
        ("sd15", 2048, "SDXL"),
        ("sd15", 4096, "T5-XXL"),
    ],
)
def test_conditioning_of_another_family(host, memories, no_sampling, family, wrong, match):
    memory = memories[family]
    size = us.SIZE[family]
    bad = [[torch.zeros(1, 77, wrong), {"pooled_output": torch.zeros(1, 1280)}]]
    _refused(
        host,
        host.layer_ops.add_layer,
        memory,
        us.model(family),
        bad,
        torch.ones(1, size, size),
        0,
        match=match,
        input_name="positive",
    )
    _refused(
        host,
        host.layer_ops.add_layer,
        memory,
        us.model(family),
        us.cond(family, 4),
        torch.ones(1, size, size),
        0,
        negative=bad,
        match=match,
        input_name="negative",
    )
    _refused(
        host,
        host.layer_ops.start_memory,
        us.model(family),
        bad,
        us.cond(family, 2),
        size,
        size,
        0,
        2,
        5.0,
        "euler",
        "normal",
        match=match,
        input_name="positive",
    )


def test_sdxl_without_pooled_output(host, memories, no_sampling):
    no_pooled = us.cond("sdxl", 5, pooled=False)
    _refused(
        host,
        host.layer_ops.add_layer,
        memories["sdxl"],
        us.model("sdxl"),
        no_pooled,
        torch.ones(1, 256, 256),
        0,
        match="pooled output",
        input_name="positive",
    )
    _refused(
        host,
        host.layer_ops.start_memory,
        us.model("sdxl"),
        us.cond("sdxl", 1),
        no_pooled,
        256,
        256,
        0,
        2,
        5.0,
        "euler",
        "normal",
        match="pooled output",
        input_name="negative",
    )


def test_unet_sizes(host, no_sampling):
    _refused(
        host,
        host.layer_ops.start_memory,
        us.model("sd15"),
        us.cond("sd15", 1),
        us.cond("sd15", 2),
        132,
        128,
        0,
        2,
        5.0,
        "euler",
        "normal",
        match="multiple of 8",
        input_name="width",
    )
    _refused(
        host,
        host.layer_ops.start_memory,
        us.model("sdxl"),
        us.cond("sdxl", 1),
        us.cond("sdxl", 2),
        256,
        32,
        0,
        2,
        5.0,
        "euler",
        "normal",
        match="below 64",
        input_name="width/height",
    )


def test_unsupported_unet_is_refused(host, no_sampling):
    import comfy.model_patcher

    linear = comfy.model_patcher.ModelPatcher(
        torch.nn.Linear(4, 4), torch.device("cpu"), torch.device("cpu")
    )
    _refused(
        host,
        host.layer_ops.start_memory,
        linear,
        us.cond("sd15", 1),
        us.cond("sd15", 2),
        128,
        128,
        0,
        2,
        5.0,
        "euler",
        "normal",
        match="not PixArt, SD 1.5, SDXL, FLUX.1, SD3.5, Chroma or Qwen-Image",
        input_name="model",
    )
