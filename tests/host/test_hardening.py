"""Issue 12: no request can kill the server or disable a node, no bad value gets saved. In the real
ComfyUI, with the random PixArt-alpha 512 model."""
import json
import logging
import os
import resource
import struct

import pytest
import torch
from memory_files import claiming_2_gib, rewrite

from tools import scenes

pytestmark = pytest.mark.host


@pytest.fixture
def no_sampling(host, monkeypatch):
    def forbidden(*a, **k):
        raise AssertionError("sampling started before the input was checked")

    monkeypatch.setattr(host.sampling, "run", forbidden)


@pytest.fixture(scope="module")
def limits(host):
    return host.limits


@pytest.fixture(scope="module")
def N(host):
    return host.nodes.NODE_CLASS_MAPPINGS


def _refused(host, fn, *args, match, input_name, **kwargs):
    with pytest.raises(host.errors.LayerMemoryError, match=match) as e:
        fn(*args, **kwargs)
    assert e.value.input_name == input_name and "Fix:" in str(e.value)
    return str(e.value)


def _start(host, model, size, cfg=4.5):
    return host.layer_ops.start_memory(model, scenes.cond(1), scenes.negative(), size[0], size[1],
                                       0, 20, cfg, "dpmpp_2m", "karras")


# ----------------------------------------------------------------- 1: sizes that cannot fit

def test_a_size_that_cannot_fit_is_refused_before_sampling(host, alpha, limits, no_sampling):
    text = _refused(host, _start, host, alpha, (16384, 16384), match="16384x16384 needs about",
                    input_name="width/height")
    assert ("GiB is free" in text
            and "largest size with this aspect ratio that fits is about" in text)


def test_the_estimate_against_a_tiny_free_memory(host, alpha, limits, background, monkeypatch,
                                                 no_sampling):
    """ComfyUI's free-memory query is replaced for this test only (in the pack's module)."""
    monkeypatch.setattr(limits, "query_free", lambda device: 32 * 2 ** 20)
    text = _refused(host, _start, host, alpha, (512, 512), match="512x512 needs about",
                    input_name="width/height")
    assert "not even 512 px fits" in text
    _refused(host, host.layer_ops.add_layer, background, alpha, scenes.cond(2),
             torch.ones(1, 64, 64), 0,
             match="needs about", input_name="width/height")
    mode = limits._attention_mode()
    calls = 20 * limits.MAX_CALLS_PER_STEP
    enough_for_1024 = host.pixart.run_bytes(1024, 768, calls, 4, mode)
    monkeypatch.setattr(limits, "query_free", lambda device: enough_for_1024)
    text = _refused(host, _start, host, alpha, (2048, 1536), match="2048x1536 needs about",
                    input_name="width/height")
    assert "fits is about 1024x768" in text, text
    limits.require_fits(alpha, (1024, 768), calls)  # the size it names does fit


def test_non_finite_cfg_and_mask_values(host, N, alpha, background, no_sampling):
    for cfg in (float("nan"), float("inf")):
        _refused(host, N["LayerMem_LayerMemory"].execute, alpha, scenes.cond(1), scenes.negative(),
                 512, 512,
                 0, 3, cfg, "dpmpp_2m", "karras", match="not a finite number", input_name="cfg")
    mask = torch.zeros(1, 512, 512)
    mask[0, 100:200, 100:200] = 1.0
    mask[0, 150, 150] = float("nan")
    _refused(host, N["LayerMem_AddLayer"].execute, background, alpha, scenes.cond(2), mask, 0,
             match="NaN",
             input_name="mask")


# ----------------------------------------------------------------- 2 and 3: files and folders

def _file_options(N) -> list:
    # what /object_info calls
    spec = N["LayerMem_LoadLayerMemory"].INPUT_TYPES()["required"]["file"]
    return spec[1]["options"] if spec[0] == "COMBO" else spec[0]


def _nested_file(depth: int = 200_000) -> bytes:
    text = (b'{"__metadata__":{"format":"comfyui-layer-memory","format_version":"2"},"a":'
            + b"[" * depth + b"]" * depth + b"}")
    return struct.pack("<Q", len(text)) + text


