"""A workflow rewritten for the random test models and the test text encoder.

- LoadPixArt: the random PixArt-alpha 512 (Sigma when the file name says so), no text encoder,
  TAESD;
- CLIPTextEncodePixArtAlpha, and CLIPTextEncode fed by LoadPixArt: LayerMemTestEncode with the
  same text;
- sizes: LayerMemory (and EmptyLatentImage) width/height, text-encoder width/height, SolidMask
  sizes, MaskComposite x/y, a Layer Box's box (unless drawn on a picture of the target size) and
  a PreviewLayers line_width > 0 scaled by size / (smaller side of
  the first LayerMemory), e.g. 1024 -> 512. A workflow without LayerMemory (one that continues a
  memory from LoadLayerMemory) takes the scene size from its first PixArt text encoder instead:
  the loaded memory is then the one a rewritten workflow saved, at `size`;
- steps of LayerMemory, LayerMemoryFromImage (and KSampler / KSamplerAdvanced / BasicScheduler)
  -> `steps`; ImageScale (the picture's size before LayerMemoryFromImage) scaled like the scene;
- CheckpointLoaderSimple with an SDXL file (name with "xl"): LayerMemTestSDXLLoader (a small
  random SDXL UNet and TAESDXL); CLIPTextEncodeSDXL: LayerMemTestEncodeSDXL with the same text
  (text_g) and scaled sizes;
- CheckpointLoaderSimple with any other file (SD 1.5): LayerMemTestSD15Loader (a small random
  SD 1.5 UNet and TAESD); CLIPTextEncode fed by it: LayerMemTestEncodeSD15 with the same text;
- FLUX: UNETLoader (a file with "flux" in its name, or any in a workflow with a flux
  DualCLIPLoader) -> LayerMemTestFluxLoader (a small random FLUX.1-dev), DualCLIPLoader of type
  flux -> LayerMemTestFluxCLIPLoader, CLIPTextEncodeFlux (and CLIPTextEncode fed by that loader)
  -> LayerMemTestEncodeFlux with the same text (t5xxl) and guidance, VAELoader of the FLUX VAE
  (ae.safetensors, or a name with "flux") -> "taef1"; FluxGuidance stays as it is;
- SD3.5: CheckpointLoaderSimple of a file with "sd3" in its name -> LayerMemTestSD3Loader (a small
  random SD3.5 Large and TAESD3), TripleCLIPLoader -> LayerMemTestSD3CLIPLoader, CLIPTextEncodeSD3
  (its t5xxl text) and CLIPTextEncode fed by either -> LayerMemTestEncodeSD3 with the same text.

SaveLayerMemory and LoadLayerMemory stay as they are: a memory saved by a rewritten workflow was
made with the random model, and the rewritten workflow that loads it (same file name) uses that
model too. Each node type has its rules in RULES; a rule changes one node in place.
"""
from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass, field

from tools.pack_labels import labels

from .base_folder import TEST_ENCODER
from .models import RANDOM_ALPHA, RANDOM_SIGMA
from .results import node_label
from .workflows import is_link

TEST_SDXL_LOADER = "LayerMemTestSDXLLoader"  # tools/random_text_encoder/
TEST_SDXL_ENCODER = "LayerMemTestEncodeSDXL"
TEST_SD15_LOADER = "LayerMemTestSD15Loader"
TEST_SD15_ENCODER = "LayerMemTestEncodeSD15"
TEST_FLUX_LOADER = "LayerMemTestFluxLoader"
TEST_FLUX_CLIP = "LayerMemTestFluxCLIPLoader"
TEST_FLUX_ENCODER = "LayerMemTestEncodeFlux"
FLUX_VAE_STAND_IN = "taef1"  # VAELoader's TAEF1 (random files in vae_approx/)
TEST_SD3_LOADER = "LayerMemTestSD3Loader"
TEST_SD3_CLIP = "LayerMemTestSD3CLIPLoader"
TEST_SD3_ENCODER = "LayerMemTestEncodeSD3"


