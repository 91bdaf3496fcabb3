"""An SD 1.5 workflow rewritten for the toy world (tools/toyworld: a small SD 1.5 UNet, text
encoder and TAESD trained in this repository on flat-colour shapes).

Why a rewrite of its own: the toy model knows a fixed vocabulary at a fixed size, so a real
prompt cannot be passed through as the random models' rewrite does. What changes:

- CheckpointLoaderSimple of an SD 1.5 file -> LayerMemToyWorldLoader; every CLIPTextEncode fed
  by it -> LayerMemToyWorldEncode with a caption of the toy world's words: a prompt that feeds a
  `negative` -> "" (the toy training's empty negative); one that feeds Layer Memory's (or Layer
  Memory from Image's) `positive` -> a background ("grass", "sky", "sand" or "night": the first
  named or hinted at in the text, e.g. "lawn" -> grass; else grass); any other -> an object,
  "a <colour> <shape>" (colour and shape named or hinted at, e.g. "ball" -> circle, "crate" ->
  square; else the next of a fixed list, in graph order);
- sizes: 128 px (the toy world's size) for Layer Memory / EmptyLatentImage, everything drawn
  at the scene's size (Layer Box, SolidMask, MaskComposite) scaled with it, boxes on the 8 px
  latent grid;
- sampling: 12 steps, dpmpp_2m / karras, cfg 5.0 (bench/toyworld_ablation.py's settings).

A workflow of another family (PixArt, SDXL, FLUX, SD3.5) is refused: the toy model is SD 1.5.
"""
from __future__ import annotations

import copy
import re

from tools.toyworld import world  # numpy only: no torch, no ComfyUI

from .errors import HeadlessError
from .random_rewrite import Rewrite, _scaled_strokes
from .results import node_label
from .workflows import is_link

TOY_LOADER = "LayerMemToyWorldLoader"  # tools/toyworld/nodes.py
TOY_ENCODER = "LayerMemToyWorldEncode"
SIZE = 128  # tools/toyworld/world.py
GRID = 8  # one latent pixel
STEPS, CFG, SAMPLER, SCHEDULER = 12, 5.0, "dpmpp_2m", "karras"
# the toy world's words (tools/toyworld/world.py), and everyday words that hint at them
BACKGROUNDS = {"grass": ("grass", "lawn", "meadow", "field", "park"),
               "sky": ("sky", "cloud", "clouds", "air"),
               "sand": ("sand", "beach", "desert", "dune", "dunes"),
               "night": ("night", "dark", "stars", "starry")}
COLOURS = world.COLOUR_NAMES
SHAPES = {"circle": ("circle", "ball", "round", "disc", "disk", "sphere", "coin", "wheel"),
          "square": ("square", "crate", "box", "cube", "block", "tile"),
          "triangle": ("triangle", "triangular", "sign", "pyramid", "tent"),
          "cross": ("cross", "plus")}
DEFAULT_OBJECTS = (("red", "circle"), ("blue", "square"), ("yellow", "triangle"),
                   ("purple", "cross"), ("orange", "circle"), ("white", "square"))
OTHER_FAMILIES = {"LayerMem_LoadPixArt", "CLIPTextEncodePixArtAlpha", "CLIPTextEncodeSDXL",
                  "UNETLoader", "DualCLIPLoader", "TripleCLIPLoader", "CLIPTextEncodeFlux",
                  "CLIPTextEncodeSD3"}
SCENE_STARTS = ("LayerMem_LayerMemory", "LayerMem_LayerMemoryFromImage")
RANK = {"object": 0, "background": 1, "negative": 2}


def _words(text: str) -> list[str]:
    return [w for w in re.split(r"[^a-z]+", str(text).lower()) if w]


def background_caption(text: str) -> str:
    """The first background the text names or hints at; grass otherwise."""
    for word in _words(text):
        for name, hints in BACKGROUNDS.items():
            if word in hints:
                return name
    return "grass"


def object_caption(text: str, index: int) -> str:
    """"a <colour> <shape>": the first colour and shape the text names or hints at; what it
    lacks comes from the index-th default object."""
    words = _words(text)
    default_colour, default_shape = DEFAULT_OBJECTS[index % len(DEFAULT_OBJECTS)]
    colour = next((w for w in words if w in COLOURS), default_colour)
    shape = next((name for w in words for name, hints in SHAPES.items() if w in hints),
                 default_shape)
    return f"a {colour} {shape}"


def _roles(prompt: dict) -> dict[str, str]:
    """Per node id, how its output is used: 'negative', 'background' or 'object'."""
    roles: dict[str, str] = {}
    for node in prompt.values():
        for name, value in node["inputs"].items():
            if not is_link(value):
                continue
            if name == "negative":
                role = "negative"
            elif name == "positive" and node["class_type"] in SCENE_STARTS:
                role = "background"
            else:
                role = "object"
            # a prompt used as a negative anywhere stays empty; a background beats an object
            current = roles.get(value[0])
            if current is None or RANK[role] > RANK[current]:
                roles[value[0]] = role
    return roles


