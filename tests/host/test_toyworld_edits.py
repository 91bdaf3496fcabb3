"""The pack's real nodes on the toy world's trained model (issue 23): pictures that can be read.

On a fixed set of seeds: the VAE round trip keeps what the oracle reads; after AddLayer the
latent outside the box is bit-exact (and whether the oracle reads the object in its box: not
yet, see the strict xfail); after DeleteLayer of a middle layer the freed region reads as what
was below. Thresholds are what was measured with the committed weights (docs/toyworld.md),
less a margin.
"""
import numpy as np
import pytest
import torch

from tools.toyworld import edits, oracle, validate, world
from tools.toyworld import nodes as toy

pytestmark = pytest.mark.host
SETTINGS = edits.Settings()
# seed -> (background, colour, shape, box): fixed, spread over the vocabulary
CASES = [
    ("grass", "blue", "square", (32, 32, 80, 80)),
    ("sand", "red", "circle", (16, 48, 64, 96)),
    ("sky", "yellow", "triangle", (56, 24, 104, 72)),
    ("night", "white", "cross", (40, 56, 88, 104)),
    ("grass", "purple", "circle", (64, 64, 112, 112)),
    ("sand", "orange", "square", (24, 16, 72, 64)),
]
# Measured with the committed weights (2026-12-07, 2 shared CPU cores):
# VAE round trip on 40 scenes: pixel accuracy 0.9540, top object 0.9118 (distinct colours).
VAE_PIXEL_ACCURACY = 0.94
VAE_OBJECT_ACCURACY = 0.85
# AddLayer: the oracle read the asked-for object in 1 of 6 boxes with the third-stage UNet (0 of 6
# with the first, 1200-step one): too weak yet; a strict xfail until a better model passes.
MIN_ADD_HITS = 4
# DeleteLayer of the middle layer, third-stage UNet: freed region equal to the picture below
# 1.0, 0.821, 0.968, 1.0, 1.0, 0.849 (mean 0.940; the first UNet's mean was 0.845, one case
# 0.297); the deleted colour left there 0.0 in all six (the first UNet: 0.573 in one case).
MIN_DELETE_BELOW = 0.85
GHOST_MAX = 0.05
MIN_CLEAN_DELETES = 5


@pytest.fixture(scope="module")
def toy_host(host):
    toy.register(host.nodes)
    return host


def test_vae_round_trip_keeps_the_oracles_reading(toy_host):
    vae = toy.vae_model()

    @torch.no_grad()
    def round_trip(image: np.ndarray) -> np.ndarray:
        pixels = torch.from_numpy(image)[None]
        return vae.decode(vae.encode(pixels))[0].float().numpy()

    result = validate.validate(40, seed=1, decode=round_trip)
    print("vae round trip", result)
    assert result["pixel_accuracy"] >= VAE_PIXEL_ACCURACY
    assert result["object_accuracy_distinct_colours"] >= VAE_OBJECT_ACCURACY


@pytest.fixture(scope="module")
def runs(toy_host):
    """Per case: the background, AddLayer of the case's object, a second object overlapping it,
    then DeleteLayer of the first (a middle layer: the heal path)."""
    out = []
    for seed, (bg, colour, shape, box) in enumerate(CASES):
        memory, bg_latent = edits.background(toy_host, bg, seed, SETTINGS)
        memory, added = edits.add_layer(toy_host, memory, f"a {colour} {shape}", box, 100 + seed)
        other = (box[0] + 24, box[1] + 24, min(128, box[2] + 24), min(128, box[3] + 24))
        second = "a red circle" if colour == "blue" else "a blue circle"
        memory, _ = edits.add_layer(toy_host, memory, second, other, 200 + seed)
        _, deleted = edits.delete_layer(toy_host, memory, 1, 300 + seed)
        out.append({"bg": bg_latent, "added": added, "deleted": deleted, "other": other})
    return out


def test_add_layer_changes_nothing_outside_its_box(runs):
    for (_, _, _, box), run in zip(CASES, runs, strict=True):
        assert edits.outside_latent_equal(run["bg"], run["added"], box)
        assert not torch.equal(run["bg"]["samples"], run["added"]["samples"])


@pytest.mark.xfail(strict=True, reason="measured 1 of 6 with the committed third-stage toy model "
                   "(docs/toyworld.md); passes only with a better-trained model")
def test_add_layer_draws_the_object_in_its_box(runs):
    hits = []
    for (_, colour, shape, box), run in zip(CASES, runs, strict=True):
        reading = oracle.read_picture_box(edits.decode(run["added"]), box)
        hits.append(reading.object == (colour, shape))
    print("add hits", hits)
    assert sum(hits) >= MIN_ADD_HITS, hits


def test_delete_layer_shows_what_was_below(runs):
    below_share, clean = [], 0
    for (bg, colour, _, box), run in zip(CASES, runs, strict=True):
        freed = edits.box_region(box) & ~edits.box_region(run["other"])
        below = oracle.labels(edits.decode(run["bg"]))
        now = oracle.labels(edits.decode(run["deleted"]))
        below_share.append(float((now == below)[freed].mean()))
        ghost = float((now == world.colour_class(colour))[freed].mean())
        print("delete", bg, colour, below_share[-1], ghost)
        clean += ghost < GHOST_MAX
    assert float(np.mean(below_share)) >= MIN_DELETE_BELOW, below_share
    assert clean >= MIN_CLEAN_DELETES, clean


def test_the_verbs_bench_on_one_scene(toy_host):
    """bench/toyworld_verbs.py's first scene: exact undo gives the latent below bit for bit in the
    freed region; every verb but the paper's unblended deletion keeps the latent outside its
    region bit-exact (the unblended tail frees the whole picture, so outside differs); no
    deletion leaves more of the deleted colour than the picture below already reads."""
    from bench import toyworld_verbs
    from bench.toyworld_ablation import bench_scene

    scene = bench_scene(np.random.default_rng(20_000), world)
    result = toyworld_verbs.run_scene(toy_host, scene, 0, SETTINGS)
    deletions = result["deletions"]
    assert deletions["exact_undo"]["freed_latent_equal_below"] == 1.0
    assert deletions["default_heal"]["freed_latent_equal_below"] < 1.0  # it regenerated
    for name in ("exact_undo", "default_heal"):
        assert deletions[name]["latent_exact"], name
    assert not deletions["paper"]["latent_exact"]
    for name, d in deletions.items():
        assert d["freed_pixels"] > 0
        assert d["ghost"] <= d["ghost_below"] + GHOST_MAX, name
    assert result["move"]["latent_exact"] and result["reroll"]["latent_exact"]
