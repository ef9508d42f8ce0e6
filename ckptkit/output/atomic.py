"""The one way ckptkit writes a small file: a temporary sibling, then a rename.

:func:`atomic_write` takes bytes or text; :func:`write_json` formats a document and hands it to
:func:`atomic_write`. Either the old file or the complete new one is there, never a part; the file
follows the umask (``mkstemp``'s 0600 is fixed); a full disk is one :class:`OutOfSpaceError` line;
a failed write leaves no temporary file behind.

Example:
    >>> import tempfile
    >>> p = os.path.join(tempfile.mkdtemp(), "config.json")
    >>> write_json(p, {"b": 1, "a": [2]}, sort_keys=True); print(open(p).read(), end="")
    {
      "a": [
        2
      ],
      "b": 1
    }
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from typing import Any, Callable

from ckptkit.errors import CkptkitError

__all__ = ["atomic_write", "write_json", "json_text", "file_mode", "OutOfSpaceError", "out_of_space",
           "check_free_space", "OUT_OF_SPACE_ERRNOS"]


class OutOfSpaceError(CkptkitError, OSError):
    """The disk (or quota, or file-size limit) ran out while writing an output."""

    detail: str = ""


# errno -> what the user is told
_OUT_OF_SPACE = {errno.ENOSPC: "no space left on the device", errno.EDQUOT: "disk quota exceeded",
                 errno.EFBIG: "file too large for this file system or file-size limit"}
OUT_OF_SPACE_ERRNOS = frozenset(_OUT_OF_SPACE)


def out_of_space(error: BaseException, path: str | os.PathLike) -> OutOfSpaceError | None:
    """The one-line error for ``error`` if it is ENOSPC/EDQUOT/EFBIG (else ``None``).

    Example:
        >>> print(out_of_space(OSError(errno.ENOSPC, "No space left on device"), "out/model"))
        out/model: no space left on the device (No space left on device); nothing was written (free some space, or write to another disk)
        >>> out_of_space(ValueError("x"), "out") is None
        True
    """
    if not isinstance(error, OSError) or error.errno not in _OUT_OF_SPACE:
        return None
    detail = error.strerror or os.strerror(error.errno)
    if isinstance(error, OutOfSpaceError):
        detail = error.detail
    result = OutOfSpaceError(f"{_OUT_OF_SPACE[error.errno]} ({detail}); nothing was written", path=path,
                             hint="free some space, or write to another disk")
    result.errno, result.detail = error.errno, detail
    return result


def check_free_space(folder: str | os.PathLike, nbytes: int) -> None:
    """Raise ``OSError(ENOSPC)`` when ``folder``'s file system has less than ``nbytes`` free.

    Example:
        >>> check_free_space(".", 1)
    """
    try:
        stat = os.statvfs(folder)
    except OSError:
        return
    if not stat.f_blocks:  # a file system that reports no sizes (some FUSE mounts): nothing to check
        return
    free = stat.f_bavail * stat.f_frsize
    if nbytes > free:
        raise OSError(errno.ENOSPC, f"the output needs {nbytes / 2**20:.1f} MiB, the disk has "
                                    f"{free / 2**20:.1f} MiB free", os.fspath(folder))


def file_mode(base: int = 0o666) -> int:
    """``base`` with the process umask applied (what ``open()`` gives a new file).

    Example:
        >>> old = os.umask(0o022); file_mode(); _ = os.umask(old)
        420
    """
    return base & ~_current_umask()


def _current_umask() -> int:
    try:  # Linux: read it without changing it (os.umask() would race with other threads)
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, data: bytes | str) -> None:
    """Write ``data`` (bytes, or text as UTF-8) to ``path`` through a temporary file and a rename.

    The file follows the umask; on any failure the temporary file is removed and ``path`` is
    unchanged; a full disk becomes one :class:`OutOfSpaceError`.

    Example:
        >>> import tempfile
        >>> p = os.path.join(tempfile.mkdtemp(), "a.json")
        >>> atomic_write(p, b"{}"); atomic_write(p, open(p).read() + "\\n"); open(p).read()
        '{}\\n'
    """
    if isinstance(data, str):
        data = data.encode("utf-8")
    path = os.fspath(path)
    folder, name = os.path.split(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".tmp")
    try:
        os.fchmod(fd, file_mode())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        full = out_of_space(e, path)
        if full is not None:
            raise full from e
        raise


def json_text(document: Any, *, sort_keys: bool = False, default: Callable[[Any], Any] | None = None) -> str:
    """``document`` as ckptkit writes JSON files: indented by 2, UTF-8 kept as is, one final newline.

    Example:
        >>> json_text({"name": "한국어"})
        '{\\n  "name": "한국어"\\n}\\n'
    """
    return json.dumps(document, indent=2, sort_keys=sort_keys, ensure_ascii=False, default=default) + "\n"


def write_json(path: str | os.PathLike, document: Any, *, sort_keys: bool = False,
               default: Callable[[Any], Any] | None = None) -> None:
    """Write ``document`` as JSON (see :func:`json_text`) atomically with :func:`atomic_write`.

    Example:
        >>> import tempfile
        >>> p = os.path.join(tempfile.mkdtemp(), "student.json")
        >>> write_json(p, {"layers": [0, 2]}); json.load(open(p))
        {'layers': [0, 2]}
    """
    atomic_write(path, json_text(document, sort_keys=sort_keys, default=default))
