"""The pack's nodes with an SDXL MODEL, as a graph would call them: LayerMemory -> AddLayer ->
EditLayer -> DeleteLayer, and BCGBlend with ComfyUI's stock sampler (SDXL pooled output and
size conditioning reach the model through the stock path)."""

import pytest
import torch

from tools import scenes
from tools import unet_scenes as us

pytestmark = pytest.mark.host
SIZE = us.SIZE["sdxl"]


@pytest.fixture(scope="module")
def sdxl_nodes(host):
    return host.nodes.NODE_CLASS_MAPPINGS


def test_layer_nodes_with_sdxl(host, sdxl_nodes):
    N, model = sdxl_nodes, us.model("sdxl")
    bg, latent = (
        N["LayerMem_LayerMemory"]
        .execute(
            model,
            us.cond("sdxl", 1),
            us.cond("sdxl", 2),
            SIZE,
            SIZE,
            5,
            2,
            6.0,
            "dpmpp_2m",
            "karras",
        )
        .result[:2]
    )
    assert bg.fingerprint.family == "sdxl" and latent["samples"].shape == (
        1,
        4,
        SIZE // 8,
        SIZE // 8,
    )
    box = scenes.box_mask(SIZE, 0.2, 0.2, 0.6, 0.6)
    one = N["LayerMem_AddLayer"].execute(bg, model, us.cond("sdxl", 3), box, 6, name="a").result[0]
    two = (
        N["LayerMem_AddLayer"]
        .execute(
            one, model, us.cond("sdxl", 4), scenes.box_mask(SIZE, 0.5, 0.4, 0.9, 0.9), 7, name="b"
        )
        .result[0]
    )
    edited = N["LayerMem_EditLayer"].execute(two, model, "a", 8, positive=us.cond("sdxl",
                                                                                  5)).result[0]
    assert [layer.name for layer in edited.layers] == ["background", "a", "b"]
    assert edited.layers[1].positive.pooled is not None
    deleted = N["LayerMem_DeleteLayer"].execute(edited, model, "a", 0.5, 0).result[0]
    assert [layer.name for layer in deleted.layers] == ["background", "b"]
    # EditLayer and DeleteLayer heal a region grown by 2 latent pixels (their default)
    grown = host.masks.grow(torch.maximum(one.top.latent_mask, two.top.latent_mask), 2)
    outside = grown == 0
    for memory in (one, two, edited, deleted):
        assert torch.equal(
            memory.top.trajectory.final[..., outside], bg.top.trajectory.final[..., outside]
        )


def test_bcgblend_with_the_stock_sampler(host, sdxl_nodes):
    import comfy.sample

    model = us.model("sdxl")
    bg = host.layer_ops.start_memory(
        model,
        us.cond("sdxl", 1),
        us.cond("sdxl", 2),
        SIZE,
        SIZE,
        seed=5,
        steps=2,
        cfg=6.0,
        sampler_name="euler",
        scheduler="normal",
    )
    mask = scenes.box_mask(SIZE, 0.2, 0.2, 0.6, 0.6)
    patched = sdxl_nodes["LayerMem_BCGBlend"].execute(model, bg, mask, 0, 0).result[0]
    s = bg.schedule
    latent = torch.zeros(1, 4, SIZE // 8, SIZE // 8)
    out = comfy.sample.sample(
        patched,
        comfy.sample.prepare_noise(latent, 7),
        s.steps,
        s.cfg,
        s.sampler_name,
        s.scheduler,
        us.cond("sdxl", 9),
        us.cond("sdxl", 2),
        latent,
        seed=7,
    )
    outside = host.masks.to_latent_mask(mask, (SIZE // 8, SIZE // 8)) == 0
    ref = bg.composite_latent()["samples"]
    assert torch.equal(out[..., outside], ref[..., outside])
    assert not torch.equal(out[..., ~outside], ref[..., ~outside])


@pytest.mark.parametrize("family", ["sd15", "sdxl"])
def test_an_odd_latent_size_saves_and_loads_for_a_unet(host, sdxl_nodes, tmp_path, family):
    """SD 1.5 / SDXL take any multiple of 8 px, so a latent side may be odd (136 px -> 17): the
    memory LayerMemory made must load again (the even-latent rule is PixArt's 2x2 patches only)."""
    N, model = sdxl_nodes, us.model(family)
    width, height = 136, 128
    bg = N["LayerMem_LayerMemory"].execute(model, us.cond(family, 1), us.cond(family, 2), width,
                                           height,
                                  5, 1, 6.0, "euler", "normal").result[0]
    assert bg.top.trajectory.final.shape[-2:] == (16, 17)
    path = tmp_path / "odd.safetensors"
    host.serialization.save(bg, str(path))
    loaded = host.serialization.load(str(path))
    assert torch.equal(loaded.top.trajectory.final, bg.top.trajectory.final)
    # PixArt keeps its rule: the same file claiming a PixArt fingerprint is refused with the reason
    import dataclasses

    pixart = dataclasses.replace(bg, fingerprint=dataclasses.replace(bg.fingerprint,
                                                                    family="pixart"))
    data = host.serialization.to_bytes(pixart)
    with pytest.raises(host.errors.LayerMemoryError, match="not a multiple of 2"):
        host.serialization.from_bytes(data, "odd.safetensors")
