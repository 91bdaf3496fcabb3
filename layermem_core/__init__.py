"""Core of the layer-wise memory pack.

Pure modules (no ComfyUI import): `errors`, `masks`, `routing`, `memory`, `trajectory`,
`serialization`, `preview`.
Host modules (import ComfyUI lazily, inside the process that runs it): `bcg`, `mqd`,
`sampling`, `model_checks`, `layer_ops`.
"""
