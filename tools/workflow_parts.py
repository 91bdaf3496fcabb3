"""Building blocks shared by the example workflows: the model family's loader and text encoder,
the canvas layout, notes, groups, Layer Box masks and the decode + save pair.

A `Family` says how one model family loads and encodes prompts: PixArt (the pack's LoadPixArt,
CLIPTextEncodePixArtAlpha), SDXL (the stock CheckpointLoaderSimple, CLIPTextEncodeSDXL) or FLUX.1
(the stock UNETLoader, DualCLIPLoader, VAELoader, CLIPTextEncodeFlux and FluxGuidance) or SD3.5
(the stock CheckpointLoaderSimple, TripleCLIPLoader, CLIPTextEncode). The first two loaders have
MODEL, CLIP and VAE as outputs 0, 1 and 2, so the rest of a graph is the same; FLUX's three
loaders and SD3.5's TripleCLIPLoader are wired to the same places by `Family.relink`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tools.workflow_graph import Graph, Group, Node
from tools.workflow_nodes import (
    FLUX_CLIP_L,
    FLUX_LINKS,
    FLUX_UNET,
    FLUX_VAE,
    MODEL_LINKS,
    SD15_CKPT,
    SD15_LINKS,
    SD35_CKPT,
    SD35_CLIP_G,
    SD35_LINKS,
    SDXL_CKPT,
    SDXL_LINKS,
    T5,
    UNET,
    VAE,
)

NOTES_DIR = Path(__file__).resolve().parent / "workflow_notes"
SIZE = 1024
POSITIVE_COLOR = ("#232", "#353")
NEGATIVE_COLOR = ("#322", "#533")
ROW = 540  # canvas height of one step
X_README, X_NOTE, X_TEXT, X_MASK, X_COMPOSITE = -1400, -480, 0, 440, 740
X_LAYER, X_DECODE, X_SAVE = 1060, 1440, 1680
SAVE_SIZE = (360, 420)
SCENE_SIZE = (600, 400)  # PreviewLayers: room for its images
MODEL, CLIP, VAE_OUT = (1, 0), (1, 1), (1, 2)  # the loader's outputs (node 1)
FLUX_CLIP, FLUX_VAE_NODE = 90, 91  # FLUX's DualCLIPLoader and VAELoader (its UNETLoader is 1)
SD3_CLIP = 90  # SD3.5's TripleCLIPLoader (its CheckpointLoaderSimple is 1)
FLUX_GUIDANCE = 3.5  # FLUX.1-dev's usual distilled guidance
NEGATIVE_TEXT = 100  # FLUX: the negative's CLIPTextEncode is this + the FluxGuidance node's id


@dataclass(frozen=True)
class Family:
    """How a model family loads (node 1) and encodes a prompt."""

    name: str  # "pixart", "sdxl", "flux", "sd35" or "sd15"
    cfg: float
    sampler: str = "dpmpp_2m"
    scheduler: str = "karras"

    def loader(self, g: Graph) -> None:
        if self.name == "flux":
            g.add(Node(1, "UNETLoader", {"unet_name": FLUX_UNET, "weight_dtype": "default"}, {},
                       title="Load FLUX.1-dev (diffusion model)", pos=(X_TEXT, -360),
                       size=(400, 110), properties={"models": [FLUX_LINKS["unet"]]}))
            g.add(Node(FLUX_CLIP, "DualCLIPLoader",
                       {"clip_name1": FLUX_CLIP_L, "clip_name2": T5, "type": "flux",
                        "device": "default"}, {},
                       title="Load CLIP-L + T5-XXL (text encoders)", pos=(X_MASK, -360),
                       size=(400, 160), properties={"models": FLUX_LINKS["clip"]}))
            g.add(Node(FLUX_VAE_NODE, "VAELoader", {"vae_name": FLUX_VAE}, {},
                       title="Load the FLUX VAE", pos=(X_LAYER, -360), size=(340, 80),
                       properties={"models": [FLUX_LINKS["vae"]]}))
            return
        if self.name == "sd35":
            g.add(Node(1, "CheckpointLoaderSimple", {"ckpt_name": SD35_CKPT}, {},
                       title="Load SD3.5 Large checkpoint (model, VAE)", pos=(X_TEXT, -360),
                       size=(400, 110), properties={"models": [SD35_LINKS["ckpt"]]}))
            g.add(Node(SD3_CLIP, "TripleCLIPLoader",
                       {"clip_name1": FLUX_CLIP_L, "clip_name2": SD35_CLIP_G, "clip_name3": T5},
                       {}, title="Load CLIP-L + CLIP-G + T5-XXL (text encoders)",
                       pos=(X_MASK, -360), size=(400, 130),
                       properties={"models": SD35_LINKS["clip"]}))
            return
        if self.name == "sd15":
            g.add(Node(1, "CheckpointLoaderSimple", {"ckpt_name": SD15_CKPT}, {},
                       title="Load SD 1.5 checkpoint (model, CLIP, VAE)", pos=(X_TEXT, -360),
                       size=(400, 110), properties={"models": SD15_LINKS}))
            return
        if self.name == "sdxl":
            g.add(Node(1, "CheckpointLoaderSimple", {"ckpt_name": SDXL_CKPT}, {},
                       title="Load SDXL checkpoint (model, CLIP, VAE)", pos=(X_TEXT, -360),
                       size=(400, 110), properties={"models": SDXL_LINKS}))
            return
        models = {"unet_name": UNET, "text_encoder": T5, "vae_name": VAE, "weight_dtype": "default"}
        g.add(Node(1, "LayerMem_LoadPixArt", models, {}, pos=(X_TEXT, -360), size=(400, 150),
                   properties={"models": MODEL_LINKS}))

    def encode(self, g: Graph, id: int, text: str, title: str, pos: tuple, width: int,
               color) -> None:
        if self.name == "flux":
            self._encode_flux(g, id, text, title, pos, width, color)
            return
        if self.name == "sdxl":
            widgets = {"width": SIZE, "height": SIZE, "crop_w": 0, "crop_h": 0,
                       "target_width": SIZE, "target_height": SIZE, "text_g": text, "text_l": text}
            kind, height = "CLIPTextEncodeSDXL", 330
        elif self.name in ("sd35", "sd15"):
            widgets, kind, height = {"text": text}, "CLIPTextEncode", 200
        else:
            widgets, kind, height = {"width": SIZE, "height": SIZE, "text": text}, \
                "CLIPTextEncodePixArtAlpha", 200
        g.add(Node(id, kind, widgets, {"clip": CLIP}, title=title, pos=pos,
                   size=(width, height), color=color))


    def _encode_flux(self, g: Graph, id: int, text: str, title: str, pos: tuple, width: int,
                     color) -> None:
        """A prompt: CLIPTextEncodeFlux (its guidance widget); the negative: CLIPTextEncode, then
        FluxGuidance (FLUX.1-dev's memory refuses a prompt without guidance)."""
        clip = {"clip": (FLUX_CLIP, 0)}
        if color != NEGATIVE_COLOR:
            g.add(Node(id, "CLIPTextEncodeFlux",
                       {"clip_l": text, "t5xxl": text, "guidance": FLUX_GUIDANCE}, clip,
                       title=title, pos=pos, size=(width, 330), color=color))
            return
        g.add(Node(NEGATIVE_TEXT + id, "CLIPTextEncode", {"text": text}, clip, title=title,
                   pos=pos, size=(width, 200), color=color))
        g.add(Node(id, "FluxGuidance", {"guidance": FLUX_GUIDANCE},
                   {"conditioning": (NEGATIVE_TEXT + id, 0)}, title="Negative: FluxGuidance",
                   pos=(pos[0], pos[1] + 240), size=(width, 80), color=color))

    def relink(self, g: Graph) -> None:
        """FLUX: what reads the loader's CLIP or VAE output (node 1, outputs 1 and 2) reads
        DualCLIPLoader's or VAELoader's instead; SD3.5: what reads its CLIP reads
        TripleCLIPLoader's (the checkpoint holds no text encoders)."""
        if self.name == "sd35":
            moved = {CLIP: (SD3_CLIP, 0)}
        elif self.name == "flux":
            moved = {CLIP: (FLUX_CLIP, 0), VAE_OUT: (FLUX_VAE_NODE, 0)}
        else:
            return
        for n in g.nodes:
            n.links = {k: moved.get(tuple(v), v) for k, v in n.links.items()}


PIXART = Family("pixart", 4.5)
SDXL = Family("sdxl", 6.0)
# FLUX.1-dev is guidance-distilled: cfg 1 (the negative is not sampled), guidance 3.5 in the
# prompts; euler / simple as in ComfyUI's own FLUX examples
FLUX = Family("flux", 1.0, "euler", "simple")
# SD3.5 Large: euler / sgm_uniform, cfg 4.5 as in ComfyUI's own SD3.5 example; its shift 3 is the
# model's default (supported_models.SD3), so no ModelSamplingSD3 node
SD35 = Family("sd35", 4.5, "euler", "sgm_uniform")
# SD 1.5: cfg 7 and dpmpp_2m / karras, the usual settings for its checkpoints
SD15 = Family("sd15", 7.0)


def read_notes(workflow: str, fill: dict, models: str = "") -> list[tuple[str, str]]:
    """(title, Markdown text) of each note of a workflow, the read-me first.

    Notes are tools/workflow_notes/<workflow>/*.md in name order; the first line `# ...` is the
    title; {placeholders} are filled from `fill`, {models} with `models`."""
    found = []
    for path in sorted((NOTES_DIR / workflow).glob("*.md")):
        first, _, body = path.read_text(encoding="utf-8").partition("\n")
        assert first.startswith("# "), f"{path}: the first line must be '# <note title>'"
        text = body.strip("\n").replace("{models}", "{{models}}").format(**fill)
        found.append((first[2:].strip(), text.replace("{models}", models)))
    return found


def models_note(title: str) -> str:
    """The PixArt model files note (tools/workflow_notes/models.md)."""
    text = (NOTES_DIR / "models.md").read_text(encoding="utf-8")
    return text.replace("{title}", title).format(unet=UNET, t5=T5, vae=VAE)


def note(g: Graph, id: int, n: tuple[str, str], pos, size) -> None:
    g.note(id, n[1], pos=pos, size=size, title=n[0])


def row_group(g: Graph, title: str, y: int, x0: int = X_TEXT) -> None:
    width = X_SAVE + SAVE_SIZE[0] + 20 - (x0 - 20)
    g.groups.append(Group(title, (x0 - 20, y - 80, width, ROW - 20)))


def decode_save(g: Graph, decode: int, save: int, latent: tuple, y: int, prefix: str) -> None:
    g.add(Node(decode, "VAEDecode", {}, {"samples": latent, "vae": VAE_OUT}, pos=(X_DECODE, y),
               size=(200, 50)))
    g.add(Node(save, "SaveImage", {"filename_prefix": prefix}, {"images": (decode, 0)},
               pos=(X_SAVE, y), size=SAVE_SIZE))


def box_pixels(box, size: int = SIZE, grid: int = 16) -> tuple[int, int, int, int]:
    """A normalised [x0, y0, x1, y1] box in pixels, on a 16 px grid (latent grid at 1024 and
    512 px)."""
    return tuple(int(round(c * size / grid)) * grid for c in box)


BOX_SIZE = (580, 460)  # Layer Box: room for the picture to draw on


def box_mask(g: Graph, id: int, name: str, box_px: tuple, memory: int, y: int,
             layer: str = "", title: str | None = None, size: int = SIZE) -> int:
    """A Layer Box on `memory` holding the box (image pixels, drawn on a SIZE picture); returns
    its node id (output 0 is the mask, 1 the layer). With a `layer` it moves that layer's own
    shape into the box, as a drag of the layer's outline sets it."""
    x0, y0, x1, y1 = box_px
    widgets = {"x": x0, "y": y0, "width": x1 - x0, "height": y1 - y0, "picture_width": size,
               "picture_height": size, "layer": layer,
               "shape": "layer's shape" if layer else "box", "strokes": ""}
    g.add(Node(id, "LayerMem_LayerMemoryBox", widgets, {"memory": (memory, 0), "vae": VAE_OUT},
               title=title or f"Box: {name} (drag on the picture)", pos=(X_MASK, y - 20),
               size=BOX_SIZE))
    return id


# AddLayer / EditLayer / DeleteLayer's compute choice (issue 25) at its defaults: the whole picture
COMPUTE = {"compute": "whole picture", "context_margin": 64}


def box_layer(g: Graph, fam: Family, ids, y: int, obj: tuple, seed: int, memory: int,
              title: str, save_prefix: str, size: int = SIZE) -> None:
    """Prompt, Layer Box, AddLayer (on top), decode and save. ids: text, (unused: the box size
    node of the SolidMask chain this replaced; ids stay those of earlier templates), box, layer,
    decode, save."""
    name, box, prompt = obj
    text, _, box_id, layer, decode, save = ids
    fam.encode(g, text, prompt, f"Prompt: {name}", (X_TEXT, y), 400, POSITIVE_COLOR)
    box_mask(g, box_id, name, box_pixels(box, size), memory, y, size=size)
    widgets = {"seed": seed, "use_mqd": True, "grow": 0, "feather": 0, "unblended_fraction": 0.0,
               "name": name, "position": -1, **COMPUTE}
    links = {"memory": (memory, 0), "model": MODEL, "positive": (text, 0), "mask": (box_id, 0)}
    g.add(Node(layer, "LayerMem_AddLayer", widgets, links, title=title, pos=(X_LAYER, y),
               size=(340, 310)))
    decode_save(g, decode, save, (layer, 1), y, save_prefix)


def edit_layer(g: Graph, id: int, memory: int, layer: str, seed: int, y: int, title: str,
               links: dict | None = None, name: str = "") -> None:
    """EditLayer: a new seed rerolls; a `positive` or `mask` link re-prompts or moves."""
    widgets = {"layer": layer, "seed": seed, "grow": 0, "feather": 0, "regenerate_fraction": 0.4,
               "use_mqd": True, "name": name, **COMPUTE}
    g.add(Node(id, "LayerMem_EditLayer", widgets, {"memory": (memory, 0), "model": MODEL,
                                                   **(links or {})},
               title=title, pos=(X_LAYER, y), size=(340, 310)))


def inspect_row(g: Graph, ids: tuple[int, int, int], memory: int, y: int, text: tuple[str, str],
                height: int, title: str) -> None:
    """ListLayers and PreviewLayers on `memory`, with a note: the last row of a workflow."""
    table, preview, note_id = ids
    g.add(Node(table, "LayerMem_ListLayers", {}, {"memory": (memory, 0)}, pos=(X_LAYER, y),
               size=(340, height)))
    g.add(Node(preview, "LayerMem_PreviewLayers", {"line_width": 0}, {"memory": (memory, 0),
                                                                      "vae": VAE_OUT},
               pos=(X_DECODE, y), size=SCENE_SIZE))
    note(g, note_id, text, (X_NOTE, y), (420, height))
    row_group(g, title, y, x0=X_LAYER)
