"""Issue 5: keep and share a layered scene. SaveLayerMemory / LoadLayerMemory inside the real
ComfyUI."""
import asyncio
import copy
import json
import os
import shutil
import struct

import pytest
import torch
from asserts import assert_same_memory
from executor import cached_nodes, cached_output, classic_executor
from memory_files import rewrite

from tools import scenes

pytestmark = pytest.mark.host


@pytest.fixture(scope="module")
def ser(host):
    return host.serialization


@pytest.fixture(scope="module")
def N(host):
    return host.nodes.NODE_CLASS_MAPPINGS


def file_options(N) -> list:
    spec = N["LayerMem_LoadLayerMemory"].INPUT_TYPES()["required"]["file"]
    return spec[1]["options"] if spec[0] == "COMBO" else spec[0]


@pytest.fixture(scope="module")
def saved(host, N, three_layers):
    """The four-layer scene saved through the node: (node output name, path, memory, digest before
    saving)."""
    memory = three_layers[-1]
    digest = scenes.memory_digest(memory)
    out = N["LayerMem_SaveLayerMemory"].execute(memory, "lm_test/scene")
    name = out.result[0]
    path = os.path.join(host.folder_paths.get_output_directory(),
                        name.removesuffix(host.labels.OUTPUT_TAG))
    return name, path, memory, digest, out


def test_save_writes_safetensors_with_counter_and_reports_it(host, N, saved, ser):
    name, path, memory, digest, out = saved
    assert name.startswith("lm_test/scene_") and name.endswith("_.safetensors [output]")
    assert os.path.isfile(path), path
    text = out.ui.as_dict()["text"][0]
    assert (name.removesuffix(host.labels.OUTPUT_TAG) in text
            and "4 layers" in text and "MiB" in text)
    meta = ser.peek(path)
    assert meta["format"] == "comfyui-layer-memory" and meta["format_version"] == "2"
    doc = json.loads(meta["layer_memory"])
    assert doc["schedule"]["sampler_name"] == "dpmpp_2m" and doc["schedule"]["steps"] == 3
    assert ([layer["name"] for layer in doc["layers"]]
            == ["background", "object 1", "object 2", "object 3"])
    assert [layer["seed"] for layer in doc["layers"]] == [11, 30, 31, 32]
    assert doc["fingerprint"]["image_model"] == memory.fingerprint.image_model
    assert doc["layers"][1]["positive"]["extras"] == [["height", 512], ["width", 512]]
    # standard safetensors: ComfyUI's own reader opens it, no pickle involved
    import comfy.utils
    sd, md = comfy.utils.load_torch_file(path, safe_load=True, return_metadata=True)
    assert md == meta and torch.equal(sd["layers.3.trajectory.x"], memory.layers[3].trajectory.x)
    assert "layers.1.negative" not in sd, "the negative every layer shares is stored once"
    # counter naming, and the same memory always gives the same bytes
    again = N["LayerMem_SaveLayerMemory"].execute(memory, "lm_test/scene").result[0]
    n1 = int(name.split("_")[-2])
    assert again == name.replace(f"_{n1:05}_", f"_{n1 + 1:05}_")
    path2 = os.path.join(host.folder_paths.get_output_directory(),
                         again.removesuffix(host.labels.OUTPUT_TAG))
    with open(path, "rb") as f1, open(path2, "rb") as f2:
        assert f1.read() == f2.read()
    with pytest.raises(host.errors.LayerMemoryError, match="filename_prefix"):
        N["LayerMem_SaveLayerMemory"].execute(memory, "../../outside")
    assert scenes.memory_digest(memory) == digest, "saving changed nothing"


def test_file_size_is_the_tensor_bytes_plus_a_small_header(host, saved, ser):
    name, path, memory, *_ = saved
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        header = 8 + struct.unpack("<Q", f.read(8))[0]
    # the file holds the assembled values (a composite stored over the one below as patches,
    # issue 22, is written whole), each storage the assembled tensors share once
    held = [t for _, t in memory.tensors()]  # all alive at once: no address reused
    assembled = host.trajectory.storage_bytes(held)
    assert size == header + assembled, \
        "shared tensors stored once: file = header + the assembled tensors' bytes"
    assert memory.nbytes() <= assembled
    assert header < 16 * 1024
    print(f"\n4-layer 512 px, 3 steps: {size} bytes ({size / 2 ** 20:.2f} MiB), "
          f"header {header} bytes")


