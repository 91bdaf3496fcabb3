"""A synthetic world with exact ground truth, and a small SD 1.5-family model trained on it here.

Why: the pack's CPU tests run on random weights, so every picture they make is noise and no test
can say whether an object appeared where it was asked for. This package renders flat-colour
scenes (backgrounds, coloured shapes, occlusion) with their label maps, reads decoded pictures
back with an oracle, and trains a TAESD-architecture VAE, a small UNet built through ComfyUI's own
SD 1.5 classes and a word-embedding text encoder on them (`train.py`). Test-only: the pack never
imports it.
"""
