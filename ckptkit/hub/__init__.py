"""Publishing: the provenance record (ckptkit.json), model cards (README.md) and Hub uploads.

Imports are lazy so that ``import ckptkit.hub`` does not import huggingface_hub.

Example:
    >>> from ckptkit.hub import write_model_card, upload_folder
    >>> write_model_card("out/kobert", language="ko", license="apache-2.0")  # doctest: +SKIP
    >>> upload_folder("out/kobert", repo_id="me/kobert", dry_run=True).steps  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "RECORD_FILE": "ckptkit.hub.record",
    "STUDENT_FILE": "ckptkit.hub.record",
    "write_record": "ckptkit.hub.record",
    "read_record": "ckptkit.hub.record",
    "validate_record": "ckptkit.hub.record",
    "update_record": "ckptkit.hub.record",
    "command_line": "ckptkit.hub.record",
    "MARKER": "ckptkit.hub.model_card",
    "write_model_card": "ckptkit.hub.model_card",
    "render_model_card": "ckptkit.hub.model_card",
    "usage_snippet": "ckptkit.hub.model_card",
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