@pytest.fixture(scope="module")
def folders(host, background, tmp_path_factory):
    """Crafted files and links in input/hard and output/hard; a valid memory outside both."""
    inp = os.path.join(host.folder_paths.get_input_directory(), "hard")
    out = os.path.join(host.folder_paths.get_output_directory(), "hard")
    os.makedirs(inp, exist_ok=True)
    os.makedirs(out, exist_ok=True)
    outside = str(tmp_path_factory.mktemp("elsewhere") / "secret.safetensors")
    host.serialization.save(background, outside)
    host.serialization.save(background, os.path.join(out, "good.safetensors"))
    for folder in (inp, out):
        with open(os.path.join(folder, "nested.safetensors"), "wb") as f:
            f.write(_nested_file())
    os.symlink(outside, os.path.join(inp, "outside.safetensors"))
    os.symlink(outside, os.path.join(out, "outside.safetensors"))
    os.symlink(os.path.join(out, "good.safetensors"), os.path.join(inp, "inside.safetensors"))
    os.symlink("/nonexistent/nothing", os.path.join(out, "dangling.safetensors"))
    with open(os.path.join(inp, "text.safetensors"), "wb") as f:
        f.write(b"hello world, this is not a model at all" * 10)
    return inp, out


def test_no_file_breaks_the_list_and_links_stay_inside(host, N, folders, caplog):
    with caplog.at_level(logging.WARNING, logger="LayerMemory"):
        options = _file_options(N)
        again = _file_options(N)
    assert options == again
    assert "hard/nested.safetensors" in options, "input files are listed without being read"
    assert ("hard/nested.safetensors [output]" not in options
            and "hard/good.safetensors [output]" in options)
    assert ("hard/outside.safetensors" not in options
            and "hard/outside.safetensors [output]" not in options)
    assert "hard/inside.safetensors" in options, "a link to a file in the output folder is fine"
    assert "hard/dangling.safetensors [output]" not in options
    for name in ("outside.safetensors", "dangling.safetensors"):
        assert (sum(name in r.getMessage() for r in caplog.records)
                == (2 if name == "outside.safetensors" else 1)), \
            "each left-out file is logged once (outside: once per folder)"


def test_crafted_and_linked_files_are_refused_with_the_packs_error(host, N, folders, background):
    _refused(host, N["LayerMem_LoadLayerMemory"].execute, "hard/nested.safetensors",
             match="nests deeper than", input_name="file")
    for name in ("hard/outside.safetensors", "hard/outside.safetensors [output]"):
        assert ("outside ComfyUI's input and output folders"
                in N["LayerMem_LoadLayerMemory"].validate_inputs(name))
        _refused(host, N["LayerMem_LoadLayerMemory"].execute, name, match="link to a file outside",
                 input_name="file")
    text = _refused(host, N["LayerMem_LoadLayerMemory"].execute, "hard/text.safetensors",
                    match="not a safetensors file", input_name="file")
    first8 = struct.unpack("<Q", b"hello wo")[0]
    assert str(first8) not in text and "hello" not in text
    loaded = N["LayerMem_LoadLayerMemory"].execute("hard/inside.safetensors").result[0]
    assert scenes.memory_digest(loaded) == scenes.memory_digest(background)


def test_a_temp_file_is_refused_for_its_folder_not_as_a_link(host, N, background):
    temp = host.folder_paths.get_temp_directory()
    os.makedirs(temp, exist_ok=True)
    host.serialization.save(background, os.path.join(temp, "lm_temp.safetensors"))
    for name in ("lm_temp.safetensors [temp]", "missing.safetensors [temp]"):
        text = _refused(host, N["LayerMem_LoadLayerMemory"].execute, name,
                        match="ComfyUI's temp folder",
                        input_name="file")
        assert "link" not in text and "copy the file into the input folder" in text
        assert "temp folder" in N["LayerMem_LoadLayerMemory"].validate_inputs(name)
    copy = os.path.join(host.folder_paths.get_input_directory(), "lm_temp_copy.safetensors")
    host.serialization.save(background, copy)  # the fix the message names works
    loaded = N["LayerMem_LoadLayerMemory"].execute("lm_temp_copy.safetensors").result[0]
    assert scenes.memory_digest(loaded) == scenes.memory_digest(background)


def test_a_2_gib_file_is_refused_without_being_read(host, N, background):
    folder = os.path.join(host.folder_paths.get_input_directory(), "hard")
    os.makedirs(folder, exist_ok=True)
    zeros = os.path.join(folder, "zeros_2gib.safetensors")
    with open(zeros, "wb") as f:
        f.truncate(2 ** 31)
    claiming_2_gib(host.serialization.to_bytes(background), "layers.0.trajectory.x",
                   os.path.join(folder, "claims_2gib.safetensors"))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    _refused(host, N["LayerMem_LoadLayerMemory"].execute, "hard/zeros_2gib.safetensors",
             match="not a safetensors file", input_name="file")
    _refused(host, N["LayerMem_LoadLayerMemory"].execute, "hard/claims_2gib.safetensors",
             match="trajectory x\\) has shape", input_name="file")
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak
    assert grown < 256 * 1024, f"peak RSS grew by {grown} KiB"