@dataclass
class Rewrite:
    """One rewrite in progress: the scale, the target size and steps, and the changes so far."""

    original: dict  # the prompt as given, for the node labels in `changes`
    scale: float
    image_size: tuple[int, int]  # the scene's size after scaling, for text encoders without one
    size: int
    steps: int
    pixart_loaders: set[str]
    sd15_loaders: set[str]  # CheckpointLoaderSimple nodes of a non-SDXL checkpoint
    flux_clips: set[str] = field(default_factory=set)  # DualCLIPLoader nodes of type flux
    sd3_clips: set[str] = field(default_factory=set)  # TripleCLIPLoader, SD3 checkpoint loaders
    changes: list[str] = field(default_factory=list)

    def scaled(self, value: int, grid: int = 1, minimum: int = 0) -> int:
        return max(minimum, int(round(value * self.scale / grid)) * grid)

    def set(self, node_id: str, node: dict, name: str, value) -> None:
        """Set an input that is not fed by a link, and record the change."""
        old = node["inputs"].get(name)
        if old != value and not is_link(old):
            node["inputs"][name] = value
            label = node_label(self.original, node_id)
            self.changes.append(f"{label}: {name} {old!r} -> {value!r}")

    def scale_inputs(self, node_id: str, node: dict, names: tuple[str, ...], grid: int = 1,
                     minimum: int = 0) -> None:
        for name in names:
            if isinstance(node["inputs"].get(name), int):
                self.set(node_id, node, name, self.scaled(node["inputs"][name], grid, minimum))


Rule = Callable[[Rewrite, str, dict], None]


def _random_loader(rw: Rewrite, node_id: str, node: dict) -> None:
    sigma = "sigma" in str(node["inputs"].get("unet_name", "")).lower()
    rw.set(node_id, node, "unet_name", RANDOM_SIGMA if sigma else RANDOM_ALPHA)
    rw.set(node_id, node, "text_encoder", labels.NO_TEXT_ENCODER)
    rw.set(node_id, node, "vae_name", "taesdxl" if sigma else "taesd")


def _test_encoder(rw: Rewrite, node_id: str, node: dict) -> None:
    inputs = node["inputs"]
    if node["class_type"] == "CLIPTextEncode" and not (
            is_link(inputs.get("clip")) and inputs["clip"][0] in rw.pixart_loaders):
        return  # a CLIPTextEncode of another model's CLIP stays as it is

    def side(name: str, default: int):
        value = inputs.get(name)
        return rw.scaled(value) if isinstance(value, int) else inputs.get(name, default)

    w, h = side("width", rw.image_size[0]), side("height", rw.image_size[1])
    node["class_type"] = TEST_ENCODER
    node["inputs"] = {"text": inputs.get("text", ""), "width": w, "height": h}
    rw.changes.append(f"{node_label(rw.original, node_id)}: -> {TEST_ENCODER} (same text, {w}x{h})")


def _is_sdxl_file(name) -> bool:
    return "xl" in str(name).lower()


def _is_sd3_file(name) -> bool:
    return "sd3" in str(name).lower()


def _test_checkpoint_loader(rw: Rewrite, node_id: str, node: dict) -> None:
    name = str(node["inputs"].get("ckpt_name", ""))
    loader = (TEST_SD3_LOADER if _is_sd3_file(name)
              else TEST_SDXL_LOADER if _is_sdxl_file(name) else TEST_SD15_LOADER)
    node["class_type"] = loader
    rw.changes.append(f"{node_label(rw.original, node_id)}: -> {loader} ({name})")


def _test_sd15_encoder(rw: Rewrite, node_id: str, node: dict) -> None:
    clip = node["inputs"].get("clip")
    if node["class_type"] != "CLIPTextEncode" or not (
            is_link(clip) and clip[0] in rw.sd15_loaders):
        return  # another model's CLIP (or already rewritten for PixArt)
    node["class_type"] = TEST_SD15_ENCODER
    node["inputs"] = {"text": node["inputs"].get("text", "")}
    rw.changes.append(f"{node_label(rw.original, node_id)}: -> {TEST_SD15_ENCODER} (same text)")


def _test_sdxl_encoder(rw: Rewrite, node_id: str, node: dict) -> None:
    inputs = node["inputs"]
    sizes = {name: rw.scaled(inputs[name]) if isinstance(inputs.get(name), int)
             else inputs.get(name)
             for name in ("width", "height", "crop_w", "crop_h", "target_width", "target_height")}
    node["class_type"] = TEST_SDXL_ENCODER
    node["inputs"] = {"text": inputs.get("text_g", ""), **sizes}
    rw.changes.append(f"{node_label(rw.original, node_id)}: -> {TEST_SDXL_ENCODER} (same text)")


