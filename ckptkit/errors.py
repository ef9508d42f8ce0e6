"""One exception family whose messages are shown to users as they are.

Every error ckptkit raises on purpose is a :class:`CkptkitError`. Each also
subclasses the built-in exception it resembles, so callers may catch either
(``except FileNotFoundError`` keeps working). The CLI prints ``str(error)`` as
one line and exits with status 2; nothing else is needed to make a good message.

Example:
    >>> err = CorruptCheckpointError("CRC mismatch in tensor 'bert/pooler/dense/kernel'",
    ...                              path="model.ckpt.data-00000-of-00001",
    ...                              hint="the file is damaged; copy it again")
    >>> str(err)
    "model.ckpt.data-00000-of-00001: CRC mismatch in tensor 'bert/pooler/dense/kernel' (the file is damaged; copy it again)"
"""

from __future__ import annotations

import os

__all__ = [
    "CkptkitError",
    "CheckpointNotFoundError",
    "CorruptCheckpointError",
    "UnsupportedFormatError",
    "UnsafeCheckpointError",
    "ConfigError",
    "PlanError",
    "VerificationError",
    "UsageError",
    "HubError",
]


class CkptkitError(Exception):
    """Base class: a one-line, user-facing message naming what, where and what to do."""

    def __init__(self, message: str, *, path: str | os.PathLike | None = None, hint: str | None = None):
        self.message = message
        self.path = os.fspath(path) if path is not None else None
        self.hint = hint
        super().__init__(self.__str__())

    def __str__(self) -> str:
        text = f"{self.path}: {self.message}" if self.path else self.message
        if self.hint:
            text = f"{text} ({self.hint})"
        return " ".join(text.split("\n"))


class CheckpointNotFoundError(CkptkitError, FileNotFoundError):
    """A path, shard or file that a checkpoint needs does not exist."""


class CorruptCheckpointError(CkptkitError, ValueError):
    """Bytes on disk contradict themselves: CRC mismatch, truncated file, not a table."""


class UnsupportedFormatError(CkptkitError, ValueError):
    """A format, dtype or feature we recognise but do not handle (V1 checkpoints, DT_VARIANT)."""


class UnsafeCheckpointError(CkptkitError, ValueError):
    """A file that would need code execution (a pickle beyond ``weights_only``) or escapes its folder."""


class ConfigError(CkptkitError, ValueError):
    """A model config that is missing, malformed or contradicts the tensor shapes."""


class PlanError(CkptkitError, ValueError):
    """A conversion plan cannot be built: unmapped tensors, missing inputs, bad shapes."""


class VerificationError(CkptkitError, AssertionError):
    """A converted output differs from its source beyond tolerance."""


class UsageError(CkptkitError, ValueError):
    """Options that contradict each other or name something that does not exist."""


class HubError(CkptkitError, RuntimeError):
    """The Hugging Face Hub refused or could not be reached."""