def _within(seconds: float, fn, *args):
    """fn(*args) on a daemon thread; fails (instead of hanging the suite) if it blocks."""
    import threading

    box: dict = {}

    def work():
        try:
            box["value"] = fn(*args)
        except BaseException as e:  # noqa: BLE001 - re-raised below
            box["error"] = e

    t = threading.Thread(target=work, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), f"{getattr(fn, '__name__', fn)} blocked for {seconds} s"
    if "error" in box:
        raise box["error"]
    return box["value"]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
def test_fifos_and_folders_named_like_memories_neither_block_nor_load(host, N, background,
                                                                     caplog):
    """A FIFO's open() waits for a writer: the listing (/object_info) and a load would hang."""
    inp = os.path.join(host.folder_paths.get_input_directory(), "special")
    out = os.path.join(host.folder_paths.get_output_directory(), "special")
    for folder in (inp, out):
        os.makedirs(os.path.join(folder, "folder.safetensors"), exist_ok=True)
        if not os.path.exists(os.path.join(folder, "pipe.safetensors")):
            os.mkfifo(os.path.join(folder, "pipe.safetensors"))
    host.serialization.save(background, os.path.join(out, "good.safetensors"))
    with caplog.at_level(logging.WARNING, logger="LayerMemory"):
        options = _within(30, _file_options, N)
    assert "special/good.safetensors [output]" in options
    for name in ("special/pipe.safetensors", "special/folder.safetensors"):
        assert name not in options and f"{name} [output]" not in options, options
    assert any("pipe.safetensors" in r.getMessage() and "FIFO" in r.getMessage()
               for r in caplog.records), "the left-out FIFO is logged with its kind"
    load = N["LayerMem_LoadLayerMemory"]
    for name in ("special/pipe.safetensors", "special/pipe.safetensors [output]"):
        assert "FIFO (named pipe), not a memory file" in _within(30, load.validate_inputs, name)
        _refused(host, _within, 30, load.execute, name, match="FIFO", input_name="file")
        with pytest.raises(host.errors.LayerMemoryError, match="FIFO"):  # the core refuses too
            _within(30, host.serialization.load, os.path.join(inp, "pipe.safetensors"))
        assert _within(30, host.serialization.peek, os.path.join(out, "pipe.safetensors")) is None
    _refused(host, load.execute, "special/folder.safetensors", match="is a folder",
             input_name="file")


# ----------------------------------------------------------------- 4: bad values in files

def _bad_value_files(good: bytes) -> dict:
    def share(d):
        d["layers"] = [dict(d["layers"][i % 3], name=f"copy {i}") for i in range(600)]

    def set_(name, index, value):
        return lambda t: t[name].view(-1).__setitem__(index, value)

    def set_stored(suffix, index, value):  # a tensor shared by layers is stored once, under
        # its first use's name (the composites share their sigmas with the background)
        return lambda t: t[next(k for k in t if k.endswith(suffix))].view(-1).__setitem__(
            index, value)

    return {
        "nan_latent": (rewrite(good, edit_tensors=set_("layers.2.trajectory.x", 7, float("nan"))),
                       "latents hold NaN"),
        "inf_final": (rewrite(good,
                              edit_tensors=set_("layers.1.trajectory.final", 0, float("inf"))),
                      "latents hold NaN"),
        "nan_mask": (rewrite(good, edit_tensors=set_("layers.2.latent_mask", 3, float("nan"))),
                     "latent mask"),
        "inf_sigma": (rewrite(good,
                              edit_tensors=set_stored(".trajectory.sigmas", 0, float("inf"))),
                      "sigmas"),
        "inf_schedule": (rewrite(good,
                                 lambda d: d["schedule"]["sigma_values"].__setitem__(0, 1e999),
                                 edit_tensors=set_("schedule.sigmas", 0, float("inf"))),
                         "Infinity"),
        "nan_embedding": (rewrite(good, edit_tensors=set_("layers.1.positive", 0, float("nan"))),
                          "embedding"),
        "600_layers_sharing_3": (rewrite(good, share), "tensors of its own"),
    }