def _test_flux_loader(rw: Rewrite, node_id: str, node: dict) -> None:
    inputs = node["inputs"]
    if "flux" not in str(inputs.get("unet_name", "")).lower() and not rw.flux_clips:
        return  # another family's diffusion model file
    node["class_type"] = TEST_FLUX_LOADER
    node["inputs"] = {"unet_name": str(inputs.get("unet_name", "")),
                      "weight_dtype": str(inputs.get("weight_dtype", "default"))}
    rw.changes.append(f"{node_label(rw.original, node_id)}: -> {TEST_FLUX_LOADER} "
                      f"({inputs.get('unet_name')})")


def _test_flux_clip(rw: Rewrite, node_id: str, node: dict) -> None:
    inputs = node["inputs"]
    if inputs.get("type") != "flux":
        return
    node["class_type"] = TEST_FLUX_CLIP
    node["inputs"] = {name: str(inputs.get(name, "")) for name in ("clip_name1", "clip_name2",
                                                                     "type")}
    rw.changes.append(f"{node_label(rw.original, node_id)}: -> {TEST_FLUX_CLIP}")


def _test_flux_encoder(rw: Rewrite, node_id: str, node: dict) -> None:
    inputs = node["inputs"]
    clip = inputs.get("clip")
    flux_text = node["class_type"] == "CLIPTextEncodeFlux"
    if not flux_text and not (is_link(clip) and clip[0] in rw.flux_clips):
        return  # a CLIPTextEncode of another model's CLIP
    new = {"text": inputs.get("t5xxl" if flux_text else "text", "")}
    if is_link(clip):
        new["clip"] = clip
    if flux_text:
        new["guidance"] = inputs.get("guidance", 3.5)
    node["class_type"] = TEST_FLUX_ENCODER
    node["inputs"] = new
    rw.changes.append(f"{node_label(rw.original, node_id)}: -> {TEST_FLUX_ENCODER} (same text)")


def _flux_vae(rw: Rewrite, node_id: str, node: dict) -> None:
    name = str(node["inputs"].get("vae_name", ""))
    if name.lower() == "ae.safetensors" or "flux" in name.lower():
        rw.set(node_id, node, "vae_name", FLUX_VAE_STAND_IN)


def _test_sd3_clip(rw: Rewrite, node_id: str, node: dict) -> None:
    node["class_type"] = TEST_SD3_CLIP
    node["inputs"] = {f"clip_name{i}": str(node["inputs"].get(f"clip_name{i}", ""))
                      for i in (1, 2, 3)}
    rw.changes.append(f"{node_label(rw.original, node_id)}: -> {TEST_SD3_CLIP}")


def _test_sd3_encoder(rw: Rewrite, node_id: str, node: dict) -> None:
    inputs = node["inputs"]
    clip = inputs.get("clip")
    sd3_text = node["class_type"] == "CLIPTextEncodeSD3"
    if not sd3_text and not (is_link(clip) and clip[0] in rw.sd3_clips):
        return  # a CLIPTextEncode of another model's CLIP
    new = {"text": inputs.get("t5xxl" if sd3_text else "text", "")}
    if is_link(clip):
        new["clip"] = clip
    node["class_type"] = TEST_SD3_ENCODER
    node["inputs"] = new
    rw.changes.append(f"{node_label(rw.original, node_id)}: -> {TEST_SD3_ENCODER} (same text)")


def _scene_size(rw: Rewrite, node_id: str, node: dict) -> None:
    rw.scale_inputs(node_id, node, ("width", "height"), grid=16, minimum=rw.size)


def _steps(rw: Rewrite, node_id: str, node: dict) -> None:
    if isinstance(node["inputs"].get("steps"), int):
        rw.set(node_id, node, "steps", rw.steps)


def _scaled(*names: str, grid: int = 1, minimum: int = 0) -> Rule:
    def rule(rw: Rewrite, node_id: str, node: dict) -> None:
        rw.scale_inputs(node_id, node, names, grid, minimum)
    return rule


def _line_width(rw: Rewrite, node_id: str, node: dict) -> None:
    width = node["inputs"].get("line_width")
    if isinstance(width, int) and width > 0:
        rw.set(node_id, node, "line_width", rw.scaled(width, 1, 1))


def _layer_box(rw: Rewrite, node_id: str, node: dict) -> None:
    """A box typed for the workflow's size is scaled like SolidMask + MaskComposite; a box drawn on
    the rewritten run's picture (picture size already the target) stays as drawn."""
    drawn_on = (node["inputs"].get("picture_width"), node["inputs"].get("picture_height"))
    if drawn_on == rw.image_size:
        return
    rw.scale_inputs(node_id, node, ("x", "y", "width", "height", "picture_width",
                                    "picture_height"))
    strokes = node["inputs"].get("strokes")
    if isinstance(strokes, str) and strokes.strip():
        rw.set(node_id, node, "strokes", _scaled_strokes(strokes, rw.scale))


