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


def clear_dynamo() -> None:
    """dynamo's counters outlive `torch._dynamo.reset()`: a test whose stock model breaks (ComfyUI's
    CPU attention asks psutil for free memory) would leave its breaks to the tests after."""
    import torch._dynamo
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()


def check_joint_compile(lo, eager, kit, stock_may_break: bool) -> None:
    """A joint-attention kit's (tools/*_scenes: `cond`, `SIZE`) MQD run under TorchCompileModel
    (aot_eager): it gives what the eager run gives, breaks the graph nowhere the stock compiled
    model does not (none at all unless `stock_may_break`), and a second edit (another mask and
    seed, a prompt of the same length) re-traces nothing."""
    import torch
    import torch._dynamo
    from joint_start import start_joint

    from tools import scenes

    torch._dynamo.reset()
    bg = start_joint(lo, kit, model=eager)
    stock_breaks = set()
    if stock_may_break:
        before = breaks()
        start_joint(lo, kit, model=compiled(eager, "aot_eager"))
        stock_breaks = set(breaks()) - set(before)
        torch._dynamo.reset()
    mask = scenes.box_mask(kit.SIZE, 0.2, 0.2, 0.7, 0.7)
    want = lo.add_layer(bg, eager, kit.cond(4), mask, seed=4)
    before, traced = breaks(), graphs()
    model = compiled(eager, "aot_eager")
    got = lo.add_layer(bg, model, kit.cond(4), mask, seed=4)
    assert graphs() > traced, "nothing was compiled"
    new = {k for k, v in breaks().items() if v != before.get(k)}
    assert new <= stock_breaks, f"graph breaks of MQD's own: {new - stock_breaks}"
    torch.testing.assert_close(got.top.trajectory.final, want.top.trajectory.final,
                               rtol=1e-4, atol=1e-4)
    traced = graphs()
    lo.add_layer(bg, model, kit.cond(5), scenes.box_mask(kit.SIZE, 0.4, 0.1, 0.9, 0.6), seed=5)
    assert graphs() == traced, "a second edit re-traced the model"
