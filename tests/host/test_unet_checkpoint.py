"""An SD 1.5 checkpoint file that ComfyUI's own detection recognises (model_channels 320, one
level, random weights) loads through the stock checkpoint loader and works end to end."""

import pytest
import torch

from tools import scenes
from tools import unet_scenes as us

pytestmark = pytest.mark.host


@pytest.fixture(scope="module")
def detected(host, models_dir):
    import comfy.sd

    from tools import random_models

    path = random_models.write_unet_models(
        str(models_dir), (random_models.SD15_DETECTABLE,), dtype=torch.float16
    )["sd15_detectable"]
    # CheckpointLoaderSimple's own code path (this file has no text encoder or VAE to load)
    model, *_ = comfy.sd.load_checkpoint_guess_config(path, output_vae=False, output_clip=False)
    return model


def test_detected_as_sd15_and_layers_work(host, detected):
    import comfy.supported_models

    assert isinstance(detected.model.model_config, comfy.supported_models.SD15)
    assert host.model_checks.require_supported(detected).name == "sd15"
    bg = host.layer_ops.start_memory(
        detected,
        us.cond("sd15", 1),
        us.cond("sd15", 2),
        128,
        128,
        seed=3,
        steps=2,
        cfg=5.0,
        sampler_name="euler",
        scheduler="normal",
    )
    added = host.layer_ops.add_layer(
        bg, detected, us.cond("sd15", 3), scenes.box_mask(128, 0.25, 0.25, 0.75, 0.75), seed=4
    )
    outside = added.top.latent_mask == 0
    assert torch.equal(
        added.top.trajectory.final[..., outside], bg.top.trajectory.final[..., outside]
    )
    assert not torch.equal(
        added.top.trajectory.final[..., ~outside], bg.top.trajectory.final[..., ~outside]
    )
    assert added.fingerprint.image_model == "SD15"
    with pytest.raises(host.errors.LayerMemoryError, match="weights differ|another model"):
        host.layer_ops.add_layer(
            added, us.model("sd15"), us.cond("sd15", 3), torch.ones(1, 128, 128), seed=4
        )
