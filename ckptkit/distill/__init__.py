"""Distillation: make a student (``student``), train it against its teacher (``train``), measure it (``evaluate``).

Modules import torch/transformers at top level; import them only when a command needs them.
"""
