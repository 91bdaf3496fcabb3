"""Core of the layer-wise memory pack.

Pure modules (no ComfyUI import): `errors`, `labels`, `masks`, `routing`, `memory`,
`trajectory`, `stack`, `serialization`, `preview`.
Host modules (import ComfyUI lazily, inside the process that runs it): `bcg`, `mqd`,
`sampling`, `model_checks`, `layer_ops`, `edit_ops`, `picture`.
"""
