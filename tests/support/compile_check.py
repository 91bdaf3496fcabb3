"""torch.compile helpers for the host tests: ComfyUI's own TorchCompileModel wrapper on a clone,
and dynamo's counters of traced graphs and graph breaks."""


def compiled(model, backend: str):
    """A clone of `model` wrapped as ComfyUI's TorchCompileModel node does it."""
    from comfy_api.torch_helpers import set_torch_compile_wrapper

    m = model.clone()
    set_torch_compile_wrapper(model=m, backend=backend)
    return m


def graphs() -> int:
    """Graphs dynamo traced so far (a re-trace adds one)."""
    from torch._dynamo.utils import counters

    return counters["stats"]["unique_graphs"]


def breaks() -> dict:
    """Graph breaks so far, by reason."""
    from torch._dynamo.utils import counters

    return dict(counters["graph_break"])
