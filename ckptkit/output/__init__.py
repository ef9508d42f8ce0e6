"""The output folder: everything ckptkit writes into a folder, in one place.

- :mod:`~ckptkit.output.names`: the file names (``ckptkit.json``, ``student.json``, the weight files, ...).
- :mod:`~ckptkit.output.atomic`: the one atomic writer (bytes, text, JSON) that follows the umask.
- :mod:`~ckptkit.output.staging`: staged folder + lock + marker, swapped in whole at the end.
- :mod:`~ckptkit.output.record`: the provenance record ``ckptkit.json``.
- :mod:`~ckptkit.output.card` and :mod:`~ckptkit.output.card_sections`: the model card ``README.md``.

Imports are lazy, so ``import ckptkit.output`` costs nothing.

Example:
    >>> from ckptkit.output import RECORD_FILE, write_json
    >>> RECORD_FILE
    'ckptkit.json'
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    **dict.fromkeys(("RECORD_FILE", "STUDENT_FILE", "CARD_FILE", "CONFIG_FILE", "MARKER_FILE", "HUB_WEIGHT_FILES",
                     "hub_weight_names", "TOKENIZER_FILE_NAMES"), "ckptkit.output.names"),
    **dict.fromkeys(("atomic_write", "write_json", "OutOfSpaceError", "out_of_space", "check_free_space",
                     "file_mode"), "ckptkit.output.atomic"),
    **dict.fromkeys(("staged_folder", "check_destination", "is_ckptkit_output"), "ckptkit.output.staging"),
    **dict.fromkeys(("write_record", "read_record", "validate_record", "update_record", "command_line"),
                    "ckptkit.output.record"),
    **dict.fromkeys(("MARKER", "write_model_card", "render_model_card"), "ckptkit.output.card"),
    **dict.fromkeys(("usage_snippet", "auto_class_for"), "ckptkit.output.card_sections"),
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ckptkit.output' has no attribute {name!r}")
