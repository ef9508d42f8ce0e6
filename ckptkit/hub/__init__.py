"""Publishing a hub folder to the Hugging Face Hub (:mod:`ckptkit.hub.upload`).

The record and the model card moved to :mod:`ckptkit.output`; their names stay importable from
here. Imports are lazy so that ``import ckptkit.hub`` does not import huggingface_hub.

Example:
    >>> from ckptkit.hub import write_model_card, upload_folder
    >>> write_model_card("out/kobert", language="ko", license="apache-2.0")  # doctest: +SKIP
    >>> upload_folder("out/kobert", repo_id="me/kobert", dry_run=True).steps  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "RECORD_FILE": "ckptkit.output.names",
    "STUDENT_FILE": "ckptkit.output.names",
    "write_record": "ckptkit.output.record",
    "read_record": "ckptkit.output.record",
    "validate_record": "ckptkit.output.record",
    "update_record": "ckptkit.output.record",
    "command_line": "ckptkit.output.record",
    "MARKER": "ckptkit.output.card",
    "write_model_card": "ckptkit.output.card",
    "render_model_card": "ckptkit.output.card",
    "usage_snippet": "ckptkit.output.card_sections",
    "upload": "ckptkit.hub.publish",
    "upload_folder": "ckptkit.hub.upload",
    "plan_files": "ckptkit.hub.upload",
    "UploadResult": "ckptkit.hub.upload",
    "FileAction": "ckptkit.hub.upload",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ckptkit.hub' has no attribute {name!r}")
