"""LAYER_MEMORY wires stand apart from every core type's wire colour in the frontend palettes."""
import re
from pathlib import Path

import pytest

WEB = Path(__file__).resolve().parents[2] / "web" / "layer_memory.js"
PALETTE = re.compile(r'const id\$\d+ = "([^"]+)";[^{]*?'
                     r'const colors\$\d+ = \{\s*node_slot: \{([^}]*)\}')


def _rgb(hex_colour):
    return tuple(int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))


def _palettes():
    frontend = pytest.importorskip("comfyui_frontend_package")
    found = {}
    for js in (Path(frontend.__file__).parent / "static" / "assets").glob("*.js"):
        for name, body in PALETTE.findall(js.read_text(errors="ignore")):
            found[name] = dict(re.findall(r'(\w+): "(#[0-9A-Fa-f]{6})"', body))
    return found


def test_memory_wire_colour_is_far_from_every_core_type_colour():
    colour = _rgb(re.search(r'LINK_COLOUR = "(#[0-9A-Fa-f]{6})"', WEB.read_text()).group(1))
    palettes = _palettes()
    assert {"dark", "light"} <= set(palettes), sorted(palettes)
    for name, slots in palettes.items():
        for kind, hex_colour in slots.items():
            pairs = zip(colour, _rgb(hex_colour), strict=True)
            gap = sum((a - b) ** 2 for a, b in pairs) ** 0.5
            assert gap > 80, f"{name} palette: {kind} {hex_colour} is only {gap:.0f} away"