def test_load_node_lists_and_round_trips_exactly(host, N, saved, three_layers):
    name, path, memory, digest, _ = saved
    options = file_options(N)
    assert name in options, "memories saved to the output folder are listed with ' [output]'"
    assert N["LayerMem_LoadLayerMemory"].validate_inputs(name) is True
    loaded, latent, table = N["LayerMem_LoadLayerMemory"].execute(name).result
    assert loaded is not memory
    assert_same_memory(memory, loaded)
    assert torch.equal(latent["samples"], memory.composite_latent()["samples"])
    assert "object 3" in table and "background" in table
    assert loaded.layers[3].negative.embedding is loaded.layers[0].negative.embedding, \
        "sharing restored"
    assert scenes.memory_digest(memory) == digest


def test_input_folder_copy_is_listed_and_loads(host, N, saved):
    name, path, memory, *_ = saved
    dest = os.path.join(host.folder_paths.get_input_directory(), "shared", "scene.safetensors")
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    shutil.copy(path, dest)
    assert "shared/scene.safetensors" in file_options(N)
    assert_same_memory(memory,
                       N["LayerMem_LoadLayerMemory"].execute("shared/scene.safetensors").result[0])


def test_add_and_delete_on_the_loaded_memory_equal_the_original(host, N, alpha, saved):
    name, path, memory, digest, _ = saved
    loaded = N["LayerMem_LoadLayerMemory"].execute(name).result[0]
    mask = scenes.box_mask(512, 0.55, 0.05, 0.95, 0.45)
    a = host.layer_ops.add_layer(memory, alpha, scenes.cond(77), mask, seed=5, name="new")
    b = host.layer_ops.add_layer(loaded, alpha, scenes.cond(77), mask, seed=5, name="new")
    assert_same_memory(a, b)
    d1 = host.layer_ops.delete_layer(memory, alpha, "1", regenerate_fraction=0.4, seed=0)
    d2 = host.layer_ops.delete_layer(loaded, alpha, "1", regenerate_fraction=0.4, seed=0)
    assert_same_memory(d1, d2)
    assert scenes.memory_digest(memory) == digest


def test_memory_of_another_model_is_refused_at_use(host, N, models, saved):
    name, *_ = saved
    loaded = N["LayerMem_LoadLayerMemory"].execute(name).result[0]
    sigma = models("pixart_sigma_512")
    with pytest.raises(host.errors.LayerMemoryError, match="made with another model") as e:
        N["LayerMem_AddLayer"].execute(loaded, sigma, scenes.cond(3, micro=False),
                              scenes.box_mask(512, 0.1, 0.1, 0.5, 0.5), 1)
    assert "image_model" in str(e.value) and "Fix:" in str(e.value)


def test_float16_storage_halves_trajectories_and_still_works(host, N, alpha, saved, ser):
    name, path, memory, *_ = saved
    half = N["LayerMem_SaveLayerMemory"].execute(memory, "lm_test/half",
                                                 host.labels.STORAGE_HALF).result[0]
    half_path = os.path.join(host.folder_paths.get_output_directory(),
                             half.removesuffix(host.labels.OUTPUT_TAG))
    traj = sum(layer.trajectory.x.nbytes for layer in memory.layers)
    assert os.path.getsize(path) - os.path.getsize(half_path) == pytest.approx(traj / 2, abs=16)
    loaded = N["LayerMem_LoadLayerMemory"].execute(half).result[0]
    for la, lb in zip(memory.layers, loaded.layers, strict=True):
        assert lb.trajectory.x.dtype == torch.float32
        assert torch.equal(lb.trajectory.x, la.trajectory.x.half().float())
        assert torch.equal(lb.trajectory.final, la.trajectory.final)
    mask = scenes.box_mask(512, 0.55, 0.05, 0.95, 0.45)
    added = N["LayerMem_AddLayer"].execute(loaded, alpha, scenes.cond(77), mask, 5).result[0]
    assert len(added.layers) == 5


# ---------------------------------------------------------------------------------------- bad files

