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

import functools
import os
import re
import sys

__all__ = [
    "CkptkitError",
    "CheckpointNotFoundError",
    "CorruptCheckpointError",
    "RemoteError",
    "UnsupportedFormatError",
    "UnsafeCheckpointError",
    "ConfigError",
    "PlanError",
    "VerificationError",
    "UsageError",
    "HubError",
    "redact",
    "register_secret",
]

# Secrets are replaced by REDACTED in every message ckptkit shows (errors, tracebacks, log lines).
REDACTED = "***"
SECRET_ENV_VARS = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")
HF_TOKEN_SHAPE = re.compile(r"hf_[A-Za-z0-9]{10,}")
MIN_SECRET_LENGTH = 8  # shorter values are not tokens; replacing them would garble messages
_registered_secrets: set[str] = set()


def register_secret(value: str | None) -> None:
    """Remember ``value`` (a token ckptkit was given or resolved) so that :func:`redact` hides it."""
    if value and len(value.strip()) >= MIN_SECRET_LENGTH:
        _registered_secrets.add(value.strip())


def _token_files() -> set[str]:
    """huggingface_hub's stored-login files: where its constants say (if imported) and where the env says."""
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "huggingface")
    files = {os.environ.get("HF_TOKEN_PATH") or os.path.join(home, "token"), os.path.join(home, "stored_tokens")}
    constants = sys.modules.get("huggingface_hub.constants")
    for name in ("HF_TOKEN_PATH", "HF_STORED_TOKENS_PATH"):
        if isinstance(getattr(constants, name, None), str):
            files.add(getattr(constants, name))
    return files


@functools.lru_cache(maxsize=16)
def _tokens_in(path: str, mtime_ns: int, size: int) -> frozenset[str]:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read(1 << 20)
    except OSError:
        return frozenset()
    values = re.findall(r"^\s*hf_token\s*=\s*(\S+)", text, flags=re.M) or [text.strip()]
    return frozenset(v for v in values if len(v) >= MIN_SECRET_LENGTH)


def _stored_tokens() -> set[str]:
    tokens: set[str] = set()
    for path in _token_files():
        try:
            stat = os.stat(path)
        except OSError:
            continue
        tokens |= _tokens_in(path, stat.st_mtime_ns, stat.st_size)
    return tokens


def known_secrets() -> set[str]:
    """The Hub tokens this process knows: $HF_TOKEN, $HUGGING_FACE_HUB_TOKEN, the stored login, registered ones."""
    from_env = {os.environ.get(name, "").strip() for name in SECRET_ENV_VARS}
    return {s for s in from_env if len(s) >= MIN_SECRET_LENGTH} | _stored_tokens() | _registered_secrets


def redact(text: str) -> str:
    """``text`` with every known token and anything shaped like a Hub token (``hf_`` + 10 or more letters and
    digits) replaced.

    Example:
        >>> redact("401 for Authorization: Bearer hf_abcdefghijklmnopqrstuvwxyz")
        '401 for Authorization: Bearer hf_***'
    """
    if not text:
        return text
    for secret in sorted(known_secrets(), key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return HF_TOKEN_SHAPE.sub("hf_" + REDACTED, text)


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
        return redact(" ".join(text.split("\n")))


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


class RemoteError(CkptkitError, OSError):
    """A remote location (gs://, s3://, hf://, https://) cannot be read: credentials, 403, 404, no range support."""


class HubError(CkptkitError, RuntimeError):
    """The Hugging Face Hub refused or could not be reached."""
