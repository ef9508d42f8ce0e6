"""Safe output folders: staged under a temporary sibling, locked, and swapped in whole at the end.

What a folder written through :func:`staged_folder` guarantees:

- **Overwrite** replaces only an empty folder or one ckptkit wrote (it holds ``ckptkit.json`` or
  the marker :data:`MARKER_FILE`), and never a folder that is, contains or is inside a source.
  A file, a foreign folder or a symlink to either is refused with one line (exit 2).
- **Lock**: one writer per destination (``fcntl.flock`` on the sibling ``.NAME.lock``); a second
  run fails at once. The lock file is removed at the end (a stale one is harmless).
- **Crash**: the destination is either the previous output or the new one, never a mixture;
  a killed run leaves only ``.NAME.tmp-PID`` (and ``.NAME.lock``), removed by the next run into
  the same destination once that process is gone.
- **Full disk**: ENOSPC, EDQUOT and EFBIG become one :class:`OutOfSpaceError` line; nothing is
  left behind.
- **Permissions**: every file follows the umask (files inside are written with
  :func:`ckptkit.output.atomic.atomic_write`).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import glob
import os
import re
import shutil
from typing import Iterable, Iterator

from ckptkit import __version__
from ckptkit.errors import UsageError
from ckptkit.output.atomic import OutOfSpaceError, out_of_space, write_json
from ckptkit.output.names import MARKER_FILE, RECORD_FILE

__all__ = ["staged_folder", "check_destination", "is_ckptkit_output", "OutOfSpaceError", "MARKER_FILE"]

_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def is_ckptkit_output(folder: str) -> bool:
    """True for a folder ckptkit wrote: it holds ``ckptkit.json`` or :data:`MARKER_FILE`."""
    return any(os.path.isfile(os.path.join(folder, n)) for n in (RECORD_FILE, MARKER_FILE))


# ------------------------------------------------------------------ the source must survive


def _real(path: str) -> str:
    return os.path.realpath(os.path.abspath(path))


def _inside(path: str, folder: str) -> bool:
    return path != folder and path.startswith(folder.rstrip(os.sep) + os.sep)


def _source_paths(sources: Iterable[str | os.PathLike | None]) -> list[str]:
    """Real paths of every local source, with the files of a prefix (``run/model.ckpt-100.*``)."""
    found: list[str] = []
    for source in sources:
        if source is None or "://" in os.fspath(source):
            continue
        source = os.fspath(source)
        found.append(_real(source))
        if not os.path.exists(source):
            found.extend(_real(p) for p in glob.glob(glob.escape(source) + ".*"))
    return found


def _check_not_source(destination: str, sources: list[str]) -> None:
    real = _real(destination)
    for source in sources:
        why = ("is the source" if real == source else "contains the source " + source if _inside(source, real)
               else "is inside the source folder " + source if _inside(real, source) and os.path.isdir(source)
               and os.path.lexists(destination) else None)
        if why:
            raise UsageError(f"the output {why}; ckptkit never writes over its input", path=destination,
                             hint="choose an output folder outside the source")


def _check_replaceable(destination: str, overwrite: bool) -> None:
    """Refuse anything but a missing/empty destination, or (with ``overwrite``) ckptkit's own output."""
    if not os.path.lexists(destination):
        return
    link = " (a symlink)" if os.path.islink(destination) else ""
    if not os.path.isdir(destination):
        raise UsageError(f"the output exists and is not a folder{link}", path=destination,
                         hint="choose a new folder name; --overwrite replaces only folders ckptkit wrote")
    if not os.listdir(destination):
        return
    if not overwrite:
        raise UsageError(f"the output exists and is not empty{link}", path=destination,
                         hint="choose a new folder, or pass --overwrite to replace a folder ckptkit wrote")
    if not is_ckptkit_output(destination):
        raise UsageError(f"the output{link} is not empty and was not written by ckptkit (no {RECORD_FILE}); "
                         "--overwrite replaces only ckptkit's own outputs", path=destination,
                         hint="choose a new folder, or empty this one yourself")


def check_destination(destination: str | os.PathLike, *, overwrite: bool = False,
                      sources: Iterable[str | os.PathLike | None] = ()) -> None:
    """The checks :func:`staged_folder` makes before writing, without writing (``convert --dry-run``).

    Example:
        >>> check_destination("/tmp/ckptkit-new-folder-that-does-not-exist")
    """
    destination = os.path.abspath(destination)
    _check_not_source(destination, _source_paths(sources))
    _check_replaceable(destination, overwrite)


