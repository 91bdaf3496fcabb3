"""The stack across any sequence of edits, as a Hypothesis state machine (issue 18).

Rules are the verbs (add on top, insert, delete with and without a heal, unblended tails,
reroll, re-prompt, move, new background, history, save and load in float32 and float16), from a
generated background or from a picture (LayerMemoryFromImage's memory); after every rule the
invariants are checked against a reference written from the README's rules alone, not from the
pack's own regions:

- a verb may change a stored value only inside its own region: the layer's old and new mask
  supports, and for a heal those grown by a bound wider than any heal's grow (computed here with
  a max-pool, not with the pack's `deletion_region` / `visible_region`);
- a new background changes composite k only where none of layers 1..k has its mask fully on;
- history and save/load keep every stored value;
- every composite is the one below where its mask is 0 and the layer's own sample where its
  mask is 1 (`StackModel`), so no removed layer survives in any composite above the one that
  held it; and where a deleted layer showed clearly in the top composite, no value is the old one;
- the memory an edit read is never changed (value semantics).

The ordered pairs of verbs run are counted and printed; the long profile fails unless every
ordered pair of verbs ran at least once.

Profiles: CI runs a small derandomised profile (`LAYERMEM_STATEFUL=ci`, the default); set
`LAYERMEM_STATEFUL=long` for a nightly-style run (see README "Tests").
"""
from __future__ import annotations

import os
from collections import Counter

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from stack_check import StackModel, points

from tools import scenes

pytestmark = pytest.mark.host
SIZE, STEPS = 512, 2
MAX_LAYERS = 5
# A move's heal is the vacated support grown by EditLayer's heal_grow_pixels (2 latent cells
# by default); this bound is one wider. A delete's bound is its own heal_grow_pixels + 1.
HEAL_BOUND_CELLS = 3
# The deleted layer showed "clearly" where its visible weight and its own contribution are above
# these floors: there its old top value must not survive (feather rims below are rounding).
VISIBLE_FLOOR, CONTRIBUTION_FLOOR = 0.05, 1e-2

PROFILES = {
    "ci": settings(max_examples=10, stateful_step_count=6, derandomize=True, deadline=None,
                   suppress_health_check=list(HealthCheck), print_blob=True),
    "long": settings(max_examples=int(os.environ.get("LAYERMEM_STATEFUL_EXAMPLES", "100")),
                     stateful_step_count=10, deadline=None,
                     suppress_health_check=list(HealthCheck), print_blob=True),
}

boxes = st.tuples(st.floats(0.0, 0.6), st.floats(0.0, 0.6), st.floats(0.2, 0.4),
                  st.floats(0.2, 0.4)).map(lambda b: (b[0], b[1], b[0] + b[2], b[1] + b[3]))
seeds = st.integers(0, 10_000)


def _support(layer) -> torch.Tensor:
    return layer.latent_mask > 0


def _dilate(region: torch.Tensor, cells: int) -> torch.Tensor:
    x = region.float().reshape(1, 1, *region.shape[-2:])
    return (F.max_pool2d(x, 2 * cells + 1, stride=1, padding=cells) > 0).reshape(region.shape)


def _snapshot(memory) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    return [(layer.name, points(layer.trajectory).clone(), layer.latent_mask.clone())
            for layer in memory.layers]


def _assert_unchanged(memory, snapshot, what: str) -> None:
    assert len(memory.layers) == len(snapshot), f"{what}: the memory read by the edit changed"
    for layer, (name, p, m) in zip(memory.layers, snapshot, strict=True):
        assert layer.name == name and torch.equal(points(layer.trajectory), p) \
            and torch.equal(layer.latent_mask, m), f"{what}: the memory read by the edit changed"


def _assert_only_in(before, after, region: torch.Tensor, what: str) -> None:
    """Every layer present before and after (by name) keeps every stored value outside region."""
    old = {layer.name: layer for layer in before.layers}
    keep = ~region
    for k, layer in enumerate(after.layers):
        if layer.name not in old:
            continue
        a = points(old[layer.name].trajectory)[..., keep]
        b = points(layer.trajectory)[..., keep]
        changed = int((a != b).sum())
        assert changed == 0, (
            f"{what}: composite {k} ({layer.name}): {changed} values outside the edit's region "
            "changed")


