"""Distillation: make a student (``student``), train it against its teacher (``train``), measure it (``evaluate``).

Modules import torch/transformers at top level; import them only when a command needs them.

This package is also callable: ``ckptkit.distill(student, output_dir, train_files=[...], ...)`` is
:func:`ckptkit.api.distill` (the package and the API function share the name ``ckptkit.distill``).
"""

from __future__ import annotations

import sys
import types


class _CallablePackage(types.ModuleType):
    def __call__(self, *args, **kwargs):
        """:func:`ckptkit.api.distill`."""
        from ckptkit.api import distill

        return distill(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
