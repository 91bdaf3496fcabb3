"""Seeded scenes of flat-colour shapes on a background, rendered with their exact label maps.

Why flat colours and crisp edges: every pixel's class is known exactly (the label map), so the
oracle can be checked against truth and a decoded picture can be read back without a learned
classifier.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SIZE = 128  # pixels; latent 16x16 with an 8x VAE (SD 1.5 takes any multiple of 8 from 64)

BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "grass": (70, 140, 60), "sky": (150, 200, 240), "sand": (215, 190, 140), "night": (30, 30, 60),
}
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40), "blue": (40, 70, 220), "yellow": (240, 220, 40),
    "purple": (150, 60, 190), "orange": (245, 140, 30), "white": (245, 245, 245),
}
SHAPES = ("circle", "square", "triangle", "cross")
BG_NAMES = tuple(BACKGROUNDS)
COLOUR_NAMES = tuple(COLOURS)
# label map classes: 0..len(BG)-1 backgrounds, then one class per object colour
N_CLASSES = len(BACKGROUNDS) + len(COLOURS)


@dataclass(frozen=True)
class Obj:
    """One object: colour, shape and its box in pixels (x0, y0, x1, y1), x1/y1 exclusive."""

    colour: str
    shape: str
    box: tuple[int, int, int, int]

    @property
    def phrase(self) -> str:
        return f"a {self.colour} {self.shape}"


@dataclass(frozen=True)
class Scene:
    """A background and objects back to front (later ones occlude earlier ones)."""

    background: str
    objects: tuple[Obj, ...]


def colour_class(colour: str) -> int:
    return len(BACKGROUNDS) + COLOUR_NAMES.index(colour)


def bg_class(background: str) -> int:
    return BG_NAMES.index(background)


def class_name(label: int) -> str:
    return BG_NAMES[label] if label < len(BG_NAMES) else COLOUR_NAMES[label - len(BG_NAMES)]


def shape_mask(shape: str, width: int, height: int) -> np.ndarray:
    """[height, width] bool: the shape filling a box of that size (pixel centres sampled)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    u = (x + 0.5) / width  # 0..1 across the box
    v = (y + 0.5) / height
    if shape == "square":
        return np.ones((height, width), dtype=bool)
    if shape == "circle":
        return (u - 0.5) ** 2 + (v - 0.5) ** 2 <= 0.25
    if shape == "triangle":  # apex at the top centre, base at the bottom
        return np.abs(u - 0.5) <= 0.5 * v
    if shape == "cross":  # a plus sign, arms a third of the box wide
        third = 1.0 / 3.0
        return ((u >= third) & (u < 2 * third)) | ((v >= third) & (v < 2 * third))
    raise ValueError(f"unknown shape {shape!r}; one of {SHAPES}")


def render(scene: Scene, size: int = SIZE) -> tuple[np.ndarray, np.ndarray]:
    """(image [size, size, 3] float32 in [0, 1], labels [size, size] int64)."""
    labels = np.full((size, size), bg_class(scene.background), dtype=np.int64)
    for obj in scene.objects:
        x0, y0, x1, y1 = obj.box
        m = shape_mask(obj.shape, x1 - x0, y1 - y0)
        region = labels[y0:y1, x0:x1]
        region[m] = colour_class(obj.colour)
    return palette_image(labels), labels


def palette() -> np.ndarray:
    """[N_CLASSES, 3] float32 in [0, 1]: the colour of each label class."""
    rgb = list(BACKGROUNDS.values()) + list(COLOURS.values())
    return np.asarray(rgb, dtype=np.float32) / 255.0


def palette_image(labels: np.ndarray) -> np.ndarray:
    return palette()[labels]


def random_box(rng: np.random.Generator, size: int = SIZE, low: int = 32,
               high: int = 56) -> tuple[int, int, int, int]:
    w = int(rng.integers(low, high + 1))
    h = int(rng.integers(low, high + 1))
    x0 = int(rng.integers(0, size - w + 1))
    y0 = int(rng.integers(0, size - h + 1))
    return (x0, y0, x0 + w, y0 + h)


def random_object(rng: np.random.Generator, size: int = SIZE) -> Obj:
    return Obj(COLOUR_NAMES[rng.integers(len(COLOURS))], SHAPES[rng.integers(len(SHAPES))],
               random_box(rng, size))


def random_scene(rng: np.random.Generator, min_objects: int = 0, max_objects: int = 4,
                 size: int = SIZE) -> Scene:
    n = int(rng.integers(min_objects, max_objects + 1))
    return Scene(BG_NAMES[rng.integers(len(BACKGROUNDS))],
                 tuple(random_object(rng, size) for _ in range(n)))


def caption(scene: Scene, rng: np.random.Generator | None = None, drop_background: float = 0.0,
            drop_all: float = 0.0) -> str:
    """The whole scene in words: objects (in random order when `rng` is given) and background.

    `drop_background` / `drop_all` are training-time caption dropouts: object-only prompts (what
    a layer is given) and the empty prompt (classifier-free guidance's unconditional)."""
    if rng is not None and rng.random() < drop_all:
        return ""
    phrases = [o.phrase for o in scene.objects]
    if rng is not None:
        phrases = [phrases[i] for i in rng.permutation(len(phrases))]
    text = " and ".join(phrases)
    keep_bg = not phrases or rng is None or rng.random() >= drop_background
    if keep_bg:
        text = f"{text} on {scene.background}" if text else scene.background
    return text