# ------------------------------------------------------------------ lock and leftovers


@contextlib.contextmanager
def _destination_lock(destination: str) -> Iterator[None]:
    """Hold ``.NAME.lock`` beside ``destination`` exclusively; fail at once if another run holds it."""
    parent, name = os.path.split(destination)
    path = os.path.join(parent, f".{name}.lock")
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise UsageError("another ckptkit run is writing this output now", path=destination,
                             hint=f"wait for it to finish (it holds {path}) or choose another folder") from None
        with contextlib.suppress(FileNotFoundError):
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                break  # not a lock file that its last holder removed after we opened it
        os.close(fd)
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)
        os.close(fd)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_leftovers(destination: str) -> None:
    """Remove ``.NAME.tmp-PID`` (and ``.old``) folders of runs whose process is gone."""
    parent, name = os.path.split(destination)
    pattern = re.compile(rf"\.{re.escape(name)}\.tmp-(\d+)(\.old)?")
    for entry in os.listdir(parent):
        match = pattern.fullmatch(entry)
        if match and int(match.group(1)) > 0 and int(match.group(1)) != os.getpid() \
                and not _pid_alive(int(match.group(1))):
            _remove(os.path.join(parent, entry))


def _remove(path: str) -> None:
    """Delete a folder tree, or only the link/file itself (never what a symlink points to)."""
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)


# ------------------------------------------------------------------ the swap


def _exchange(a: str, b: str) -> bool:
    """Atomically swap two paths (Linux ``renameat2(RENAME_EXCHANGE)``); False where unsupported."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2  # the C library Python runs on
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EPERM):
        return False
    raise OSError(code, os.strerror(code), b)


def _swap_in(staging: str, destination: str) -> None:
    """Make ``staging`` the destination; whatever was there is removed afterwards."""
    if not os.path.lexists(destination):
        os.rename(staging, destination)
    elif _exchange(staging, destination):
        _remove(staging)  # now holds the previous output (or the previous symlink)
    else:
        old = f"{staging}.old"
        os.rename(destination, old)
        try:
            os.rename(staging, destination)
        except BaseException:
            os.rename(old, destination)
            raise
        _remove(old)


def _mark(staging: str) -> None:
    if not is_ckptkit_output(staging):
        write_json(os.path.join(staging, MARKER_FILE), {"written_by": "ckptkit", "ckptkit_version": __version__})


@contextlib.contextmanager
def staged_folder(destination: str | os.PathLike, *, overwrite: bool = False,
                  sources: Iterable[str | os.PathLike | None] = ()) -> Iterator[str]:
    """Yield a temporary folder next to ``destination``; on success it becomes ``destination``.

    On any error (or interruption) the temporary folder is removed and ``destination`` is untouched;
    a full disk becomes one :class:`OutOfSpaceError` line. See the module docstring for the rules.

    Args:
        destination: the output folder.
        overwrite: allow replacing a non-empty folder that ckptkit wrote.
        sources: every input path of the run (checkpoint, prefix, companions): the destination may
            not be, contain or (when it exists) lie inside any of them.

    Example:
        >>> import tempfile, os
        >>> out = os.path.join(tempfile.mkdtemp(), "model")
        >>> with staged_folder(out) as tmp:
        ...     open(os.path.join(tmp, "config.json"), "w").write("{}")
        2
        >>> sorted(os.listdir(out))
        ['.ckptkit-output', 'config.json']
    """
    destination = os.path.abspath(destination)
    _check_not_source(destination, _source_paths(sources))
    try:
        os.makedirs(os.path.dirname(destination), exist_ok=True)
        with _destination_lock(destination):
            _remove_leftovers(destination)
            _check_replaceable(destination, overwrite)
            with _staging(destination) as staging:
                yield staging
    except OSError as e:
        full = out_of_space(e, destination)
        if full is not None:
            raise full from e
        raise


@contextlib.contextmanager
def _staging(destination: str) -> Iterator[str]:
    """``.NAME.tmp-PID`` beside ``destination``: swapped in on success, removed on any error."""
    parent, name = os.path.split(destination)
    staging = os.path.join(parent, f".{name}.tmp-{os.getpid()}")
    _remove(staging)
    try:
        os.makedirs(staging)
        yield staging
        _mark(staging)
        _swap_in(staging, destination)
    except BaseException:
        _remove(staging)
        raise
