"""Qwen-Image specifics (issue 21); the shared invariants run on its kit in
test_family_invariants.py. What is its own: 5-D Wan 2.1 LATENTs in and out (the memory holds
[C, h, w]), a 5-D memory through save/load bit for bit, the per-prompt text RoPE restart, and
bad input refused before any sampling (Qwen-Image-Edit's reference latents, another family's
memory, a prompt of another width, sizes off the 16 px grid), naming the input and the fix."""
import dataclasses

import pytest
import torch
from attention_probe import expected_owners, joint_calls
from joint_start import start_joint
from refusals import refused

from tools import flux_scenes as fs
from tools import qwen_scenes as qs
from tools import scenes

pytestmark = pytest.mark.host
SIZE = qs.SIZE
LATENT = SIZE // 8
BOX = (0.25, 0.25, 0.75, 0.75)


def _start(host, positive=None, negative=None, size=SIZE, model=None):
    return start_joint(host.layer_ops, qs, positive, negative, model, size)


@pytest.fixture(scope="module")
def two_layers(host):
    bg = _start(host)
    return bg, host.layer_ops.add_layer(bg, qs.model(), qs.cond(5, tokens=20),
                                        scenes.box_mask(SIZE, *BOX), seed=5, name="A")


def test_latent_comes_back_5d_through_the_formats_process_out(host, two_layers):
    _, memory = two_layers
    assert memory.fingerprint.family == "qwen_image"
    assert memory.latent_shape == (16, LATENT, LATENT)  # the memory holds [C, h, w]
    latent = memory.composite_latent()["samples"]
    assert latent.shape == (1, 16, 1, LATENT, LATENT)
    final = memory.top.trajectory.final
    import comfy.latent_formats  # after the host's boot put ComfyUI on the path

    assert torch.equal(latent, comfy.latent_formats.Wan21().process_out(final[None, :, None]))
    back = qs.model().model.process_latent_in(latent)[:, :, 0]  # the model's own format
    torch.testing.assert_close(back[0], final, rtol=1e-5, atol=1e-5)


def test_5d_latent_in_is_the_pictures_background(host):
    g = torch.Generator().manual_seed(4)
    latent = torch.randn(1, 16, 1, LATENT, LATENT, generator=g)
    memory = host.picture.memory_from_latent(qs.model(), latent, qs.cond(1), qs.cond(2), 2, 3.0,
                                             "euler", "simple", seed=1)
    assert memory.latent_shape == (16, LATENT, LATENT)
    out = memory.composite_latent()["samples"]
    assert out.shape == latent.shape
    torch.testing.assert_close(out, latent, rtol=1e-5, atol=1e-5)
    video = torch.zeros(1, 16, 2, LATENT, LATENT)
    refused(host, host.picture.memory_from_latent, qs.model(), video, qs.cond(1), qs.cond(2), 2,
            3.0, "euler", "simple", seed=1, match="2 frames", input_name="latent")


def test_5d_memory_saves_and_loads_bit_for_bit(host, two_layers, tmp_path):
    _, memory = two_layers
    path = str(tmp_path / "qwen.safetensors")
    host.serialization.save(memory, path)
    loaded = host.serialization.load(path)
    assert loaded.fingerprint == memory.fingerprint and loaded.latent_shape == memory.latent_shape
    for a, b in zip(loaded.layers, memory.layers, strict=True):
        for name in ("x", "final", "sigmas", "steps"):
            assert torch.equal(getattr(a.trajectory, name), getattr(b.trajectory, name)), name
        assert torch.equal(a.latent_mask, b.latent_mask)
        assert torch.equal(a.positive.embedding, b.positive.embedding)
    assert torch.equal(loaded.composite_latent()["samples"], memory.composite_latent()["samples"])