def _check_family(prompt: dict) -> set[str]:
    """The SD 1.5 checkpoint loaders; refuses a workflow of another family before anything runs."""
    for nid, node in prompt.items():
        name = str(node["inputs"].get("ckpt_name", ""))
        other = node["class_type"] in OTHER_FAMILIES or (
            node["class_type"] == "CheckpointLoaderSimple"
            and ("xl" in name.lower() or "sd3" in name.lower()))
        if other:
            raise HeadlessError(
                f"--toy-world runs SD 1.5 workflows only (CheckpointLoaderSimple + "
                f"CLIPTextEncode); node {node_label(prompt, nid)} is {node['class_type']}"
                f"{f' ({name})' if name else ''}. Fix: use --random-models for this workflow, "
                "or workflows/api/sd15_layered_scene_api.json for the toy world")
    loaders = {nid for nid, n in prompt.items() if n["class_type"] == "CheckpointLoaderSimple"}
    if not loaders:
        raise HeadlessError("--toy-world found no CheckpointLoaderSimple (an SD 1.5 checkpoint) "
                            "in the workflow. Fix: use workflows/api/sd15_layered_scene_api.json "
                            "or another SD 1.5 workflow")
    return loaders


def _scene_scale(prompt: dict) -> float:
    sizes = [(n["inputs"].get("width"), n["inputs"].get("height")) for n in prompt.values()
             if n["class_type"] in ("LayerMem_LayerMemory", "EmptyLatentImage")]
    sizes = [s for s in sizes if all(isinstance(v, int) for v in s)]
    return SIZE / min(sizes[0]) if sizes else 1.0


def _sampling(rw: Rewrite, nid: str, node: dict) -> None:
    for name, value in (("steps", STEPS), ("cfg", CFG), ("sampler_name", SAMPLER),
                        ("scheduler", SCHEDULER)):
        if name in node["inputs"]:
            rw.set(nid, node, name, value)


def _sizes(rw: Rewrite, nid: str, node: dict) -> None:
    for name in ("width", "height"):
        if isinstance(node["inputs"].get(name), int):
            rw.set(nid, node, name, SIZE)


def _on_grid(rw: Rewrite, nid: str, node: dict, names: tuple[str, ...]) -> None:
    rw.scale_inputs(nid, node, names, grid=GRID)


def _layer_box(rw: Rewrite, nid: str, node: dict) -> None:
    """A box typed for the workflow's size is scaled onto the 8 px grid; one drawn on the toy
    run's own picture (picture size 128, as the frontend sets it after a run) stays as drawn."""
    inputs = node["inputs"]
    if (inputs.get("picture_width"), inputs.get("picture_height")) == (SIZE, SIZE):
        return
    _on_grid(rw, nid, node, ("x", "y", "width", "height"))
    for name in ("picture_width", "picture_height"):
        if isinstance(inputs.get(name), int) and inputs[name] > 0:
            rw.set(nid, node, name, SIZE)
    if isinstance(inputs.get("strokes"), str) and inputs["strokes"].strip():
        rw.set(nid, node, "strokes", _scaled_strokes(inputs["strokes"], rw.scale))


def rewrite_for_toy_world(prompt: dict) -> tuple[dict, list[str]]:
    """The workflow on the toy model (see the module's text); returns (prompt, changes).
    Raises HeadlessError for a workflow the toy model cannot run."""
    loaders = _check_family(prompt)
    p = copy.deepcopy(prompt)
    rw = Rewrite(prompt, _scene_scale(p), (SIZE, SIZE), SIZE, STEPS, set(), loaders)
    roles, objects = _roles(p), 0
    for nid, node in p.items():
        kind = node["class_type"]
        if kind == "CheckpointLoaderSimple":
            node["class_type"] = TOY_LOADER
            node["inputs"] = {"ckpt_name": str(node["inputs"].get("ckpt_name", ""))}
            rw.changes.append(f"{node_label(prompt, nid)}: -> {TOY_LOADER}")
        elif kind == "CLIPTextEncode" and is_link(node["inputs"].get("clip")) \
                and node["inputs"]["clip"][0] in loaders:
            role = roles.get(nid, "object")
            text = node["inputs"].get("text", "")
            if role == "negative":
                caption = ""
            elif role == "background":
                caption = background_caption(text)
            else:
                caption, objects = object_caption(text, objects), objects + 1
            node["class_type"], node["inputs"] = TOY_ENCODER, {"text": caption}
            rw.changes.append(f"{node_label(prompt, nid)}: -> {TOY_ENCODER} {caption!r}")
        elif kind in ("LayerMem_LayerMemory", "EmptyLatentImage"):
            _sizes(rw, nid, node)
            _sampling(rw, nid, node)
        elif kind in ("LayerMem_LayerMemoryFromImage", "KSampler", "KSamplerAdvanced"):
            _sampling(rw, nid, node)
        elif kind == "ImageScale":
            _sizes(rw, nid, node)
        elif kind == "LayerMem_LayerMemoryBox":
            _layer_box(rw, nid, node)
        elif kind == "SolidMask":
            rw.scale_inputs(nid, node, ("width", "height"), minimum=1)
        elif kind == "MaskComposite":
            _on_grid(rw, nid, node, ("x", "y"))
        elif kind == "LayerMem_PreviewLayers":
            width = node["inputs"].get("line_width")
            if isinstance(width, int) and width > 0:
                rw.set(nid, node, "line_width", rw.scaled(width, 1, 1))
    _check_captions(p)
    return p, rw.changes


def _check_captions(prompt: dict) -> None:
    """Every caption is made of the toy encoder's words (it refuses others when it runs)."""
    known = {"a", "and", "on", *world.COLOUR_NAMES, *world.SHAPES, *world.BG_NAMES}
    for nid, node in prompt.items():
        if node["class_type"] == TOY_ENCODER:
            unknown = set(_words(node["inputs"]["text"])) - known
            if unknown:  # a bug here, not the user's: say so before anything runs
                raise HeadlessError(f"node {nid}: the toy rewrite made words the toy encoder "
                                    f"does not know: {sorted(unknown)}")
