"""Hundreds of seeded mutations of a valid memory file: each is refused with the pack's error, or
loads to exactly the memory its bytes say (checked against the safetensors library's reading).
Never a raw exception, never the decoder's last-resort message, never a hang."""
import json
import random
import resource
import struct
import time

import pytest
import safetensors.torch
import torch
from memory_files import small_memory

from layermem_core import serialization as ser
from layermem_core.errors import LayerMemoryError

SEEDS = 800
KINDS = 8
GOOD = ser.to_bytes(small_memory(layers=3))


def _split(data: bytes) -> tuple[dict, bytes]:
    n = struct.unpack("<Q", data[:8])[0]
    return json.loads(data[8:8 + n]), data[8 + n:]


def _join(header: dict, body: bytes, raw: str | None = None) -> bytes:
    text = (raw if raw is not None else json.dumps(header)).encode("utf-8", "surrogatepass")
    return struct.pack("<Q", len(text)) + text + body


def _nodes(value, path=()):
    """Every (path, value) in a JSON value."""
    yield path, value
    items = (value.items() if isinstance(value, dict)
             else enumerate(value) if isinstance(value, list) else ())
    for k, v in items:
        yield from _nodes(v, path + (k,))


def _set(root, path, value):
    for k in path[:-1]:
        root = root[k]
    root[path[-1]] = value


ODD_VALUES = [10 ** 30, -1, 2 ** 64, 1e308, -0.0, 0, "", "x" * 300, None, True, [], {}, [[[[]]]],
              "layers.0.trajectory.x", "schedule.sigmas", 3, 0.5, "\ud800", "１"]


def _mutate_json(rng: random.Random, doc) -> str | None:
    """Change one value of `doc` in place (or return raw text with a structural change)."""
    paths = [p for p, _ in _nodes(doc) if p]
    path = rng.choice(paths)
    kind = rng.randrange(5)
    if kind == 0:
        _set(doc, path, rng.choice(ODD_VALUES))
    elif kind == 1:  # swap two values
        other = rng.choice(paths)
        a, b = dict(_nodes(doc))[path], dict(_nodes(doc))[other]
        if path[:len(other)] != other and other[:len(path)] != path:
            _set(doc, path, b)
            _set(doc, other, a)
    elif kind == 2:  # deep nesting
        depth = rng.choice([20, 33, 200, 5000, 100_000])
        _set(doc, path, "NEST")
        return json.dumps(doc).replace('"NEST"', "[" * depth + "]" * depth)
    elif kind == 3:  # a duplicated key
        text = json.dumps(doc)
        i = text.find('"', rng.randrange(len(text)))
        j = text.find('":', i)
        if i >= 0 and j > i:
            return text[:i] + text[i:j + 2] + "1," + text[i:]
    else:  # remove a key or an item
        parent = dict(_nodes(doc))[path[:-1]]
        del parent[path[-1]]
    return None


def _mutate_entry(rng: random.Random, header: dict) -> None:
    """One tensor entry of the safetensors header: its dtype, shape or byte range, or the entry
    itself (removed, or copied under a name the document does not use)."""
    names = sorted(k for k in header if k != "__metadata__")
    name = rng.choice(names)
    entry = header[name]
    kind = rng.randrange(6)
    if kind == 0:
        entry["dtype"] = rng.choice(["F16", "BF16", "F64", "I64", "I8", "BOOL", "U8", "F8_E4M3",
                                     "f32", "", "COMPLEX"])
    elif kind == 1:
        shape = list(entry["shape"])
        entry["shape"] = rng.choice([shape[::-1], shape + [1], [0] + shape, shape[1:],
                                     [2 ** 40] + shape[1:], [-1] + shape[1:], []])
    elif kind == 2:
        a, b = entry["data_offsets"]
        other = header[rng.choice(names)]["data_offsets"]
        entry["data_offsets"] = rng.choice([[b, a], [a, a], [a + 4, b + 4], other,
                                            [a, b + 2 ** 33], [0, b - a]])
    elif kind == 3:
        del header[name]
    elif kind == 4:
        header[name + ".copy"] = dict(entry)
    else:
        entry[rng.choice(["extra", "dtype", "shape"])] = rng.choice(ODD_VALUES)


