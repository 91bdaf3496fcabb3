"""What a model family is to layer memory: the facts and hooks every family module fills in.

BCG, trajectories, the stack and the memory value act on the sampler's latents and are the same
for every family. What differs (how to recognise a loaded MODEL, the text encoder's width, the
size rule, the weight signature, how MQD routes the model's attention, what a run costs) is one
`Family` value per family, defined in that family's module (`pixart.py`, `unet.py`); nothing
outside `families/` asks which family it holds, it asks the `Family`.

Imports nothing else of the pack, so every module may import it without a cycle.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol


class AttentionRun(Protocol):
    """MQD for one sampling run, whatever the family (the contract both attention runs keep).

    Built once per run from the layers (background first, the newest last); `install` puts its
    patches and its APPLY_MODEL wrapper on a ModelPatcher clone the caller owns and returns the
    patch keys. The wrapper prepares everything that depends on the run (every block's keys and
    values, the owner biases) once, outside the model's forward and any torch.compile region,
    and routes each model call by the call's batch layout (conditional rows routed by owner,
    the negative's rows stock); the patches only read what it built.
    """

    def install(self, patcher: Any) -> list: ...

    def apply_model_wrapper(self, executor: Any, x: Any, t: Any, c_concat: Any = None,
                            c_crossattn: Any = None, control: Any = None,
                            transformer_options: dict | None = None, **kwargs: Any) -> Any: ...


@dataclass(frozen=True)
class ModelDescription:
    """What a memory's fingerprint records of a loaded model's architecture."""

    image_model: str  # ComfyUI's name for the architecture (PixArt's image_model, SD15, SDXL...)
    depth: int  # DiT blocks, or UNet transformer blocks with a cross-attention
    micro_condition: bool  # size conditions in the model's input (PixArt-alpha, SDXL's ADM)


@dataclass(frozen=True)
class Family:
    """One model family: its facts (for checks and messages) and its hooks (for runs)."""

    name: str  # what memories record ("fingerprint.family"); never compared outside families/
    label: str  # for messages
    embed_width: int  # text-encoder width the model's cross-attention takes
    pooled_width: int | None  # a pooled text embedding the model needs (SDXL's CLIP-G), else None
    latent_channels: int
    size_multiple: int  # pixels; PixArt's 2x2 patches at /8 need 16, a UNet pads any multiple of 8
    min_size: int  # pixels; below it the model cannot run (PixArt) or nothing is recognisable
    token_grid: str  # how ownership is pooled for MQD (the documented rule), for docs and messages
    loader_hint: str  # how to load a MODEL of this family
    encoder: str  # what makes the embeddings this family's cross-attention takes
    encoder_fix: str  # how to get them, for a refusal's fix
    encoder_widths: tuple[tuple[int, str], ...]  # widths its encoders give, named for messages
    signature_keys: tuple[str, ...]  # base weights whose sums tell one checkpoint from another
    min_file_version: int  # the lowest memory-file format version that can hold its memories
    detect: Callable[[Any], bool]  # is this ModelPatcher a model of this family?
    describe: Callable[[Any], ModelDescription]  # of the ModelPatcher's inner BaseModel
    attention_run: Callable[[Sequence[Any]], AttentionRun]  # MQD over these layers
    owns_tokens: Callable[[Any], bool]  # does a [h, w] latent mask own any token under MQD?
    # bytes a run at (width, height, calls, itemsize, attention mode) needs on its device, when
    # the family has its own estimate; None: ComfyUI's per-model `memory_required` is used
    run_bytes: Callable[[int, int, int, int, str], int] | None = None
    pooled_encoder: str = ""  # the encoder whose pooled output that is (SDXL: CLIP-G)
    size_why: str = ""  # why sizes must be multiples of size_multiple, for the message
    min_size_why: str = ""  # why sizes below min_size are refused, for the message
    # Computing around the mask (issue 25). `crop_cells`: latent cells a crop's offset and size
    # are aligned to (the UNet's downsampling, PixArt's 2x2 token grid); None: the family cannot
    # place a crop and the choice is refused with `crop_why_not`. A crop is at least `min_size`.
    crop_cells: int | None = None
    crop_why_not: str = ""
    # Patches that make the model see a crop at its place in the full picture: called with the
    # full latent (h, w) and the crop's (top, left, height, width) in latent cells, returns
    # objects with `install(patcher) -> keys` (object patches on the run's clone); None: nothing
    # to do (a UNet has no positional embedding)
    crop_patches: Callable[[tuple[int, int], tuple[int, int, int, int]],
                           Sequence[Any]] | None = None
    # A prompt's scalar extras for a run on a crop: called with the extras, the crop's
    # (left, top, width, height) and the picture's (width, height) in pixels (SDXL's size and
    # crop conditioning); None: the extras are kept
    crop_extras: Callable[[tuple, tuple[int, int, int, int], tuple[int, int]], tuple] | None = None
    # (problem, fix) for a model of this family's class that the pack cannot drive (FLUX Fill,
    # Chroma), so the refusal names it; None: the generic "not a supported model" message
    refusal: Callable[[Any], tuple[str, str] | None] | None = None
    # refuses a prompt's extras (dict, input name, the MODEL) this family's model would take
    # silently wrong (FLUX dev without guidance); None: nothing beyond the widths is checked
    check_extras: Callable[[dict, str, Any], None] | None = None
    # text and image tokens attend in one sequence (FLUX's double blocks), so MQD routes a joint
    # attention; False: the image attends to the text through a cross-attention (PixArt, UNets)
    joint_attention: bool = False
    # the model's LATENT from a stored latent [1, C, h, w] when its format is more than a scale
    # and a shift (Qwen-Image: the time axis back and Wan 2.1's per-channel mean and std); None:
    # `internal / latent_scale + latent_shift`, as the memory records them
    latent_out: Callable[[Any], Any] | None = None

    @property
    def patch_cells(self) -> int:
        """Latent cells per side of one token of the model's own grid (2 for PixArt)."""
        return self.size_multiple // 8


def round_up(n: int, to: int) -> int:
    """`n` rounded up to a multiple of `to`: key counts padded to a bucket."""
    return -(-n // to) * to


TORCH_COMPILE_KWARGS = "torch_compile_kwargs"  # set in model_options by TorchCompileModel


def owns_patch_token(latent_mask: Any) -> bool:
    """Whether a layer's latent mask owns a token of a 2x2-patch model (PixArt, FLUX, SD3,
    Qwen-Image): a token covered at >= 50% (masks.token_mask)."""
    from ..masks import token_mask

    return bool(token_mask(latent_mask).any())
