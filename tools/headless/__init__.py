"""Run workflows through ComfyUI's real server, headless.

    from tools.headless import ComfyServer, rewrite_for_random_models
    with ComfyServer(random_models=True) as server:  # starts `python main.py ...`, stops it on exit
        result = server.run(rewrite_for_random_models(prompt)[0])
        print(result.status, result.images)

`ComfyServer` prepares a base directory (`--base-directory`, base_folder.py): `custom_nodes/`
holds only a link to this pack (plus, with `random_models`, the test-only text encoder in
tools/random_text_encoder/), `output/`, `input/`, `temp/`, `user/` and the server log
`comfyui.log` live there, and models come either from small random-weight files
(`random_models=True`, models.py; written once into a cache folder, default
~/.cache/comfyui_layer_memory/) or from the user's own model folders (default:
`<ComfyUI>/models`); both are added with `--extra-model-paths-config`. Nothing is written into
the ComfyUI checkout. The server runs in its own session and is stopped on `stop()`, on leaving
the `with` block (errors and Ctrl-C included) and at interpreter exit (server.py).

`run()` posts an API-format workflow to `/prompt`, follows the websocket until ComfyUI reports
success or an error (follow.py), then reads `/history` (results.py): which nodes ran, which came
from ComfyUI's cache, the error (node id, type, exception, traceback) and the image files
written. random_rewrite.py turns a real workflow into one for the random test models;
toy_rewrite.py an SD 1.5 workflow into one for the toy world (`toy_world=True` links its nodes,
tools/toyworld/custom_node/, into custom_nodes).
"""
from tools.comfy_host import PACK_NAME

from .base_folder import (
    MODEL_FOLDERS,
    TEST_ENCODER,
    TEST_NODES_DIR,
    TEST_NODES_NAME,
    TOY_NODES_DIR,
    TOY_NODES_NAME,
)
from .errors import HeadlessError, PromptRejected
from .models import (
    RANDOM_ALPHA,
    RANDOM_SIGMA,
    default_cache_dir,
    ensure_random_models,
    write_random_models,
)
from .random_rewrite import rewrite_for_random_models
from .results import RunResult, format_rejection, node_label
from .server import HOW_TO_GET_COMFYUI, ComfyServer, find_comfyui, free_port
from .toy_rewrite import rewrite_for_toy_world
from .workflows import is_ui_format, load_api_workflow

__all__ = [
    "PACK_NAME", "MODEL_FOLDERS", "TEST_ENCODER", "TEST_NODES_DIR", "TEST_NODES_NAME",
    "TOY_NODES_DIR", "TOY_NODES_NAME", "rewrite_for_toy_world",
    "HeadlessError", "PromptRejected", "RANDOM_ALPHA", "RANDOM_SIGMA", "default_cache_dir",
    "ensure_random_models", "write_random_models", "HOW_TO_GET_COMFYUI",
    "rewrite_for_random_models", "RunResult", "format_rejection", "node_label", "ComfyServer",
    "find_comfyui", "free_port", "is_ui_format", "load_api_workflow",
]