def _mutate_metadata(rng: random.Random, metadata: dict) -> None:
    """The `__metadata__` strings: format name and version, an unknown key, a value that is not a
    string, a huge or odd string."""
    key = rng.choice(sorted(metadata) + ["unknown_key"])
    metadata[key] = rng.choice(["", "1", "2", "3", "4", "99", "comfyui-layer-memory", "x" * 10 ** 6,
                                "\u202e", 3, None, ["2"], {"a": 1}, "null", "[]"])


def mutate(seed: int) -> bytes:
    rng = random.Random(seed)
    header, body = _split(GOOD)
    kind = seed % KINDS
    if kind == 6:  # the tensor entries of the safetensors header
        for _ in range(rng.randint(1, 2)):
            _mutate_entry(rng, header)
        return _join(header, body)
    if kind == 7:  # the metadata strings
        _mutate_metadata(rng, header["__metadata__"])
        return _join(header, body)
    if kind == 0:  # flip bytes anywhere
        data = bytearray(GOOD)
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        return bytes(data)
    if kind == 1:  # truncated or extended
        cut = rng.randrange(len(GOOD) + 64)
        return GOOD[:cut] + bytes(rng.randrange(256) for _ in range(max(0, cut - len(GOOD))))
    if kind == 2:  # header length field
        n = struct.unpack("<Q", GOOD[:8])[0]
        new = rng.choice([0, 1, n - 1, n + 1, n + 8, 2 ** 63, 2 ** 64 - 1, len(GOOD),
                          100 * 2 ** 20])
        return struct.pack("<Q", new) + GOOD[8:]
    if kind == 3:  # the safetensors header
        raw = _mutate_json(rng, header)
        return _join(header, body, raw)
    if kind == 4:  # the memory's JSON document
        doc = json.loads(header["__metadata__"]["layer_memory"])
        raw = _mutate_json(rng, doc)
        header["__metadata__"]["layer_memory"] = raw if raw is not None else json.dumps(doc)
        return _join(header, body)
    data = bytearray(GOOD)  # tensor bytes: NaN/inf or other bit patterns in the data section
    start = len(GOOD) - len(body)
    for _ in range(rng.randint(1, 4)):
        at = start + rng.randrange(len(body) - 4) // 4 * 4
        data[at:at + 4] = struct.pack("<f", rng.choice([float("nan"), float("inf"), 1e30, -3.0]))
    return bytes(data)


def _equals_its_bytes(memory, data: bytes) -> None:
    """Every tensor of the memory is the one the file's document names, as the library reads it."""
    stored = safetensors.torch.load(data)
    doc = json.loads(ser.read_metadata(data)["layer_memory"])
    assert torch.equal(memory.schedule.sigmas, stored[doc["schedule"]["sigmas"]])
    assert (memory.schedule.cfg == doc["schedule"]["cfg"]
            and list(memory.latent_shape) == doc["latent_shape"])
    for layer, ld in zip(memory.layers, doc["layers"], strict=True):
        assert (layer.name, layer.seed, layer.prompt) == (ld["name"], ld["seed"], ld["prompt"])
        assert torch.equal(layer.positive.embedding, stored[ld["positive"]["embedding"]])
        assert torch.equal(layer.latent_mask, stored[ld["latent_mask"]])
        for field in ("sigmas", "steps", "x", "final"):
            assert torch.equal(getattr(layer.trajectory, field),
                               stored[ld["trajectory"][field]].float()
                               if field == "x" else stored[ld["trajectory"][field]])


@pytest.mark.parametrize("chunk", range(KINDS))
def test_mutated_files_are_refused_or_load_what_they_say(chunk):
    loaded = refused = 0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    for seed in range(chunk, SEEDS, KINDS):
        data = mutate(seed)
        start = time.perf_counter()
        try:
            memory = ser.from_bytes(data, "fuzz.safetensors")
        except LayerMemoryError as e:
            text = str(e)
            assert "fuzz.safetensors" in text and "Fix:" in text, (seed, text)
            # the last-resort message: a missed case
            assert "could not be decoded" not in text, (seed, text)
            refused += 1
        else:
            _equals_its_bytes(memory, data)
            # a file cannot make the pack hold more than it says (float16 trajectories: twice)
            assert memory.nbytes() <= 2 * len(data), seed
            loaded += 1
        assert time.perf_counter() - start < 2.0, f"seed {seed} took too long"
    assert refused > 0
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak
    assert grown < 256 * 1024, f"peak RSS grew by {grown} KiB over the chunk"
    print(f"\nchunk {chunk}: {refused} refused, {loaded} loaded")
