"""The joint-attention tests' common background: two euler steps at the kit's size."""


def start_joint(lo, kit, positive=None, negative=None, model=None, size=None):
    """A background memory on a kit of tools/*_scenes (`model`, `cond`, `SIZE`): prompts 1 and
    2 unless given, seed 1, 2 steps, cfg 3, euler / simple, at `size` (the kit's by default)."""
    size = size or kit.SIZE
    return lo.start_memory(model or kit.model(), positive or kit.cond(1),
                           negative or kit.cond(2), size, size, seed=1, steps=2, cfg=3.0,
                           sampler_name="euler", scheduler="simple")
