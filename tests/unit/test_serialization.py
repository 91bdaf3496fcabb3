"""The file format on its own (no ComfyUI): exact round trip, shared tensors, every kind of bad
file."""
import json
import struct

import pytest
import safetensors.torch
import torch
from asserts import assert_same_memory
from memory_files import claiming_2_gib, rewrite, small_memory

from layermem_core import serialization as ser
from layermem_core.conditioning import Conditioning
from layermem_core.errors import LayerMemoryError
from layermem_core.memory import Layer
from layermem_core.trajectory import Trajectory


def _memory(n=3, calls=3, h=8, w=8):
    return small_memory(n, calls, h, w)


_same = assert_same_memory


def test_round_trip_is_exact_and_shares_what_was_shared():
    m = _memory()
    m.layers[1].trajectory.x[0, 0, 0, 1] = -0.0  # odd values survive too (test-local memory)
    m.layers[1].trajectory.x[0, 0, 0, 2] = 1e-45  # a subnormal
    data = ser.to_bytes(m)
    back = ser.from_bytes(data, "m.safetensors")
    _same(m, back)
    assert back.layers[2].negative.embedding is back.layers[0].negative.embedding, \
        "shared negative stays one tensor"
    assert back.layers[2].trajectory.sigmas is back.layers[0].trajectory.sigmas
    assert ser.to_bytes(back) == data, "saving the loaded memory gives the same bytes"
    tensors = safetensors.torch.load(data)
    assert "layers.1.negative" not in tensors and "layers.0.negative" in tensors, "stored once"


def test_metadata_layout():
    m = _memory(2)
    tensors, meta = ser.encode(m)
    assert meta["format"] == "comfyui-layer-memory" and meta["format_version"] == "2"
    assert all(isinstance(v, str) for v in meta.values())
    doc = json.loads(meta["layer_memory"])
    assert doc["schedule"]["sampler_name"] == "dpmpp_2m" and doc["schedule"]["steps"] == 3
    assert doc["latent_shape"] == [4, 8, 8] and doc["fingerprint"]["image_model"] == "pixart_alpha"
    assert [layer["name"] for layer in doc["layers"]] == ["l0", "l1"]
    assert doc["layers"][1]["seed"] == 2 ** 64 - 2 and doc["layers"][1]["prompt"] == "prompt 1 ✓"
    assert set(tensors) >= {"schedule.sigmas", "layers.1.trajectory.x", "layers.1.token_mask"}


def test_views_and_shared_storage_are_saved_safely():
    m = _memory(2)
    big = torch.randn(10, 4, 8, 8)
    t = m.layers[1].trajectory
    view_traj = Trajectory(t.sigmas, t.steps, big[:3], big[6])  # two views of one storage
    from dataclasses import replace
    m2 = m.with_layers((m.layers[0], replace(m.layers[1], trajectory=view_traj)))
    back = ser.from_bytes(ser.to_bytes(m2), "v")
    _same(m2, back)
    assert big.data_ptr() == view_traj.x.data_ptr(), "nothing of the memory was replaced"


def test_float16_trajectories():
    m = _memory()
    half = ser.to_bytes(m, "float16")
    full = ser.to_bytes(m)
    saved = sum(layer.trajectory.x.numel() * 2 for layer in m.layers)
    assert abs(len(full) - len(half) - saved) <= 16, \
        "x takes half the bytes; only the header (offsets, dtypes) differs"
    back = ser.from_bytes(half, "h")
    t, tb = m.layers[1].trajectory, back.layers[1].trajectory
    assert tb.x.dtype == torch.float32 and torch.equal(tb.x, t.x.half().float())
    assert torch.equal(tb.final, t.final), "the final latent stays exact"
    assert ser.to_bytes(back, "float16") == half
    with pytest.raises(LayerMemoryError, match="trajectory_dtype"):
        ser.to_bytes(m, "int8")


def test_a_new_field_in_the_value_types_is_not_silently_dropped(monkeypatch):
    monkeypatch.setitem(ser.KNOWN_FIELDS, Layer, ser.KNOWN_FIELDS[Layer] - {"prompt"})
    with pytest.raises(RuntimeError, match="file format"):
        ser.encode(_memory(1))


GOOD = ser.to_bytes(_memory())


def _pop(d, *path):
    for p in path[:-1]:
        d = d[p]
    del d[path[-1]]