def test_each_prompts_text_rope_restarts_at_txt_start(host, two_layers):
    """Layer A's prompt routed after the background's (multi-prompt) computes, in the first
    block, on the image tokens A owns, what it computes routed alone: its text ids restart at
    txt_start. Without the restart (the text-id patch taken off) they differ."""
    _, memory = two_layers
    bg, a = memory.layers
    owners = expected_owners([a.latent_mask], (SIZE // 16, SIZE // 16))
    owned = owners == 1
    assert owned.any() and not owned.all()
    covering = dataclasses.replace(a, latent_mask=torch.ones(LATENT, LATENT),
                                   token_mask=torch.ones(LATENT // 2, LATENT // 2,
                                                         dtype=torch.bool))
    negative = a.negative.embedding
    multi, _ = joint_calls(host, qs_kit(), [bg, a], negative)
    alone, _ = joint_calls(host, qs_kit(), [bg, covering], negative)  # bg owns nothing: left out

    def image_rows(call):
        text = call.q.shape[2] - owners.numel()
        return call.out[1][:, text:][:, owned]  # conditional row, [heads, owned tokens, d]

    torch.testing.assert_close(image_rows(multi[0]), image_rows(alone[0]), rtol=1e-5, atol=1e-5)
    mqd = host.qwen_image_mqd
    with pytest.MonkeyPatch.context() as mp:  # the run's ids as ComfyUI numbers them
        mp.setattr(mqd.QwenImageMQDRun, "text_offsets",
                   lambda self, length: torch.arange(length))
        running, _ = joint_calls(host, qs_kit(), [bg, a], negative)
    assert not torch.allclose(image_rows(running[0]), image_rows(alone[0]), rtol=1e-5, atol=1e-5)


def qs_kit():
    """The probe's view of a Qwen-Image kit: its family, size and model."""
    return type("QwenKit", (), {"family": "qwen_image", "size": SIZE, "model": qs.model()})()


def test_reference_latents_are_refused(host, no_sampling):
    edit = qs.cond(3)
    edit[0][1]["reference_latents"] = [torch.zeros(1, 16, 1, LATENT, LATENT)]
    e = refused(host, _start, host, positive=edit, match="reference latents",
                input_name="positive")
    assert "CLIPTextEncode" in e.fix


def test_wrong_prompt_width_is_refused(host, no_sampling):
    t5 = [[torch.randn(1, 12, 4096), {}]]
    refused(host, _start, host, negative=t5, match="4096", input_name="negative")


def test_off_grid_size_is_refused(host, no_sampling):
    refused(host, _start, host, size=SIZE + 8, match="multiple of 16", input_name="width")


def test_another_familys_memory_is_refused(host, two_layers, no_sampling):
    bg, _ = two_layers
    refused(host, host.layer_ops.add_layer, bg, fs.model(), fs.cond(3),
            scenes.box_mask(SIZE, *BOX), seed=3, match="Qwen-Image", input_name="model")


def test_text_id_patch_is_live_in_a_sampled_run_and_gone_after(host, two_layers):
    """AddLayer's routed calls go through the restarted text ids (ComfyUI loads the clone's
    object patch), and the shared model's pe_embedder is its own again after the run."""
    bg, _ = two_layers
    mqd = host.qwen_image_mqd
    seen = []
    forward = mqd.RestartedTextIds.forward

    def watch(self, ids):
        seen.append(self._run[0].rope_layout is not None)
        return forward(self, ids)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(mqd.RestartedTextIds, "forward", watch)
        host.layer_ops.add_layer(bg, qs.model(), qs.cond(6), scenes.box_mask(SIZE, *BOX), seed=6)
    assert any(seen), "no routed call went through the text-id patch"
    pe = qs.model().model.diffusion_model.pe_embedder
    assert not isinstance(pe, mqd.RestartedTextIds)


def test_previews_get_5d_latents(host):
    """ComfyUI's preview callback sees the model's own shape (a video TAE decodes 5-D)."""
    got = []
    callback = host.time_axis.preview_callback(qs.model(), lambda *a: got.append(a))
    callback(0, torch.zeros(1, 16, LATENT, LATENT), torch.ones(1, 16, LATENT, LATENT), 2)
    assert [t.shape for t in got[0][1:3]] == [(1, 16, 1, LATENT, LATENT)] * 2
    assert host.time_axis.preview_callback(fs.model(), print) is print  # a 2-D format: as is


def test_around_the_mask_is_refused(host, two_layers, no_sampling):
    bg, _ = two_layers
    refused(host, host.layer_ops.add_layer, bg, qs.model(), qs.cond(3),
            scenes.box_mask(SIZE, *BOX), seed=3, compute="around the mask", match="RoPE",
            input_name="compute")
