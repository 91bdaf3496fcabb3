"""Bad input is refused before any sampling, names the input and the fix, and changes no memory."""
import pytest
import torch
from refusals import refused as _refused

from tools import scenes

pytestmark = pytest.mark.host


def test_non_pixart_model(host, background, no_sampling):
    import comfy.model_patcher

    other = comfy.model_patcher.ModelPatcher(torch.nn.Linear(4, 4), torch.device("cpu"),
                                             torch.device("cpu"))
    digest = scenes.memory_digest(background)
    N = host.nodes.NODE_CLASS_MAPPINGS
    _refused(host, N["LayerMem_AddLayer"].execute, background, other, scenes.cond(1),
             torch.ones(1, 64, 64), 0, match="not PixArt", input_name="model")
    _refused(host, N["LayerMem_LayerMemory"].execute, other, scenes.cond(1), scenes.negative(),
             512, 512, 0,
             2, 4.5, "euler", "normal", match="not PixArt", input_name="model")
    _refused(host, N["LayerMem_BCGBlend"].execute, other, background, torch.ones(1, 64, 64),
             match="not PixArt", input_name="model")
    assert scenes.memory_digest(background) == digest


def test_conditioning_of_another_width(host, alpha, background, no_sampling):
    clip_l_like = [[torch.zeros(1, 77, 768), {}]]
    _refused(host, host.layer_ops.add_layer, background, alpha, clip_l_like, torch.ones(1, 64, 64),
             0, match="T5-XXL", input_name="positive")
    _refused(host, host.layer_ops.start_memory, alpha, scenes.cond(1), clip_l_like, 512, 512, 0, 2,
             4.5, "euler", "normal", match="T5-XXL", input_name="negative")


def test_memory_used_with_another_model(host, models, background, no_sampling):
    sigma = models("pixart_sigma_512")
    digest = scenes.memory_digest(background)
    _refused(host, host.layer_ops.add_layer, background, sigma, scenes.cond(1),
             torch.ones(1, 64, 64), 0, match="another model", input_name="model")
    _refused(host, host.layer_ops.delete_layer, background, sigma, "0", match="cannot be deleted",
             input_name="layer")
    assert scenes.memory_digest(background) == digest


def test_same_architecture_other_weights(host, models, background, no_sampling):
    other = models("pixart_alpha_1024")  # same family, other checkpoint (and size)
    _refused(host, host.layer_ops.add_layer, background, other, scenes.cond(1),
             torch.ones(1, 64, 64), 0, match="another model", input_name="model")


def test_empty_mask_refused_with_reason(host, alpha, three_layers, no_sampling):
    memory = three_layers[1]
    digest = scenes.memory_digest(memory)
    _refused(host, host.layer_ops.add_layer, memory, alpha, scenes.cond(1),
             torch.zeros(1, 512, 512), 0, match="empty", input_name="mask")
    tiny = torch.zeros(1, 512, 512)
    tiny[0, 0, 0] = 1e-9  # vanishes when resized to the latent grid
    _refused(host, host.layer_ops.add_layer, memory, alpha, scenes.cond(1), tiny, 0, match="empty",
             input_name="mask")
    _refused(host, host.layer_ops.add_layer, memory, alpha, scenes.cond(1), torch.ones(1, 512, 768),
             0, match="aspect ratio", input_name="mask")
    _refused(host, host.layer_ops.add_layer, memory, alpha, scenes.cond(1), torch.ones(2, 512, 512),
             0, match="batch of 2", input_name="mask")
    assert scenes.memory_digest(memory) == digest


def test_full_mask_is_allowed(host, alpha, background):
    full = host.layer_ops.add_layer(background, alpha, scenes.cond(1), torch.ones(1, 256, 256), 0)
    assert full.top.latent_mask.eq(1).all() and full.top.token_mask.all()


def test_layer_index_out_of_range_or_unknown_name(host, alpha, three_layers, no_sampling):
    memory = three_layers[3]
    digest = scenes.memory_digest(memory)
    for spec, match in (("4", "out of range"), ("-5", "out of range"),
                        ("0", "background, which cannot be deleted"),
                        ("no such thing", "no layer is named")):
        _refused(host, host.layer_ops.delete_layer, memory, alpha, spec, match=match,
                 input_name="layer")
    _refused(host, host.layer_ops.delete_layer, memory, alpha, "1", regenerate_fraction=-0.1,
             match="outside", input_name="regenerate_fraction")
    assert scenes.memory_digest(memory) == digest