def _as_version_1(data: bytes, with_denoised: bool = True) -> bytes:
    """`data` as format version 1 wrote it: with a per-call denoised prediction in each
    trajectory."""
    n_layers = len(json.loads(ser.read_metadata(data)["layer_memory"])["layers"])

    def doc(d):
        for i in range(n_layers):
            d["layers"][i]["trajectory"]["denoised"] = f"layers.{i}.trajectory.denoised"

    def tensors(t):
        for i in range(n_layers):
            if with_denoised:
                t[f"layers.{i}.trajectory.denoised"] = torch.full_like(
                    t[f"layers.{i}.trajectory.x"], 7.0)

    return rewrite(data, doc, lambda m: m.update(format_version="1"), tensors)


def test_version_1_files_load_without_their_denoised_predictions():
    m = _memory()
    back = ser.from_bytes(_as_version_1(ser.to_bytes(m)), "v1.safetensors")
    _same(m, back)
    with pytest.raises(LayerMemoryError, match="'layers.0.trajectory.denoised' .* is missing"):
        ser.from_bytes(_as_version_1(ser.to_bytes(m), with_denoised=False), "v1.safetensors")
    assert "denoised" not in json.dumps(json.loads(ser.encode(m)[1]["layer_memory"])), \
        "version 2 writes none"


