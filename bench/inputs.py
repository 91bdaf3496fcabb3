"""What the benchmark feeds the pack: scenes of the Multi-Edit Bench, prompts, masks.

The scenes ship with the repo (bench/data/), so a fresh clone needs nothing beside it.
There is no T5 or CLIP here: a prompt becomes a random embedding of the encoder's shape, seeded
by its text.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch

SCENE_FILE = Path(__file__).resolve().parent / "data" / "multi_edit_bench_dev70.json"
NEGATIVE_PROMPT = "low quality, blurry, distorted, deformed, watermark, text, jpeg artifacts"


SDXL_TOKENS = 77  # one CLIP chunk


def _generator(text: str) -> torch.Generator:
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") & ((1 << 63) - 1)
    return torch.Generator().manual_seed(seed)


def embedding(text: str, tokens: int, width: int = 4096) -> torch.Tensor:
    """A deterministic random text embedding [1, tokens, width] per prompt text (T5: 4096)."""
    return torch.randn(1, tokens, width, generator=_generator(text)) * 0.2


def cond(text: str, tokens: int, size: int, family: str = "pixart") -> list:
    """A CONDITIONING as the family's text encoder gives it: PixArt-alpha's T5 embedding with
    its width/height extras, or CLIPTextEncodeSDXL's 77 x 2048 with pooled output and sizes."""
    if family == "pixart":
        return [[embedding(text, tokens), {"width": size, "height": size}]]
    g = _generator(text + "\0pooled")
    extras = {"width": size, "height": size, "crop_w": 0, "crop_h": 0,
              "target_width": size, "target_height": size,
              "pooled_output": torch.randn(1, 1280, generator=g)}
    return [[embedding(text, SDXL_TOKENS, 2048), extras]]


def box_mask(box, size: int) -> torch.Tensor:
    """[1, H, W] MASK, ones in the normalised box [x0, y0, x1, y1] (x right, y down; rows = y)."""
    x0, y0, x1, y1 = box
    m = torch.zeros(1, size, size)
    m[:, round(y0 * size) : round(y1 * size), round(x0 * size) : round(x1 * size)] = 1.0
    return m


def load_scenes(path: Path | None = None) -> dict[str, list[dict]]:
    """Scene id -> its objects in layer order."""
    data = json.loads(Path(path or SCENE_FILE).read_text())
    return {str(k): sorted(v, key=lambda layer: layer["layer"]) for k, v in data.items()}


def routed_groups(host, objects: list[dict], size: int) -> int:
    """Non-empty MQD groups (background included) these objects' boxes give at the token grid."""
    hw = (size // 8, size // 8)
    tokens = [
        host.masks.token_mask(
            host.masks.prepare_layer_mask(box_mask(o["coordinates"], size), hw, 0, 0)
        )
        for o in objects
    ]
    return int((torch.bincount(host.pixart.token_owners(tokens)) > 0).sum())


@dataclass(frozen=True)
class Scene:
    """The scene the edits use and the objects the RAM chain adds."""

    scene_id: str
    objects: list[dict]
    chain_objects: list[dict]

    @property
    def background_prompt(self) -> str:
        return self.objects[0]["background_prompt"]


def pick_scene(
    host,
    scenes: dict[str, list[dict]],
    need: int,
    chain: int,
    size: int,
    scene_id: str | None = None,
) -> Scene:
    """The given scene, else the first with `need` objects whose boxes give need + 1 groups."""
    if scene_id is None:
        full = [k for k, v in scenes.items() if len(v) >= need]
        good = [k for k in full if routed_groups(host, scenes[k][:need], size) == need + 1]
        scene_id = (good or full or [None])[0]
    if scene_id is None or scene_id not in scenes or len(scenes[scene_id]) < need:
        raise SystemExit(f"no scene with >= {need} objects (or scene {scene_id} unknown)")
    order = list(scenes)
    start = order.index(scene_id)
    objects: list[dict] = []
    for k in order[start:] + order[:start]:
        objects.extend(scenes[k])
        if len(objects) >= chain:
            break
    return Scene(scene_id, scenes[scene_id], objects[:chain])