def test_bad_sizes_and_unblended_fraction(host, alpha, background, no_sampling):
    _refused(host, host.layer_ops.start_memory, alpha, scenes.cond(1), scenes.negative(), 256, 256,
             0, 2, 4.5, "euler", "normal", match="below 512", input_name="width/height")
    _refused(host, host.layer_ops.start_memory, alpha, scenes.cond(1), scenes.negative(), 520, 512,
             0, 2, 4.5, "euler", "normal", match="multiple of 16", input_name="width")
    _refused(host, host.layer_ops.add_layer, background, alpha, scenes.cond(1),
             torch.ones(1, 64, 64), 0, unblended_fraction=1.0, match="outside",
             input_name="unblended_fraction")


def test_wrong_object_on_memory_input(host, alpha, no_sampling):
    _refused(host, host.layer_ops.add_layer, {"samples": torch.zeros(1, 4, 64, 64)}, alpha,
             scenes.cond(1), torch.ones(1, 64, 64), 0, match="LAYER_MEMORY", input_name="memory")


def test_load_pixart_refuses_missing_and_foreign_files(host, tmp_path):
    from safetensors.torch import save_file

    N = host.nodes.NODE_CLASS_MAPPINGS
    _refused(host, N["LayerMem_LoadPixArt"].execute, "missing.safetensors",
             host.labels.NO_TEXT_ENCODER,
             "taesd", "default", match="not found", input_name="unet_name")
    folder = host.folder_paths.get_folder_paths("diffusion_models")[0]
    save_file({"weight": torch.zeros(2, 2)}, f"{folder}/not_a_model.safetensors")
    _refused(host, N["LayerMem_LoadPixArt"].execute, "not_a_model.safetensors",
             host.labels.NO_TEXT_ENCODER,
             "taesd", "default", match="could not read", input_name="unet_name")


def test_unknown_sampler_or_scheduler(host, alpha, no_sampling):
    _refused(host, host.layer_ops.start_memory, alpha, scenes.cond(1), scenes.negative(), 512, 512,
             0, 2, 4.5, "nope", "normal", match="unknown sampler", input_name="sampler_name")
    _refused(host, host.layer_ops.start_memory, alpha, scenes.cond(1), scenes.negative(), 512, 512,
             0, 2, 4.5, "euler", "nope", match="unknown scheduler", input_name="scheduler")


class _NoEncodeVae:
    """A VAE stand-in that fails when asked to encode: refusals come before the encode."""

    def encode(self, *a, **k):
        raise AssertionError("the VAE encode started before the input was checked")


class _HugeEncodeVae(_NoEncodeVae):
    """ComfyUI's VAE interface for the estimate (`memory_used_encode`, `vae_dtype`, `device`),
    saying an encode needs 1 PB: the node must refuse before encoding."""

    vae_dtype, device = torch.float32, "cpu"

    def memory_used_encode(self, shape, dtype):
        assert shape == (1, 3, 512, 512) and dtype == torch.float32  # ComfyUI's [B, C, H, W]
        return 1 << 50


def test_a_picture_whose_vae_encode_cannot_fit_is_refused_before_the_encode(host, alpha,
                                                                            no_sampling):
    N = host.nodes.NODE_CLASS_MAPPINGS
    start = (scenes.cond(1), scenes.negative(), 2, 4.5, "dpmpp_2m", "karras", 0)
    error = _refused(host, N["LayerMem_LayerMemoryFromImage"].execute, alpha, _HugeEncodeVae(),
                     torch.rand(1, 512, 512, 3), *start, match="encoding the 512x512 picture "
                     r"needs about 1048576\.0 GiB", input_name="image")
    assert "scale the picture down" in error.fix


def test_the_red_team_4096_picture_is_refused_before_the_vae_encode(host, alpha, no_sampling,
                                                                    monkeypatch):
    """Issue 19: a 4096x4096 picture passed the size rule, then the VAE encode grew the server
    to 14 GB. With 8 GiB free it is refused before the real VAE (TAESD) encodes anything."""
    N = host.nodes.NODE_CLASS_MAPPINGS
    vae = host.nodes.VAELoader().load_vae("taesd")[0]
    assert host.limits.vae_encode_bytes(vae, (1, 4096, 4096, 3)) > 8 << 30  # ComfyUI's estimate
    monkeypatch.setattr(vae, "encode", _NoEncodeVae().encode)
    monkeypatch.setattr(host.limits, "query_free", lambda device: 8 << 30)
    start = (scenes.cond(1), scenes.negative(), 2, 4.5, "dpmpp_2m", "karras", 0)
    with pytest.raises(host.errors.LayerMemoryError, match="GiB is free") as e:
        N["LayerMem_LayerMemoryFromImage"].execute(alpha, vae, torch.zeros(1, 4096, 4096, 3),
                                                   *start)
    assert e.value.input_name in ("width/height", "image")


