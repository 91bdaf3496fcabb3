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
