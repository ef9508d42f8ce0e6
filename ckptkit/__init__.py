"""ckptkit: move BERT-family checkpoints between TensorFlow, PyTorch and safetensors.

Public API (imports are lazy, so ``import ckptkit`` stays cheap)::

    from ckptkit import open_checkpoint
    with open_checkpoint("model.ckpt-20000") as ckpt:
        for name, tensor in ckpt.items():
            print(name, tensor.dtype.name, tensor.shape, tensor.role)
"""

from __future__ import annotations

__version__ = "0.1.0"

_LAZY = {
    "open_checkpoint": "ckptkit.converters.formats",
    "detect_format": "ckptkit.converters.formats",
    "write_tf_checkpoint": "ckptkit.converters.formats.tf1",
    "TFCheckpointWriter": "ckptkit.converters.formats.tf1",
    "LazyTensor": "ckptkit.converters.tensors",
    "Checkpoint": "ckptkit.converters.tensors",
    "CkptkitError": "ckptkit.errors",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ckptkit' has no attribute {name!r}")
