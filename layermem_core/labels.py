"""Words the user sees in the node menus, in one place for the nodes, the tools and the tests.

Imports nothing on purpose: tools that run without ComfyUI load this file by its path
(tools/pack_labels.py), and a test that checks a label reads the same word the node shows.
"""

CATEGORY = "layer_memory"  # the node menu every node of the pack is in

# LoadLayerMemory lists a memory saved in the output folder as "<relative path> [output]"
OUTPUT_TAG = " [output]"

# LoadPixArt's text_encoder choice for graphs that encode prompts with another loader
NO_TEXT_ENCODER = "none (encode with another loader)"

# SaveLayerMemory's trajectory_storage choices and the dtype each stores
STORAGE_EXACT = "float32 (exact)"
STORAGE_HALF = "float16 (half size)"
TRAJECTORY_STORAGE = {STORAGE_EXACT: "float32", STORAGE_HALF: "float16"}


def output_name(relative_path: str) -> str:
    """The combo value LoadLayerMemory shows for a file in the output folder."""
    return relative_path + OUTPUT_TAG


def is_output_name(name: str) -> bool:
    return name.endswith(OUTPUT_TAG)


def output_path(name: str) -> str:
    """The path below the output folder of a '... [output]' combo value (other names unchanged)."""
    return name.removesuffix(OUTPUT_TAG)
