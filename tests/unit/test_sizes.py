"""The size figures the docs quote come from bench/file_size.py and bench/run_bench.py's formula:
they must agree with what a memory of those shapes really holds and writes."""
import pytest

from bench import file_size, run_bench


@pytest.mark.parametrize("size,steps,tokens", [(512, 2, 20), (512, 3, 120)])
def test_layer_bytes_formula_matches_a_real_memory(size, steps, tokens):
    memory, trajectory, serialization = file_size.import_core()
    three = file_size.synthetic_memory(memory, trajectory, size, steps, 3, tokens)
    one = file_size.synthetic_memory(memory, trajectory, size, steps, 1, tokens)
    per_layer = (three.nbytes() - one.nbytes()) / 2
    assert per_layer == run_bench.expected_layer_bytes(steps, size // 8, size // 8, tokens)
    saved = len(serialization.to_bytes(three))
    assert three.nbytes() < saved < three.nbytes() + 64 * 1024, (
        "a file is the tensors plus a JSON header")