BAD = {
    "empty": (b"", "too short"),
    "truncated header": (GOOD[:100], "truncated"),
    "truncated data": (GOOD[:-10], "truncated"),
    "random bytes": (bytes(torch.randint(0, 256, (5000,),
                                         generator=torch.Generator().manual_seed(1)).tolist()),
                     "not a safetensors file"),
    "json but not safetensors": (struct.pack("<Q", 2) + b"[]", "not a JSON object"),
    "trailing garbage": (GOOD + b"\0" * 16, "not a valid safetensors file"),
    "nan in x": (rewrite(GOOD, edit_tensors=lambda t: t["layers.1.trajectory.x"].view(-1)
                         .__setitem__(3, float("nan"))),
                 "layer 1's stored latents hold NaN"),
    "foreign safetensors": (safetensors.torch.save({"diffusion_model.x": torch.zeros(2)}),
                            "not a layer-memory file"),
    "foreign with metadata": (safetensors.torch.save({"a": torch.zeros(2)},
                                                     metadata={"format": "pt"}),
                              "not a layer-memory file"),
    "newer version": (rewrite(GOOD, edit_meta=lambda m: m.update(format_version="4")),
                      "newer than this pack reads"),
    "version not a number": (rewrite(GOOD, edit_meta=lambda m: m.update(format_version="x")),
                             "not a number"),
    "no layer_memory key": (rewrite(GOOD, edit_meta=lambda m: m.pop("layer_memory")),
                            "'layer_memory' is missing"),
    "layer_memory not json": (rewrite(GOOD, edit_meta=lambda m: m.update(layer_memory="{")),
                              "not JSON"),
    "missing fingerprint": (rewrite(GOOD, lambda d: d.pop("fingerprint")),
                            "layer_memory.fingerprint is missing"),
    "missing seed": (rewrite(GOOD, lambda d: _pop(d, "layers", 1, "seed")),
                     r"layer_memory.layers\[1\].seed is missing"),
    "missing trajectory key": (rewrite(GOOD, lambda d: _pop(d, "layers", 2, "trajectory", "x")),
                               "trajectory.x is missing"),
    "seed of wrong type": (rewrite(GOOD, lambda d: d["layers"][0].update(seed="7")), "seed"),
    "negative seed": (rewrite(GOOD, lambda d: d["layers"][0].update(seed=-1)), "seed"),
    "no layers": (rewrite(GOOD, lambda d: d.update(layers=[])), "no layers"),
    "missing tensor": (rewrite(GOOD, edit_tensors=lambda t: t.pop("layers.1.trajectory.final")),
                       "'layers.1.trajectory.final' .* is missing"),
    "unreferenced tensor": (rewrite(GOOD, edit_tensors=lambda t: t.update(extra=torch.zeros(1))),
                            "does not use"),
    "x of wrong shape": (rewrite(GOOD, edit_tensors=lambda t: t.update(
        {"layers.2.trajectory.x": torch.zeros(3, 4, 8, 6)})),
                         r"shape \[3, 4, 8, 6\], expected \[3, 4, 8, 8\]"),
    "fewer calls in x": (rewrite(GOOD, edit_tensors=lambda t: t.update(
        {"layers.1.trajectory.x": torch.zeros(2, 4, 8, 8)})),
                         "expected"),
    "token mask wrong size": (rewrite(GOOD, edit_tensors=lambda t: t.update(
        {"layers.1.token_mask": torch.zeros(8, 8, dtype=torch.bool)})), "token_mask"),
    "mask wrong dtype": (rewrite(GOOD, edit_tensors=lambda t: t.update(
        {"layers.1.latent_mask": torch.zeros(8, 8, dtype=torch.float64)})),
                         "float64, expected float32"),
    "embedding not T5 wide": (rewrite(GOOD, edit_tensors=lambda t: t.update(
        {"layers.1.positive": torch.zeros(1, 3, 768)})),
                              "positive prompt embedding"),
    "latent shape vs fingerprint": (rewrite(GOOD, lambda d: d.update(latent_shape=[16, 8, 8])),
                                    "16 channels"),
    "sigmas disagree": (rewrite(GOOD,
                                lambda d: d["schedule"].update(sigma_values=[10.0, 1.0, 0.1, 0.0])),
                        "sigmas"),
    "steps disagree with sigmas": (rewrite(GOOD, lambda d: d["schedule"].update(steps=5)),
                                   "schedule.sigmas"),
    "layers with different call counts": (rewrite(
        GOOD, lambda d: d["layers"][2]["trajectory"].update(sigmas="other", steps="other_steps"),
        edit_tensors=lambda t: t.update(other=torch.ones(2, dtype=torch.float64),
                                        other_steps=torch.zeros(2, dtype=torch.long))),
        "2 model calls, the background's 3"),
    "extras malformed": (rewrite(GOOD, lambda d: d["layers"][1]["positive"].update(extras=[["a"]])),
                         "extras"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_files_are_refused_with_file_and_reason(case):
    data, reason = BAD[case]
    with pytest.raises(LayerMemoryError) as e:
        ser.from_bytes(data, "scene_00001_.safetensors")
    text = str(e.value)
    assert "scene_00001_.safetensors" in text and "Fix:" in text
    import re
    assert re.search(reason, text), text


def test_load_names_the_file_and_reports_unreadable(tmp_path):
    with pytest.raises(LayerMemoryError, match="cannot read 'nope.safetensors'"):
        ser.load(str(tmp_path / "nope.safetensors"))
    p = tmp_path / "ok.safetensors"
    size = ser.save(_memory(), str(p))
    assert size == p.stat().st_size == len(GOOD)
    assert p.read_bytes() == GOOD
    assert ser.peek(str(p))["format"] == ser.FORMAT_NAME
    assert list(tmp_path.iterdir()) == [p], "no temporary file left behind"
    (tmp_path / "model.safetensors").write_bytes(BAD["foreign safetensors"][0])
    assert ser.peek(str(tmp_path / "model.safetensors")) is None
    (tmp_path / "junk.safetensors").write_bytes(BAD["random bytes"][0])
    assert ser.peek(str(tmp_path / "junk.safetensors")) is None


def test_files_are_standard_safetensors_with_aligned_tensors(tmp_path):
    """Written here (for stable bytes), read by the safetensors library exactly as by this pack."""
    from safetensors import safe_open

    m = _memory()
    p = tmp_path / "m.safetensors"
    ser.save(m, str(p))
    tensors, meta = ser.encode(m)
    with safe_open(str(p), framework="pt") as f:
        assert f.metadata() == meta
        assert sorted(f.keys()) == sorted(tensors)
        for name in f.keys():
            t = f.get_tensor(name)
            assert t.dtype == tensors[name].dtype and torch.equal(t, tensors[name]), name
    data = p.read_bytes()
    n = struct.unpack("<Q", data[:8])[0]
    assert (8 + n) % 8 == 0
    header = json.loads(data[8:8 + n])
    for name, entry in header.items():
        if name != "__metadata__":
            assert entry["data_offsets"][0] % tensors[name].element_size() == 0, name


# ----------------------------------------------------------------------- hardening (issue 12)

def _raw_header(data: bytes, edit_text) -> bytes:
    """`data` with its safetensors header text replaced by edit_text(text)."""
    n = struct.unpack("<Q", data[:8])[0]
    text = edit_text(data[8:8 + n].decode()).encode()
    return struct.pack("<Q", len(text)) + text + data[8 + n:]


def _layers_pointing_at_the_first_three(d):
    d["layers"] = [dict(d["layers"][i % 3], name=f"copy {i}") for i in range(60)]


def _doc_text(edit):
    def meta(m):
        text = m["layer_memory"].replace('"cfg": 4.5', '"cfg":4.5')
        assert '"cfg":4.5' in text
        m["layer_memory"] = edit(text)
    return meta


HARDENING = {
    "deep nesting in the header": (_raw_header(GOOD, lambda t: '{"a":' + "[" * 100_000
                                               + "]" * 100_000 + "," + t[1:]),
                                   "nests deeper than"),
    "deep nesting in the document": (rewrite(GOOD, lambda d: d.update(
        extra=json.loads("[" * 500 + "]" * 500))),
                                     "nests deeper than"),
    "NaN literal": (rewrite(GOOD,
                            edit_meta=_doc_text(lambda t: t.replace('"cfg":4.5', '"cfg":NaN'))),
                    "non-number NaN"),
    "cfg 1e999 (inf)": (rewrite(GOOD, edit_meta=_doc_text(
        lambda t: t.replace('"cfg":4.5', '"cfg":1e999'))),
                        r"schedule\.cfg is not valid"),
    "duplicate key": (rewrite(GOOD, edit_meta=_doc_text(
        lambda t: t.replace('"cfg":4.5', '"cfg":4.5,"cfg":5'))),
                      "same key twice"),
    "huge integer": (rewrite(GOOD, edit_meta=_doc_text(
        lambda t: t.replace('"cfg":4.5', '"cfg":' + "9" * 5000))),
                     "not JSON"),
    "inf sigma": (rewrite(GOOD, edit_tensors=lambda t: t["layers.0.trajectory.sigmas"]
                          .__setitem__(0, float("inf"))),
                  "trajectory sigmas are not finite"),
    "sigma above the schedule": (rewrite(GOOD, edit_tensors=lambda t: (
        t["layers.0.trajectory.sigmas"].__setitem__(0, 50.0))),
                                 "trajectory sigmas are not finite numbers from 0"),
    "NaN in a mask": (rewrite(GOOD, edit_tensors=lambda t: t["layers.1.latent_mask"]
                              .__setitem__((0, 0), float("nan"))),
                      "latent mask has values outside 0..1"),
    "mask above 1": (rewrite(GOOD, edit_tensors=lambda t: t["layers.2.latent_mask"]
                             .__setitem__((1, 1), 2.0)),
                     "latent mask has values outside 0..1"),
    "inf in an embedding": (rewrite(GOOD, edit_tensors=lambda t: t["layers.0.negative"].view(-1)
                                    .__setitem__(5, float("-inf"))),
                            "negative prompt embedding holds NaN"),
    "inf final latent": (rewrite(GOOD, edit_tensors=lambda t: t["layers.2.trajectory.final"]
                                 .view(-1).__setitem__(0, float("inf"))),
                         "stored latents hold NaN"),
    "60 layers sharing 3 layers' tensors": (rewrite(GOOD, _layers_pointing_at_the_first_three),
                                            "tensors of its own"),
    # replaced below (needs the offset)
    "bool tensor holding 2": (_raw_header(GOOD, lambda t: t), None),
    "unknown family": (rewrite(GOOD, lambda d: d["fingerprint"].update(family="hidream")),
                       "family is not one"),
    "sdxl family with T5 width": (rewrite(GOOD, lambda d: d["fingerprint"].update(family="sdxl"),
                                          edit_meta=lambda m: m.update(format_version="3")),
                                  r"expected \[1, \*, 2048\]"),
    "version with a full-width digit": (rewrite(GOOD, edit_meta=lambda m: m.update(
        format_version="\uff12")), "not a number"),
}


def _bool_two(data: bytes) -> bytes:
    n = struct.unpack("<Q", data[:8])[0]
    begin = json.loads(data[8:8 + n])["layers.1.token_mask"]["data_offsets"][0]
    out = bytearray(data)
    out[8 + n + begin] = 2
    return bytes(out)


HARDENING["bool tensor holding 2"] = (_bool_two(GOOD), "values other than 0 and 1")


@pytest.mark.parametrize("case", sorted(HARDENING))
def test_crafted_files_are_refused_without_echoing_contents(case):
    data, reason = HARDENING[case]
    with pytest.raises(LayerMemoryError) as e:
        ser.from_bytes(data, "crafted.safetensors")
    import re
    text = str(e.value)
    assert re.search(reason, text) and "crafted.safetensors" in text, text
    assert "9999" not in text and "could not be decoded" not in text


def test_a_header_length_is_never_echoed_and_no_tensor_byte_is_read_before_the_checks(tmp_path,
                                                                                      monkeypatch):
    big = struct.pack("<Q", 0x4142434445464748) + b"\0" * 64
    with pytest.raises(LayerMemoryError) as e:
        ser.from_bytes(big, "x.safetensors")
    assert str(0x4142434445464748) not in str(e.value) and "not a safetensors file" in str(e.value)
    # a 2 GiB file (sparse) whose header promises 2 GiB of tensors but whose document is wrong
    path = tmp_path / "huge.safetensors"
    claiming_2_gib(GOOD, "layers.0.trajectory.x", str(path))
    assert path.stat().st_size > 2 ** 31
    from layermem_core import safetensors_io

    def forbidden(*a):
        raise AssertionError("tensor bytes were read before the header and document were checked")

    monkeypatch.setattr(safetensors_io, "read_tensors", forbidden)
    monkeypatch.setattr(ser, "read_tensors", forbidden)
    with pytest.raises(LayerMemoryError,
                       match=r"trajectory x\) has shape \[2097152, 4, 8, 8\], "
                             r"expected \[3, 4, 8, 8\]"):
        ser.load(str(path))


def test_shared_negative_and_sigmas_still_load_and_sharing_is_kept():
    back = ser.from_bytes(GOOD, "g")
    assert back.layers[2].negative.embedding is back.layers[0].negative.embedding
    assert back.layers[1].trajectory.sigmas is back.layers[0].trajectory.sigmas


def test_values_that_could_not_be_loaded_back_are_not_saved():
    m = _memory(2)
    m.layers[1].trajectory.x[0, 0, 0, 0] = float("nan")  # test-local memory
    with pytest.raises(LayerMemoryError,
                       match="cannot save this memory: layer 1's stored latents hold NaN"):
        ser.to_bytes(m)


def test_format_version_2_for_pixart_3_for_other_families_and_pooled():
    from dataclasses import replace
    m = _memory(2)
    assert ser.encode(m)[1]["format_version"] == "2"
    g = torch.Generator().manual_seed(3)

    def sdxl_cond(c):
        return Conditioning(torch.randn(1, 3, 2048, generator=g), c.extras,
                            torch.randn(1, 1280, generator=g))

    neg = sdxl_cond(m.layers[0].negative)
    layers = tuple(replace(layer, positive=sdxl_cond(layer.positive), negative=neg)
                   for layer in m.layers)
    sdxl = replace(m, fingerprint=replace(m.fingerprint, family="sdxl", image_model="sdxl"),
                   layers=layers)
    data = ser.to_bytes(sdxl)
    assert ser.read_metadata(data)["format_version"] == "3"
    back = ser.from_bytes(data, "sdxl.safetensors")
    _same(sdxl, back)
    assert back.fingerprint.family == "sdxl"
    assert torch.equal(back.layers[1].positive.pooled, sdxl.layers[1].positive.pooled)
    assert back.layers[1].negative.pooled is back.layers[0].negative.pooled
    # a version-2 file as main wrote it (family stored, version 2) and one without the key both load
    without = rewrite(GOOD, lambda d: d["fingerprint"].pop("family"))
    assert ser.from_bytes(without, "old.safetensors").fingerprint.family == "pixart"


def test_names_with_any_text_round_trip():
    from dataclasses import replace
    m = _memory(2)
    odd = "\ud800 lone surrogate, NUL \x00, quote \" [[[{{{"
    m = m.with_layers((m.layers[0], replace(m.layers[1], name=odd, prompt=odd * 3)))
    back = ser.from_bytes(ser.to_bytes(m), "odd.safetensors")
    assert back.layers[1].name == odd and back.layers[1].prompt == odd * 3


def test_float16_storage_refuses_latents_it_cannot_hold():
    m = _memory(2)
    # finite in float32, inf in float16 (test-local memory)
    m.layers[1].trajectory.x[0, 0, 0, 0] = 1e6
    with pytest.raises(LayerMemoryError, match="trajectory_storage.*beyond the range of float16"):
        ser.to_bytes(m, "float16")
    assert ser.from_bytes(ser.to_bytes(m), "f32").layers[1].trajectory.x[0, 0, 0, 0] == 1e6
