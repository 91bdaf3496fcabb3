"""bench/counting.py's kernels: a reshape, `to` or `contiguous` is a kernel exactly when it
copies (a GPU launches nothing for a view or a no-op), on real and on meta tensors alike."""

import pytest
import torch

from bench import counting


@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_a_copy_is_a_kernel_and_a_view_is_not(device):
    x = torch.zeros(2, 3, 4, device=device)
    t = x.transpose(1, 2)
    cases = [(lambda: x.reshape(6, 4), 0), (lambda: t.reshape(2, 12), 1),
             (lambda: x.to(torch.float32), 0), (lambda: x.to(torch.float16), 1),
             (lambda: t.contiguous(), 1)]  # (a contiguous tensor's dispatches nothing)
    for fn, kernels in cases:
        count, _ = counting.count(fn, flops=False)
        assert (count.ops, count.kernel_ops) == (1, kernels), count.by_op


def test_attention_is_one_kernel_with_its_flops_on_meta_as_on_the_cpu():
    def sdpa(device):
        q = torch.zeros(2, 4, 64, 16, device=device)
        k = torch.zeros(2, 4, 77, 16, device=device)
        return counting.count(lambda: torch.nn.functional.scaled_dot_product_attention(q, k, k))[0]

    cpu, meta = sdpa("cpu"), sdpa("meta")
    assert (cpu.kernel_ops, cpu.flops) == (meta.kernel_ops, meta.flops) == (1, 2 * 2 * 2 * 4 * 64
                                                                            * 77 * 16)


def test_the_reshape_after_attention_is_a_view_on_meta_as_on_the_cpu():
    """ComfyUI's attention transposes q to [B, H, N, D], calls SDPA and reshapes the result back:
    a view with the fused kernels' layout (CPU flash, CUDA), so no kernel; on meta as well."""
    def attention(device):
        x = torch.zeros(2, 64, 4 * 16, device=device)
        q = x.view(2, 64, 4, 16).transpose(1, 2)
        return lambda: torch.nn.functional.scaled_dot_product_attention(q, q, q).transpose(
            1, 2).reshape(2, 64, 64)

    cpu, meta = (counting.count(attention(d), flops=False)[0] for d in ("cpu", "meta"))
    assert cpu.by_op == meta.by_op and cpu.kernel_ops == meta.kernel_ops == 1, (cpu.by_op,
                                                                                meta.by_op)
