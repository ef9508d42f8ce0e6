"""Moved to :mod:`ckptkit.output.record` (convert and distill write the record, not only uploads).

This module keeps the old import path working.

Example:
    >>> from ckptkit.hub.record import write_record
    >>> write_record.__module__
    'ckptkit.output.record'
"""

from __future__ import annotations

from ckptkit.output.names import RECORD_FILE, STUDENT_FILE
from ckptkit.output.record import KINDS, command_line, read_record, update_record, utc_now, validate_record, write_record

__all__ = ["RECORD_FILE", "STUDENT_FILE", "KINDS", "write_record", "read_record", "validate_record",
           "update_record", "command_line", "utc_now"]
