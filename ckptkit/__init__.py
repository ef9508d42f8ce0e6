"""ckptkit: move BERT-family checkpoints between TensorFlow, PyTorch and safetensors.

The Python API (see :mod:`ckptkit.api`): ``convert``, ``verify``, ``inspect``, ``build_student``,
``distill`` and ``open_checkpoint``. Imports are lazy, so ``import ckptkit`` loads neither torch,
transformers nor TensorFlow; each function imports what it needs when it is called.

Example:
    >>> import ckptkit
    >>> with ckptkit.open_checkpoint("examples/tiny-bert") as ckpt:
    ...     ckpt.global_step, ckpt["bert/pooler/dense/kernel"].shape
    (20000, (32, 32))
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# public name -> the module that defines it, imported on first use
_LAZY = {
    "convert": "ckptkit.api",
    "verify": "ckptkit.api",
    "inspect": "ckptkit.api",
    "build_student": "ckptkit.api",
    "open_checkpoint": "ckptkit.api",
    "detect_format": "ckptkit.converters.formats",
    "write_tf_checkpoint": "ckptkit.converters.formats.tf1",
    "TFCheckpointWriter": "ckptkit.converters.formats.tf1",
    "LazyTensor": "ckptkit.converters.tensors",
    "Checkpoint": "ckptkit.converters.tensors",
    "CkptkitError": "ckptkit.errors",
}

__all__ = ["__version__", "distill", *_LAZY]


def __getattr__(name: str):
    if name == "distill":  # the subpackage, callable as ckptkit.api.distill (see ckptkit/distill/__init__.py)
        return importlib.import_module("ckptkit.distill")
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ckptkit' has no attribute {name!r}")
