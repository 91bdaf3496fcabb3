"""Bad input is refused before any sampling, names the input and the fix, and changes no memory."""
import pytest
import scenes
import torch
from refusals import refused as _refused

pytestmark = pytest.mark.host


def test_non_pixart_model(host, background, no_sampling):
    import comfy.model_patcher

    other = comfy.model_patcher.ModelPatcher(torch.nn.Linear(4, 4), torch.device("cpu"),
                                             torch.device("cpu"))
    digest = scenes.memory_digest(background)
    N = host.nodes.NODE_CLASS_MAPPINGS
    _refused(host, N["AddLayer"].execute, background, other, scenes.cond(1), torch.ones(1, 64, 64),
             0, match="not PixArt", input_name="model")
    _refused(host, N["LayerMemory"].execute, other, scenes.cond(1), scenes.negative(), 512, 512, 0,
             2, 4.5, "euler", "normal", match="not PixArt", input_name="model")
    _refused(host, N["BCGBlend"].execute, other, background, torch.ones(1, 64, 64),
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
    _refused(host, N["LoadPixArt"].execute, "missing.safetensors", host.labels.NO_TEXT_ENCODER,
             "taesd", "default", match="not found", input_name="unet_name")
    folder = host.folder_paths.get_folder_paths("diffusion_models")[0]
    save_file({"weight": torch.zeros(2, 2)}, f"{folder}/not_a_model.safetensors")
    _refused(host, N["LoadPixArt"].execute, "not_a_model.safetensors", host.labels.NO_TEXT_ENCODER,
             "taesd", "default", match="could not read", input_name="unet_name")


def test_unknown_sampler_or_scheduler(host, alpha, no_sampling):
    _refused(host, host.layer_ops.start_memory, alpha, scenes.cond(1), scenes.negative(), 512, 512,
             0, 2, 4.5, "nope", "normal", match="unknown sampler", input_name="sampler_name")
    _refused(host, host.layer_ops.start_memory, alpha, scenes.cond(1), scenes.negative(), 512, 512,
             0, 2, 4.5, "euler", "nope", match="unknown scheduler", input_name="scheduler")
