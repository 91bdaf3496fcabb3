"""EditLayer (reroll, re-prompt, move a layer in place) and LayerMemoryFromImage (edit your own
picture)."""
from __future__ import annotations

from comfy_api.latest import io

from ..layermem_core import crop, edit_ops, picture
from ..layermem_core.labels import CATEGORY
from .layer_choices import choices_ui
from .types import (
    background_name_input,
    compute_inputs,
    grow_input,
    layer_outputs,
    memory_input,
    model_input,
    schedule_inputs,
    seed_input,
)


class EditLayer(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="LayerMem_EditLayer",
            display_name="Edit Layer (reroll, re-prompt, move)",
            category=CATEGORY,
            description="Samples one layer again at its place in the stack: a new seed rerolls it, "
                        "a new prompt re-prompts it, a new mask moves or resizes it (unconnected "
                        "inputs keep the layer's own). Newer layers stay in front, bit-exact "
                        "inside their masks; where the old mask is no longer covered, what lay "
                        "below comes back and is healed as in DeleteLayer. Layer 0 re-samples the "
                        "background around the objects, which stay bit-exact inside their masks.",
            inputs=[
                memory_input(),
                model_input(),
                io.String.Input("layer", default="-1",
                                tooltip="Layer to edit: index (0 = background, 1 = first object, "
                                        "-1 = top) or name."),
                seed_input("New noise seed for the layer (the same seed with nothing else changed "
                           "does nothing)."),
                io.Conditioning.Input("positive", optional=True,
                                      tooltip="New prompt for the layer; unconnected: keep its "
                                              "prompt. The layer keeps its name (List Layers, "
                                              "outlines) unless you also set `name`."),
                io.Mask.Input("mask", optional=True,
                              tooltip="New region (move / resize); unconnected: keep its mask. Not "
                                      "for layer 0."),
                grow_input(0,
                           "Grow the new mask by this many latent pixels (8 image pixels each)."),
                io.Int.Input("feather", default=0, min=0, max=32, optional=True,
                             tooltip="Soften the new mask's edge over this many latent pixels."),
                io.Float.Input("regenerate_fraction", default=0.4, min=0.0, max=1.0, step=0.05,
                               optional=True,
                               tooltip="Fraction of final steps regenerated where the old mask is "
                                       "no longer covered (as DeleteLayer); 0 shows exactly what "
                                       "was below."),
                io.Boolean.Input("use_mqd", default=True, optional=True,
                                 tooltip="Route each region's cross-attention to its own layer's "
                                         "prompt."),
                io.Conditioning.Input("negative", optional=True,
                                      tooltip="New negative prompt; unconnected: keep the "
                                              "layer's."),
                io.String.Input("name", default="", optional=True,
                                tooltip="New name, shown in List Layers and the outlines "
                                        "(set it when you re-prompt: a lion made a tiger still "
                                        "reads 'lion'); empty keeps the name. Not a number "
                                        "(numbers choose layers by index)."),
                *compute_inputs("the layer's old and new mask (and the healed region)"),
            ],
            outputs=layer_outputs(),
        )

    @classmethod
    def execute(cls, memory, model, layer, seed, positive=None, mask=None, grow=0, feather=0,
                regenerate_fraction=0.4, use_mqd=True, negative=None,
                name: str = "", compute: str = crop.WHOLE,
                context_margin: int = crop.DEFAULT_MARGIN) -> io.NodeOutput:
        new = edit_ops.edit_layer(memory, model, layer, positive=positive, mask=mask, seed=seed,
                                  grow_pixels=grow, feather_pixels=feather, use_mqd=use_mqd,
                                  negative=negative, name=name,
                                  regenerate_fraction=regenerate_fraction, compute=compute,
                                  context_margin=context_margin)
        return io.NodeOutput(new, new.composite_latent(), ui=choices_ui(memory))


class LayerMemoryFromImage(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="LayerMem_LayerMemoryFromImage",
            display_name="Layer Memory from Image",
            category=CATEGORY,
            description="Starts a layer-wise memory whose background is your picture (encoded with "
                        "the VAE), on a fixed schedule like LayerMemory, without a model call. "
                        "Add, edit and delete layers on it: outside all masks the final composite "
                        "is the encoded picture's latent, bit for bit.",
            inputs=[
                model_input(),
                io.Vae.Input("vae", tooltip="The VAE of this model; encodes the picture."),
                io.Image.Input("image", tooltip="One picture, at least 512 px a side, sides "
                                                "multiples of 16 (upscale, crop or pad it "
                                                "first otherwise)."),
                io.Conditioning.Input("positive", tooltip="What the picture shows: the background "
                                                          "prompt that uncovered regions attend to "
                                                          "under MQD."),
                io.Conditioning.Input("negative", tooltip="Negative prompt; later layers reuse "
                                                          "it."),
                *schedule_inputs("every later layer"),
                seed_input("Seed of the noise on the picture's stored path (ancestral samplers use "
                           "it too)."),
                background_name_input("picture"),
            ],
            outputs=layer_outputs(),
        )

    @classmethod
    def execute(cls, model, vae, image, positive, negative, steps, cfg, sampler_name, scheduler,
                seed, name: str = "picture") -> io.NodeOutput:
        memory = picture.picture_memory(model, vae, image, positive, negative, steps, cfg,
                                        sampler_name, scheduler, seed, name=name)
        return io.NodeOutput(memory, memory.composite_latent())
