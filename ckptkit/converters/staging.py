"""Moved: safe output folders live in :mod:`ckptkit.output.staging`, atomic writes in
:mod:`ckptkit.output.atomic`. This module keeps the old import path working.

Example:
    >>> from ckptkit.converters.staging import staged_folder
    >>> staged_folder.__module__
    'ckptkit.output.staging'
"""

from __future__ import annotations

from ckptkit.output.atomic import (OUT_OF_SPACE_ERRNOS, OutOfSpaceError, atomic_write, check_free_space,
                                   file_mode, out_of_space)
from ckptkit.output.names import MARKER_FILE
from ckptkit.output.staging import check_destination, is_ckptkit_output, staged_folder

__all__ = ["staged_folder", "check_destination", "OutOfSpaceError", "out_of_space", "atomic_write", "file_mode",
           "check_free_space", "is_ckptkit_output", "MARKER_FILE", "OUT_OF_SPACE_ERRNOS"]
