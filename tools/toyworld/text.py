"""The toy world's text encoder: word embeddings, positions and one small transformer layer, put
out 768 wide and padded to 77 tokens like SD 1.5's CLIP-L.

Why not a bag of word vectors: "a red circle and a blue square" must bind each colour to its
shape, which needs word order (positions) and one layer of mixing between words.
"""
from __future__ import annotations

import re
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from . import world

CONTEXT = 77  # CLIP's chunk of tokens
WIDTH = 768  # SD 1.5's cross-attention context width
INNER = 128
PAD, BOS, EOS = 0, 1, 2
WORDS = ("a", "and", "on", *world.COLOUR_NAMES, *world.SHAPES, *world.BG_NAMES)
VOCAB = {w: i + 3 for i, w in enumerate(WORDS)}
FILE = "toyworld_text.safetensors"


def tokenize(text: str) -> list[int]:
    """[BOS, words..., EOS, PAD...] (77 ids); unknown words are refused with the vocabulary."""
    words = [w for w in re.split(r"[\s,.]+", text.lower()) if w]
    unknown = [w for w in words if w not in VOCAB]
    if unknown:
        raise ValueError(f"the toy world's encoder does not know {unknown}; its words are "
                         f"{', '.join(WORDS)}")
    if len(words) > CONTEXT - 2:
        raise ValueError(f"{len(words)} words; the toy encoder takes at most {CONTEXT - 2}")
    ids = [BOS] + [VOCAB[w] for w in words] + [EOS]
    return ids + [PAD] * (CONTEXT - len(ids))


class TextEncoder(torch.nn.Module):
    """ids [B, 77] -> [B, 77, 768]."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(len(VOCAB) + 3, INNER)
        self.position = torch.nn.Parameter(torch.randn(CONTEXT, INNER) * 0.02)
        self.layer = torch.nn.TransformerEncoderLayer(INNER, 4, 4 * INNER, dropout=0.0,
                                                      batch_first=True, norm_first=True)
        self.norm = torch.nn.LayerNorm(INNER)
        self.out = torch.nn.Linear(INNER, WIDTH)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h = self.embed(ids) + self.position[: ids.shape[1]]
        return self.out(self.norm(self.layer(h)))

    def encode(self, texts: list[str]) -> torch.Tensor:
        return self(torch.tensor([tokenize(t) for t in texts], dtype=torch.long))


def save(encoder: TextEncoder, folder: Path) -> None:
    sd = {k: v.detach().to(torch.float16).contiguous() for k, v in encoder.state_dict().items()}
    save_file(sd, str(folder / FILE))


def load(folder: Path) -> TextEncoder:
    encoder = TextEncoder()
    encoder.load_state_dict({k: v.float() for k, v in load_file(str(folder / FILE)).items()})
    return encoder.eval()