def _assert_below_unchanged(before, after, k: int, what: str,
                            written: torch.Tensor | None = None,
                            owner: torch.Tensor | None = None) -> None:
    """Composites 0..k-1 of `after` are those of `before`, bit for bit, except where a heal or
    a deletion's tail was `written`: that lives in the composite of each pixel's newest
    remaining layer (`owner`, README) and above, which may be below k."""
    for i in range(k):
        keep = ... if written is None else ~(written & (owner <= i))
        a = points(before.layers[i].trajectory)[..., keep]
        b = points(after.layers[i].trajectory)[..., keep]
        assert before.layers[i].name == after.layers[i].name and torch.equal(a, b), (
            f"{what}: composite {i} below the edit changed")


def _assert_no_deleted_values(before, after, index: int, regenerated: torch.Tensor) -> None:
    """Where the deleted layer showed clearly in the old top, the new top holds none of its
    values (a rounding coincidence would need equality in every one of these values)."""
    layers = before.layers
    m = layers[index].latent_mask
    weight = m.clone()
    for layer in layers[index + 1:]:
        weight = weight * (1 - layer.latent_mask)
    own = points(layers[index].trajectory) - points(layers[index - 1].trajectory)
    clear = (weight > VISIBLE_FLOOR) & ~regenerated
    old_top, new_top = points(layers[-1].trajectory), points(after.layers[-1].trajectory)
    # value by value: where the layer's visible contribution to the old top was above the floor
    # (above float16's rounding too), the new top must differ
    sel = clear & ((weight * own).abs() > CONTRIBUTION_FLOOR)
    same = (old_top == new_top) & sel
    assert int(same.sum()) == 0, (
        f"{int(same.sum())} values of the deleted layer {layers[index].name!r} survive in the "
        "top composite where it showed clearly")


VERBS = ["add", "delete", "reroll", "move", "new", "history", "save"]