def test_adaptive_sampler_refused_by_every_node_that_starts_a_memory(host, alpha, no_sampling):
    N = host.nodes.NODE_CLASS_MAPPINGS
    start = (scenes.cond(1), scenes.negative())
    for error in (
            _refused(host, N["LayerMem_LayerMemory"].execute, alpha, *start, 512, 512, 0, 2, 4.5,
                     "dpm_adaptive", "normal", match="not fixed by steps",
                     input_name="sampler_name"),
            _refused(host, N["LayerMem_LayerMemoryFromImage"].execute, alpha, _NoEncodeVae(),
                     torch.rand(1, 512, 512, 3), *start, 2, 4.5, "dpm_adaptive", "karras", 0,
                     match="not fixed by steps", input_name="sampler_name")):
        usable = error.fix.split(": ", 1)[1].split(", ")
        assert "dpm_adaptive" not in usable and {"dpmpp_2m", "euler", "dpm_fast"} <= set(usable)
    assert host.verb_toolkit.fixed_step_samplers() == usable


def _fixed_size(fix: str) -> tuple[int, int]:
    import re

    w, h = re.search(r" to (\d+)x(\d+)", fix).groups()
    return int(w), int(h)


def test_picture_size_fix_is_one_that_works(host, alpha, no_sampling):
    N = host.nodes.NODE_CLASS_MAPPINGS
    start = (scenes.cond(1), scenes.negative(), 2, 4.5, "dpmpp_2m", "karras", 0)
    for (w, h), verb, size in (((17, 1000), "upscale", (512, 1008)),
                               ((1000, 17), "upscale", (1008, 512)),
                               ((520, 1000), "crop", (512, 992))):
        error = _refused(host, N["LayerMem_LayerMemoryFromImage"].execute, alpha, _NoEncodeVae(),
                         torch.rand(1, h, w, 3), *start, match="the picture is",
                         input_name="image")
        assert error.fix.startswith(f"{verb} it first") and _fixed_size(error.fix) == size
        assert (verb == "crop") == ("ImageCrop" in error.fix)
        image = host.nodes.ImageScale().upscale(torch.rand(1, h, w, 3), "bilinear", *size,
                                                "disabled")[0]
        host.picture.check_picture(image, host.families.get("pixart"))  # the named size is taken


def test_one_rule_for_layer_names_numbers_are_refused_everywhere(host, alpha, three_layers,
                                                                  no_sampling):
    N = host.nodes.NODE_CLASS_MAPPINGS
    memory = three_layers[3]
    digest = scenes.memory_digest(memory)
    start = (scenes.cond(1), scenes.negative())
    for number in ("2", " -1 ", "007"):
        calls = (
            (N["LayerMem_AddLayer"].execute, (memory, alpha, scenes.cond(5), torch.ones(1, 64, 64),
                                              0),
             {"name": number}, "name"),
            (N["LayerMem_EditLayer"].execute, (memory, alpha, "1", 9), {"name": number}, "name"),
            (N["LayerMem_LayerMemoryFromImage"].execute, (alpha, _NoEncodeVae(), torch.rand(1, 512,
                                                                                            512, 3),
                                                 *start, 2, 4.5, "dpmpp_2m", "karras", 0),
             {"name": number}, "name"),
            (N["LayerMem_LayerMemory"].execute, (alpha, *start, 512, 512, 0, 2, 4.5, "euler",
                                                 "normal"),
             {"name": number}, "name"),
            (N["LayerMem_RenameLayer"].execute, (memory, "1", number), {}, "new_name"),
        )
        for fn, args, kwargs, input_name in calls:
            _refused(host, fn, *args, **kwargs, match="is a number", input_name=input_name)
    assert scenes.memory_digest(memory) == digest
    for name in ("car 2", "\uff12", "+2", "2b"):  # not read as an index by a `layer` input
        renamed = N["LayerMem_RenameLayer"].execute(memory, "1", name).result[0]
        assert renamed.resolve(name) == 1