def test_files_with_bad_values_are_refused(host, N, three_layers):
    good = host.serialization.to_bytes(three_layers[-1])
    folder = os.path.join(host.folder_paths.get_input_directory(), "values")
    os.makedirs(folder, exist_ok=True)
    for case, (data, reason) in _bad_value_files(good).items():
        with open(os.path.join(folder, case + ".safetensors"), "wb") as f:
            f.write(data)
        _refused(host, N["LayerMem_LoadLayerMemory"].execute, f"values/{case}.safetensors",
                 match=reason,
                 input_name="file")


def test_a_memory_with_nan_is_not_saved(host, N, background):
    from dataclasses import replace
    t = background.top.trajectory
    x = t.x.clone()
    x[0, 0, 0, 0] = float("nan")
    bad = background.with_layers((replace(background.top, trajectory=replace(t, x=x)),))
    _refused(host, N["LayerMem_SaveLayerMemory"].execute, bad, "lm_test/nan", match="cannot save",
             input_name="memory")


# ----------------------------------------------------------------- 5: rough edges

def test_prefixes_are_refused_or_normalised_so_every_saved_name_loads(host, N, background):
    for prefix, match in (("a" * 250, "bytes long"), ("scene\x00x", "control character"),
                          (".hidden/scene", "starts with '.'"), ("/etc/scene", "absolute path"),
                          ("scene\u202egpj", "U\\+202E"), ("a\u200bb", "U\\+200B"),
                          ("x/\u2066y", "U\\+2066"), ("\ufeffscene", "U\\+FEFF")):
        _refused(host, N["LayerMem_SaveLayerMemory"].execute, background, prefix, match=match,
                 input_name="filename_prefix")
    for prefix, start in ((" ", "layer_memory/scene_"), ("  my scene /  x ", "my scene/x_")):
        name = N["LayerMem_SaveLayerMemory"].execute(background, prefix).result[0]
        assert name.startswith(start), name
        assert name in _file_options(N)
        loaded = N["LayerMem_LoadLayerMemory"].execute(name).result[0]
        assert scenes.memory_digest(loaded) == scenes.memory_digest(background)


def test_delete_on_a_background_only_memory_and_full_width_digits(host, N, alpha, three_layers,
                                                                  no_sampling):
    text = _refused(host, N["LayerMem_DeleteLayer"].execute, three_layers[0], alpha, "-1", 0.4, 0,
                    match="no layer to choose", input_name="layer")
    assert "from 1 to 0" not in text
    _refused(host, N["LayerMem_DeleteLayer"].execute, three_layers[3], alpha, "\uff11", 0.4, 0,
             match="no layer is named", input_name="layer")
    _refused(host, N["LayerMem_DeleteLayer"].execute, three_layers[3], alpha, "9" * 5000, 0.4, 0,
             match="out of range", input_name="layer")
    assert json.dumps(three_layers[3].describe())


def test_interrupt_stops_a_layer_between_the_model_calls_of_one_step(host, alpha):
    """Issue 19: /interrupt reaches the pack between model calls (heun calls the model twice a
    step), not only at a step's end; the memory it read is unchanged and the MODEL stock."""
    import comfy.model_management as mm

    memory = host.layer_ops.start_memory(alpha, scenes.cond(1), scenes.negative(), 512, 512,
                                         seed=4, steps=2, cfg=4.5, sampler_name="heun",
                                         scheduler="normal")
    digest = scenes.memory_digest(memory)
    dm = alpha.model.diffusion_model
    calls = []

    def interrupt_after_the_first_call(module, args, out):
        calls.append(float(args[1].flatten()[0]))  # the timestep: cond and uncond may be 2 calls
        mm.interrupt_current_processing(True)

    handle = dm.register_forward_hook(interrupt_after_the_first_call)
    try:
        with pytest.raises(mm.InterruptProcessingException):
            host.layer_ops.add_layer(memory, alpha, scenes.cond(2),
                                     scenes.box_mask(512, 0.2, 0.2, 0.6, 0.6), seed=5)
    finally:
        handle.remove()
        mm.interrupt_current_processing(False)
    assert calls and len(set(calls)) == 1, f"model calls at timesteps {calls} ran: only the " \
        "first model call may run once the interrupt is set"
    assert scenes.memory_digest(memory) == digest
    assert not alpha.object_patches and not alpha.get_all_wrappers("apply_model")