def _bad_files(good: bytes, model_path: str) -> dict:
    n = struct.unpack("<Q", good[:8])[0]

    def rebuilt(edit_doc=None, edit_meta=None, edit_tensors=None):
        return rewrite(good, edit_doc, edit_meta, edit_tensors)

    with open(model_path, "rb") as f:
        model = f.read()
    gen = torch.Generator().manual_seed(0)
    return {
        "truncated": (good[: len(good) // 2], "truncated"),
        "header only": (good[: 8 + n], "truncated"),
        "corrupt": (bytes(torch.randint(0, 256, (4096,), generator=gen,
                                        dtype=torch.uint8).tolist()),
                    "not a safetensors file"),
        "corrupt header": (good[:8] + b"\x00\xff" + good[10:], "not a safetensors file"),
        "model file": (model, "not a layer-memory file"),
        "newer version": (rebuilt(edit_meta=lambda m: m.update(format_version="4")),
                          "format version 4, newer than"),
        "missing metadata key": (rebuilt(lambda d: d["schedule"].pop("cfg")),
                                 r"layer_memory\.schedule\.cfg is missing"),
        "missing layer key": (rebuilt(lambda d: d["layers"][2].pop("token_mask")),
                              r"layers\[2\]\.token_mask is missing"),
        "missing tensor": (rebuilt(edit_tensors=lambda t: t.pop("layers.3.trajectory.final")),
                           "'layers.3.trajectory.final'.*missing"),
        "inconsistent shapes": (rebuilt(edit_tensors=lambda t: t.update(
            {"layers.2.latent_mask": torch.zeros(32, 32)})),
                                r"shape \[32, 32\], expected \[64, 64\]"),
        "wrong latent size": (rebuilt(lambda d: d.update(latent_shape=[4, 128, 128])), "expected"),
    }


def test_every_bad_file_is_refused_naming_file_and_reason(host, N, saved):
    name, path, memory, digest, _ = saved
    with open(path, "rb") as f:
        good = f.read()
    folder = os.path.join(host.folder_paths.get_input_directory(), "bad")
    os.makedirs(folder, exist_ok=True)
    cases = _bad_files(good, host.model_paths["pixart_alpha_512"])
    for case, (data, _) in cases.items():
        with open(os.path.join(folder, case.replace(" ", "_") + ".safetensors"), "wb") as f:
            f.write(data)
    options = file_options(N)
    import re
    for case, (_, reason) in cases.items():
        file = "bad/" + case.replace(" ", "_") + ".safetensors"
        assert file in options, "every .safetensors of the input folder is listed"
        assert N["LayerMem_LoadLayerMemory"].validate_inputs(file) is True
        with pytest.raises(host.errors.LayerMemoryError) as e:
            N["LayerMem_LoadLayerMemory"].execute(file)
        text = str(e.value)
        assert file in text and "Fix:" in text and re.search(reason, text), (case, text)
    # a model file saved to the output folder is not offered as a memory
    shutil.copy(host.model_paths["pixart_alpha_512"],
                os.path.join(host.folder_paths.get_output_directory(), "model.safetensors"))
    assert "model.safetensors [output]" not in file_options(N)
    assert scenes.memory_digest(memory) == digest


def test_missing_and_escaping_paths(host, N):
    msg = N["LayerMem_LoadLayerMemory"].validate_inputs("nope.safetensors")
    assert isinstance(msg, str) and "does not exist" in msg
    assert "outside" in N["LayerMem_LoadLayerMemory"].validate_inputs("../../etc/passwd")
    with pytest.raises(host.errors.LayerMemoryError, match="cannot read 'gone.safetensors'"):
        N["LayerMem_LoadLayerMemory"].execute("gone.safetensors")


def test_executor_reloads_when_the_file_changes(host, N, three_layers, ser):
    """In ComfyUI's executor: cached while the file is unchanged, re-executed once it is
    replaced."""
    import execution
    from comfy_execution.graph_utils import GraphBuilder

    path = os.path.join(host.folder_paths.get_input_directory(), "exec_scene.safetensors")
    ser.save(three_layers[-1], path)
    # ComfyUI writes the fingerprint into every saved picture's metadata: the file's sha256,
    # not its path (nor inode, nor time), so pictures leak no folder and match across machines
    import hashlib

    with open(path, "rb") as fh:
        digest = hashlib.sha256(fh.read()).hexdigest()
    assert N["LayerMem_LoadLayerMemory"].fingerprint_inputs("exec_scene.safetensors") == digest
    g = GraphBuilder()
    load = g.node("LayerMem_LoadLayerMemory", file="exec_scene.safetensors")
    listing = g.node("LayerMem_ListLayers", memory=load.out(0))
    prompt = g.finalize()
    valid = asyncio.run(execution.validate_prompt("v", prompt, None))
    assert valid[0], valid
    executor = classic_executor()

    def run(pid):
        # ComfyUI writes is_changed into it
        executor.execute(copy.deepcopy(prompt), pid, {}, [listing.id])
        assert executor.success, executor.status_messages
        return load.id in cached_nodes(executor), cached_output(executor, load.id)

    first_cached, first = run("a")
    second_cached, second = run("b")
    assert not first_cached and second_cached and second is first
    ser.save(three_layers[1], path)  # replaced with another scene
    third_cached, third = run("c")
    assert not third_cached and len(third.layers) == 2 and len(first.layers) == 4
    # an "[output]" name that the list did not have yet is accepted too
    # (validate_inputs owns the check)
    ser.save(three_layers[1],
             os.path.join(host.folder_paths.get_output_directory(), "fresh.safetensors"))
    g2 = GraphBuilder()
    g2.node("LayerMem_ListLayers",
            memory=g2.node("LayerMem_LoadLayerMemory", file="fresh.safetensors [output]").out(0))
    assert asyncio.run(execution.validate_prompt("w", g2.finalize(), None))[0]