def _stack_machine(host, alpha, tmp_path, ran: Counter, pairs: Counter):
    """The state machine: each rule one verb through the pack's core, checked against the
    reference (StackModel) and the README's rules; `ran` and `pairs` count what it ran."""
    lo, eo = host.layer_ops, host.edit_ops

    def mask(box):
        return scenes.box_mask(SIZE, *box)

    class Stack(RuleBasedStateMachine):
        @initialize(seed=seeds, sampler=st.sampled_from(["euler", "dpmpp_2m", "heun"]),
                    from_picture=st.sampled_from([False, False, True]))
        def start(self, seed, sampler, from_picture):
            scheduler = "normal" if sampler == "heun" else "karras"
            self.picture = None
            if from_picture:  # LayerMemoryFromImage's memory: a given latent as the background
                ran["picture start"] += 1
                g = torch.Generator().manual_seed(seed)
                latent = torch.randn(1, 4, SIZE // 8, SIZE // 8, generator=g)
                self.memory = host.picture.memory_from_latent(
                    alpha, latent, scenes.cond(1), scenes.negative(), STEPS, 4.5, sampler,
                    scheduler, seed)
                self.picture = alpha.model.process_latent_in(latent).to(torch.float32)[0]
                # where the background must still end at the picture: all but what heals
                # regenerated (a heal where only the background shows lives in composite 0)
                self.picture_kept = torch.ones(latent.shape[-2:], dtype=torch.bool)
            else:
                self.memory = lo.start_memory(alpha, scenes.cond(1), scenes.negative(), SIZE,
                                              SIZE, seed=seed, steps=STEPS, cfg=4.5,
                                              sampler_name=sampler, scheduler=scheduler)
            self.serial = 0
            self.last = "start"
            # two objects from the start, so every verb applies from the first rule and after a
            # delete (the long profile must run every ordered pair of verbs)
            for k, box in enumerate([(0.2, 0.2, 0.5, 0.5), (0.45, 0.4, 0.8, 0.75)]):
                self.memory = lo.add_layer(self.memory, alpha, scenes.cond(seed + 3 + k),
                                           mask(box), seed=seed + 3 + k, name=self._name())
            self.model = StackModel(self.memory)
            self.tails: set[str] = set()  # layers whose AddLayer left an unblended tail

        def _name(self) -> str:
            self.serial += 1
            return f"L{self.serial}"

        def _regenerated(self, region: torch.Tensor) -> None:
            if self.picture is not None:
                self.picture_kept = self.picture_kept & ~region.reshape(self.picture_kept.shape)

        def _verb(self, verb: str) -> None:
            """Counts the verb and the ordered pair it makes with the one before."""
            ran[verb] += 1
            pairs[(self.last, verb)] += 1
            self.last = verb

        def _edit(self, make, what: str):
            self._verb(what.split()[0])
            before, snap = self.memory, _snapshot(self.memory)
            after = make(before)
            _assert_unchanged(before, snap, what)
            return before, after

        @precondition(lambda self: len(self.memory.layers) < MAX_LAYERS)
        @rule(box=boxes, seed=seeds, feather=st.sampled_from([0, 2]), at=st.integers(1, 4),
              tail=st.sampled_from([0.0, 0.0, 0.5]))
        def add(self, box, seed, feather, at, tail):
            name, n = self._name(), len(self.memory.layers)
            position = -1 if at >= n else at
            before, after = self._edit(
                lambda m: lo.add_layer(m, alpha, scenes.cond(seed), mask(box), seed=seed,
                                       name=name, position=position, feather_pixels=feather,
                                       unblended_fraction=tail),
                f"add {name} at {position} (unblended {tail})")
            k = after.resolve(name)
            if tail > 0:  # README: the composite it makes and those above may change anywhere
                ran["add with a tail"] += 1
                _assert_below_unchanged(before, after, k, f"add {name} with a tail")
                self.tails.add(name)
                self.model.tails.add(name)
            else:
                _assert_only_in(before, after, _support(after.layers[k]), f"add {name}")
            self.model.made(after, k)
            self.memory = after

        @precondition(lambda self: len(self.memory.layers) > 1)
        @rule(data=st.data(), regenerate=st.sampled_from([0.0, 0.5]),
              grow=st.sampled_from([0, 2, 8]), tail=st.sampled_from([0.0, 0.0, 0.5]))
        def delete(self, data, regenerate, grow, tail):
            k = data.draw(st.integers(1, len(self.memory.layers) - 1), label="layer")
            name = self.memory.layers[k].name
            support = _support(self.memory.layers[k])
            region = _dilate(support, grow + 1) if regenerate > 0 else support  # grow: latent cells
            tail = tail if regenerate > 0 else 0.0
            before, after = self._edit(
                lambda m: lo.delete_layer(m, alpha, k, regenerate_fraction=regenerate,
                                          heal_grow_pixels=grow, unblended_fraction=tail),
                f"delete {name} (unblended {tail})")
            assert name not in [layer.name for layer in after.layers]
            ran["delete with a tail"] += tail > 0
            healed = region if regenerate > 0 else torch.zeros_like(region)
            if tail > 0 or name in self.tails:
                # README: a deletion's tail may change, at each pixel, every composite from the
                # newest remaining layer shown there up; deleting a layer that has its own tail
                # removes that tail with it (every composite from the layer up may change)
                written = torch.ones_like(region) if tail > 0 else healed
                _assert_below_unchanged(before, after, k, f"delete {name} with a tail", written,
                                        host.stack.owners(list(after.layers)))
                region = torch.ones_like(region)
                self.tails.discard(name)
            _assert_only_in(before, after, region, f"delete {name}")
            self._regenerated(torch.ones_like(healed) if tail > 0 else healed)
            _assert_no_deleted_values(before, after, k, healed)
            self.model.healed(after, region)
            self.memory = after

        @precondition(lambda self: len(self.memory.layers) > 1)
        @rule(data=st.data(), seed=seeds, new_prompt=st.booleans())
        def reroll(self, data, seed, new_prompt):
            k = data.draw(st.integers(1, len(self.memory.layers) - 1), label="layer")
            positive = scenes.cond(seed + 1) if new_prompt else None
            before, after = self._edit(
                lambda m: eo.edit_layer(m, alpha, k, positive=positive, seed=seed),
                f"reroll {k}")
            _assert_only_in(before, after, _support(before.layers[k]), f"reroll {k}")
            self.model.made(after, k)
            self.memory = after

        @precondition(lambda self: len(self.memory.layers) > 1)
        @rule(data=st.data(), box=boxes, seed=seeds, regenerate=st.sampled_from([0.0, 0.5]))
        def move(self, data, box, seed, regenerate):
            k = data.draw(st.integers(1, len(self.memory.layers) - 1), label="layer")
            old = _support(self.memory.layers[k])
            before, after = self._edit(
                lambda m: eo.edit_layer(m, alpha, k, mask=mask(box), seed=seed,
                                        regenerate_fraction=regenerate), f"move {k}")
            new = _support(after.layers[k])
            region = (_dilate(old, HEAL_BOUND_CELLS) if regenerate > 0 else old) | new
            _assert_only_in(before, after, region, f"move {k}")
            self.model.made(after, k)
            self.model.healed(after, region & ~new)
            if regenerate > 0:
                self._regenerated(region & ~new)
            self.memory = after

        @precondition(lambda self: len(self.memory.layers) > 2)
        @rule(seed=seeds)
        def new_background(self, seed):
            before, after = self._edit(
                lambda m: eo.edit_layer(m, alpha, 0, positive=scenes.cond(seed + 7), seed=seed),
                "new background")
            covered = torch.zeros_like(_support(before.layers[0]))
            for k, (old, layer) in enumerate(zip(before.layers, after.layers, strict=True)):
                if k > 0:
                    covered = covered | (old.latent_mask >= 1)
                a, b = points(old.trajectory)[..., covered], points(layer.trajectory)[..., covered]
                assert torch.equal(a, b), f"new background changed composite {k} under a layer"
            self.picture = None  # the background is no longer the picture
            self.model.made(after, 0)
            for k in range(1, len(after.layers)):
                self.model.made(after, k)  # own samples outside full masks follow the background
            self.memory = after

        @precondition(lambda self: len(self.memory.layers) > 2)
        @rule(data=st.data())
        def history(self, data):
            count = data.draw(st.integers(1, len(self.memory.layers) - 1), label="count")
            self._verb("history")
            before = self.memory
            self.memory = before.truncated(count)
            _assert_only_in(before, self.memory, torch.zeros_like(_support(before.layers[0])),
                            "history")

        @rule(dtype=st.sampled_from(["float32", "float32", "float16"]))
        def save_and_load(self, dtype):
            self._verb("save")
            path = str(tmp_path / f"stack_{self.serial}_{ran['save']}.safetensors")  # a new one
            try:  # a value past float16's range must be refused, never rounded to inf
                host.serialization.save(self.memory, path, trajectory_dtype=dtype)
            except host.errors.LayerMemoryError as refused:
                assert dtype == "float16" and "beyond the range of float16" in str(refused), refused
                assert not os.path.exists(path), "a refused save left a file behind"
                ran["float16 refused"] += 1
                return
            loaded = host.serialization.load(path)
            if dtype == "float32":
                _assert_only_in(self.memory, loaded, torch.zeros_like(_support(loaded.layers[0])),
                                "save and load")
            else:  # float16 storage rounds each value once; the stack is then that of the file
                ran["float16 load"] += 1
                for old, new in zip(self.memory.layers, loaded.layers, strict=True):
                    a, b = points(old.trajectory), points(new.trajectory)
                    assert float((a - b).abs().max()) <= 2e-3 * max(1.0, float(a.abs().max()))
                self.model = StackModel(loaded)
                self.model.tails = set(self.tails)
                self.picture = None if self.picture is None else loaded.layers[0].trajectory.final
            assert [layer.name for layer in loaded.layers] == \
                [layer.name for layer in self.memory.layers]
            self.memory = loaded

        @invariant()
        def stack_holds(self):
            if hasattr(self, "memory"):
                self.model.check(self.memory)
                if self.picture is not None:  # README: outside all masks the picture, bit for bit
                    kept = self.picture_kept
                    final = self.memory.layers[0].trajectory.final
                    assert torch.equal(final[..., kept], self.picture[..., kept]), \
                        "the picture memory's background no longer ends at the picture"

    return Stack


def _print_pairs(pairs: Counter) -> None:
    print("ordered pairs of verbs run (row, then column):")
    print("        " + " ".join(f"{v:>7}" for v in VERBS))
    for a in ["start", *VERBS]:
        print(f"{a:>7} " + " ".join(f"{pairs[(a, b)]:>7}" for b in VERBS))


def test_the_stack_holds_across_any_sequence_of_edits(host, alpha, tmp_path):
    profile = PROFILES[os.environ.get("LAYERMEM_STATEFUL", "ci")]
    ran: Counter = Counter()
    pairs: Counter = Counter()  # (verb, next verb) in one sequence
    run_state_machine_as_test(_stack_machine(host, alpha, tmp_path, ran, pairs), settings=profile)
    print(f"stateful stack: {profile.max_examples} sequences, verbs run: {dict(ran)}")
    # the profile must have exercised every sampling verb, or the invariants proved little
    assert set(ran) >= {"add", "delete", "reroll", "move", "new"}, dict(ran)
    _print_pairs(pairs)
    if profile is PROFILES["long"]:
        assert set(ran) >= {"add with a tail", "delete with a tail", "float16 load",
                            "picture start"}, dict(ran)


# ------------------------------------------------------------ every ordered pair, directed
# Hypothesis picks rules at random and, run after run, left some ordered pairs out (delete then
# delete, delete then new background): the directed tour below runs every one of the 49.
LAYER_RANGE = {"add": (1, MAX_LAYERS - 1), "delete": (2, 9), "reroll": (2, 9), "move": (2, 9),
               "new": (3, 9), "history": (3, 9), "save": (1, 9)}  # layers a verb needs
LAYER_CHANGE = {"add": 1, "delete": -1, "history": -1}


def pair_tour(layers: int) -> list[str]:
    """Verbs, from a memory of `layers` layers, that run every ordered pair of VERBS with each
    verb's precondition met: shortest paths (breadth first over (verb, layers)) to the next
    pair not run yet."""
    def ok(verb, n):
        lo, hi = LAYER_RANGE[verb]
        return lo <= n <= hi

    todo = {(a, b) for a in VERBS for b in VERBS}
    tour, state = [], ("start", layers)
    while todo:
        paths, seen, found = [(state, [])], {state}, None
        while paths and found is None:
            (verb, n), path = paths.pop(0)
            for nxt in VERBS:
                if not ok(nxt, n):
                    continue
                step = (nxt, n + LAYER_CHANGE.get(nxt, 0))
                if (verb, nxt) in todo:
                    found = path + [step]
                    break
                if step not in seen:
                    seen.add(step)
                    paths.append((step, path + [step]))
        assert found is not None, f"no verb sequence reaches the pairs {sorted(todo)}"
        for step in found:
            todo.discard((state[0], step[0]))
            tour.append(step[0])
            state = step
    return tour


class _Pick:
    """Stands in for Hypothesis's st.data() in the directed tour: every draw is `value`."""

    def __init__(self, value: int):
        self.value = value

    def draw(self, strategy, label=None):
        return self.value


def test_the_pair_tour_runs_every_ordered_pair():
    tour = pair_tour(3)
    ran = set(zip(["start", *tour], tour, strict=False))
    assert {(a, b) for a in VERBS for b in VERBS} <= ran
    n = 3
    for verb in tour:
        lo, hi = LAYER_RANGE[verb]
        assert lo <= n <= hi, (verb, n)
        n += LAYER_CHANGE.get(verb, 0)


@pytest.mark.skipif(os.environ.get("LAYERMEM_STATEFUL") != "long",
                    reason="the long profile (LAYERMEM_STATEFUL=long): about 60 sampled edits")
def test_every_ordered_pair_of_verbs_keeps_the_stack(host, alpha, tmp_path):
    """The state machine's own rules and checks, driven through a tour of every ordered pair of
    verbs (arguments varied by step: tails, float16, grow, regenerate, new prompts)."""
    ran: Counter = Counter()
    pairs: Counter = Counter()
    machine = _stack_machine(host, alpha, tmp_path, ran, pairs)()
    machine.start(seed=11, sampler="dpmpp_2m", from_picture=False)
    machine.stack_holds()
    boxes_ = [(0.1, 0.1, 0.4, 0.45), (0.5, 0.2, 0.85, 0.5), (0.3, 0.55, 0.7, 0.9),
              (0.05, 0.6, 0.35, 0.95)]
    for i, verb in enumerate(pair_tour(len(machine.memory.layers))):
        n = len(machine.memory.layers)
        k = 1 + i % (n - 1) if n > 1 else 1
        box = boxes_[i % len(boxes_)]
        if verb == "add":
            machine.add(box=box, seed=100 + i, feather=2 * (i % 2), at=1 + i % 4,
                        tail=0.5 if i % 5 == 0 else 0.0)
        elif verb == "delete":
            machine.delete(data=_Pick(k), regenerate=0.5 if i % 2 else 0.0, grow=(2, 8, 0)[i % 3],
                           tail=0.5 if i % 7 == 3 else 0.0)
        elif verb == "reroll":
            machine.reroll(data=_Pick(k), seed=200 + i, new_prompt=i % 2 == 0)
        elif verb == "move":
            machine.move(data=_Pick(k), box=box, seed=300 + i, regenerate=0.5 if i % 2 else 0.0)
        elif verb == "new":
            machine.new_background(seed=400 + i)
        elif verb == "history":
            machine.history(data=_Pick(n - 1))
        else:
            machine.save_and_load(dtype="float16" if i % 3 == 0 else "float32")
        machine.stack_holds()
    _print_pairs(pairs)
    missing = [(a, b) for a in VERBS for b in VERBS if not pairs[(a, b)]]
    assert not missing, f"the tour did not run these verbs in this order: {missing}"
