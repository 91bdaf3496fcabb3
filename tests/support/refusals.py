"""The shape every refusal of bad input must have, for the bad-input host tests."""
from __future__ import annotations

import pytest


def refused(host, fn, *args, match: str, input_name: str, **kwargs):
    """Call fn and check it raises the pack's LayerMemoryError naming `input_name` and a fix."""
    with pytest.raises(host.errors.LayerMemoryError, match=match) as e:
        fn(*args, **kwargs)
    assert e.value.input_name == input_name and "Fix:" in str(e.value)
    return e.value


class NoDecode:
    """A VAE that must not be used: bad input is refused before the picture is decoded."""

    def decode(self, *a, **k):
        raise AssertionError("decoded before the input was checked")