def _scaled_strokes(text: str, scale: float) -> str:
    """Brush strokes (JSON text) painted for the workflow's size, scaled with the scene; text that
    is not strokes is left for the node to refuse."""
    try:
        strokes = json.loads(text)
        for s in strokes:
            s["radius"] = round(s["radius"] * scale, 2)
            s["points"] = [[round(c * scale, 2) for c in p] for p in s["points"]]
    except (ValueError, TypeError, KeyError, AttributeError):
        return text
    return json.dumps(strokes, separators=(",", ":"))


RULES: dict[str, tuple[Rule, ...]] = {
    "LayerMem_LoadPixArt": (_random_loader,),
    "CLIPTextEncodePixArtAlpha": (_test_encoder,),
    "CLIPTextEncode": (_test_encoder, _test_sd15_encoder, _test_flux_encoder, _test_sd3_encoder),
    "TripleCLIPLoader": (_test_sd3_clip,),
    "CLIPTextEncodeSD3": (_test_sd3_encoder,),
    "UNETLoader": (_test_flux_loader,),
    "DualCLIPLoader": (_test_flux_clip,),
    "CLIPTextEncodeFlux": (_test_flux_encoder,),
    "VAELoader": (_flux_vae,),
    "LayerMem_LayerMemory": (_scene_size, _steps),
    "LayerMem_LayerMemoryFromImage": (_steps,),
    "ImageScale": (_scene_size,),
    "CheckpointLoaderSimple": (_test_checkpoint_loader,),
    "CLIPTextEncodeSDXL": (_test_sdxl_encoder,),
    "EmptyLatentImage": (_scaled("width", "height", grid=8, minimum=8),),
    "KSampler": (_steps,),
    "KSamplerAdvanced": (_steps,),
    "BasicScheduler": (_steps,),
    "SolidMask": (_scaled("width", "height", minimum=1),),
    "MaskComposite": (_scaled("x", "y"),),
    "LayerMem_PreviewLayers": (_line_width,),
    "LayerMem_LayerMemoryBox": (_layer_box,),
}


def _sizes(prompt: dict, class_type: str) -> list[tuple[int, int]]:
    found = [(n["inputs"].get("width"), n["inputs"].get("height"))
             for n in prompt.values() if n["class_type"] == class_type]
    return [s for s in found if all(isinstance(v, int) for v in s)]


def _start(prompt: dict, original: dict, steps: int, size: int) -> Rewrite:
    """The scale from the scene's size: LayerMemory's, else (a loaded memory) the prompts'."""
    sizes = _sizes(prompt, "LayerMem_LayerMemory") or _sizes(prompt, "CLIPTextEncodePixArtAlpha")
    scale = size / min(sizes[0]) if sizes and min(sizes[0]) > size else 1.0
    rw = Rewrite(original, scale, (size, size), size, steps,
                 {nid for nid, n in prompt.items() if n["class_type"] == "LayerMem_LoadPixArt"},
                 {nid for nid, n in prompt.items() if n["class_type"] == "CheckpointLoaderSimple"
                  and not _is_sdxl_file(n["inputs"].get("ckpt_name", ""))
                  and not _is_sd3_file(n["inputs"].get("ckpt_name", ""))},
                 {nid for nid, n in prompt.items() if n["class_type"] == "DualCLIPLoader"
                  and n["inputs"].get("type") == "flux"},
                 {nid for nid, n in prompt.items() if n["class_type"] == "TripleCLIPLoader"
                  or n["class_type"] == "CheckpointLoaderSimple"
                  and _is_sd3_file(n["inputs"].get("ckpt_name", ""))})
    if sizes:
        rw.image_size = (rw.scaled(sizes[0][0], 16, size), rw.scaled(sizes[0][1], 16, size))
    return rw


def rewrite_for_random_models(prompt: dict, steps: int = 3,
                              size: int = 512) -> tuple[dict, list[str]]:
    """The workflow for the random test models and the test text encoder (see the module's text);
    returns (prompt, list of changes)."""
    p = copy.deepcopy(prompt)
    rw = _start(p, prompt, steps, size)
    for node_id, node in p.items():
        for rule in RULES.get(node["class_type"], ()):
            rule(rw, node_id, node)
    return p, rw.changes
