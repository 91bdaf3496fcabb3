"""ComfyUI's real PromptExecutor for tests that run a graph in-process, with its cache."""
from __future__ import annotations


class ProgressSink:
    """Where PromptExecutor sends its progress messages (the server's websocket in production)."""

    client_id = None
    last_node_id = None

    def send_sync(self, event, data, sid=None):
        pass


def classic_executor():
    """A PromptExecutor with ComfyUI's classic cache: a node's outputs are reused by reference
    while its inputs are unchanged."""
    import execution

    return execution.PromptExecutor(ProgressSink(), cache_type=execution.CacheType.CLASSIC)


def cached_nodes(executor) -> list[str]:
    """The node ids the executor's last run took from its cache."""
    return [d["nodes"] for e, d in executor.status_messages if e == "execution_cached"][0]


def cached_output(executor, node_id: str):
    """Output 0 of a node, as the cache holds it (outputs[index][batch])."""
    return executor.caches.outputs.get(node_id)[0][0]


class LayerMemTestCond:
    """Random T5-shaped conditioning as a node: the real T5-XXL does not fit a CPU test."""
    RETURN_TYPES = ("CONDITIONING",)
    FUNCTION = "make"
    CATEGORY = "testing"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"seed": ("INT", {"default": 0})}}

    def make(self, seed):
        from tools import scenes

        return (scenes.cond(seed),)


def register_test_cond(host) -> str:
    """Make LayerMemTestCond a node of the booted host; its class_type."""
    host.nodes.NODE_CLASS_MAPPINGS.setdefault("LayerMemTestCond", LayerMemTestCond)
    return "LayerMemTestCond"


def background_prompt(host, unet_name: str) -> dict:
    """API-format nodes of a 512 px PixArt background (LoadPixArt "1", test prompts "2" and "3",
    LayerMemory "4": its memory is ["4", 0]) that an e2e prompt builds on."""
    return {
        "1": {"class_type": "LayerMem_LoadPixArt",
              "inputs": {"unet_name": unet_name,
                         "text_encoder": host.labels.NO_TEXT_ENCODER, "vae_name": "taesd",
                         "weight_dtype": "default"}},
        "2": {"class_type": "LayerMemTestCond", "inputs": {"seed": 1}},
        "3": {"class_type": "LayerMemTestCond", "inputs": {"seed": 2}},
        "4": {"class_type": "LayerMem_LayerMemory",
              "inputs": {"model": ["1", 0], "positive": ["2", 0], "negative": ["3", 0],
                         "width": 512, "height": 512, "seed": 3, "steps": 2, "cfg": 4.5,
                         "sampler_name": "euler", "scheduler": "normal", "name": "background"}},
    }
