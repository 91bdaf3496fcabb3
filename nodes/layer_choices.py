"""The layers a node's `layer` input can pick, sent to the frontend after a run.

The input stays a STRING (API prompts keep typing indices or names); web/layer_memory.js offers
these as a list next to it. Each choice is "<index>: <name>" and the text it puts in the input:
the name when a name picks that layer (it is the top-most of its name), else the index.
"""
from __future__ import annotations

UI_KEY = "layer_choices"  # the ui output key web/layer_memory.js reads


def layer_choices(memory, allow_background: bool = True) -> list[dict]:
    """[{"label": "2: lion", "value": "lion"}, ...] in mask order (layer 0 first)."""
    names = [layer.name for layer in memory.layers]
    low = 0 if allow_background else 1
    choices = []
    for i in range(low, len(names)):
        name = names[i]
        usable = bool(name) and name == name.strip()  # resolve() strips what it is given
        top_of_name = usable and i == max(k for k, n in enumerate(names) if n == name)
        choices.append({"label": f"{i}: {name}", "value": name if top_of_name else str(i)})
    return choices


def choices_ui(memory, allow_background: bool = True) -> dict:
    """The ui output part that carries the choices (merged into a node's other ui output)."""
    return {UI_KEY: layer_choices(memory, allow_background)}
