"""Read source bytes safely and keep peak RSS at about one tensor while streaming.

Sources are read with :func:`read_exact` (``preadv`` into a fresh buffer), never through a
memory map: a file truncated while it is read then gives a short read, which becomes a
one-line :class:`~ckptkit.errors.CorruptCheckpointError`, where touching a mapped page past
the file's new end would kill the process with SIGBUS.

Pages written to a shared file mapping (an output) stay in a process's resident set until the
mapping goes away; :func:`release_pages` drops them after each tensor (they stay in the page
cache and in the file).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from ckptkit.errors import CorruptCheckpointError

if TYPE_CHECKING:
    import numpy as np

__all__ = ["release_pages", "dont_need", "read_exact", "read_bytes", "numpy_shape_problem", "BYTE_SOURCES",
           "prefetch"]

# absolute local path -> an object whose ensure(offset, nbytes) makes those bytes present before they are
# read, and ensure_many([(offset, nbytes), ...]) many at once. Empty for local checkpoints; a remote mirror
# (ckptkit.remote) registers its sparse weight files here.
BYTE_SOURCES: dict = {}


class _Fetching:
    """What :func:`prefetch` returns: a context that stops the remote fetch streams on exit, and the
    conversion's progress bar (while remote bytes still stream in, their byte bar is the one shown)."""

    def __init__(self, streams=()):
        self.streams = list(streams)

    def __enter__(self) -> "_Fetching":
        return self

    def __exit__(self, *exc) -> None:
        for stream in self.streams:
            stream.lazy.stream = None
            stream.close()
        if self.streams:
            from ckptkit.remote.progress import close

            close()

    def progress(self, items, *, total: int, size, desc: str = ""):
        """``items`` with the conversion's byte bar, shown once every remote byte has arrived."""
        from ckptkit.progress import progress_by_size

        items = list(items)
        for at, item in enumerate(items):
            if all(stream.finished for stream in self.streams):
                if self.streams:
                    from ckptkit.remote.progress import close

                    close()  # the fetching bar, cleared before the converting bar starts
                rest = items[at:]
                yield from progress_by_size(rest, total=total if not at else sum(size(i) for i in rest),
                                            size=size, desc=desc)
                return
            yield item


def prefetch(tensors) -> _Fetching:
    """Start fetching (coalesced, concurrently, a bounded window ahead of the reader) the bytes of
    ``tensors``, in this order, that live in a remote mirror; :func:`read_exact` then gets them straight
    from the fetch. Use the result as a context (it stops the fetching); nothing to do for a local
    checkpoint. Tensors without a ``byte_range`` are read on demand as usual."""
    if not BYTE_SOURCES:
        return _Fetching()
    wanted: dict = {}
    for tensor in tensors:
        extent = getattr(tensor, "byte_range", None)
        source = BYTE_SOURCES.get(os.path.abspath(extent[0])) if extent else None
        if source is not None:
            wanted.setdefault(id(source), (source, []))[1].append(extent[1:])
    if not wanted:
        return _Fetching()
    from ckptkit.remote.settings import SETTINGS
    from ckptkit.remote.stream import FetchStream

    share = max(1, -(-SETTINGS.connections // len(wanted)))
    streams = []
    try:
        for source, ranges in wanted.values():
            source.stream = FetchStream(source, ranges, connections=share)
            streams.append(source.stream)
    except BaseException:
        _Fetching(streams).__exit__(None, None, None)
        raise
    return _Fetching(streams)


_MAX_READ = 1 << 30  # bytes per read call: Linux caps one read near 2 GiB
_MAX_DIMS = 64  # NumPy 2's limit on an array's number of dimensions
_MAX_INTP = (1 << 63) - 1


def numpy_shape_problem(shape: tuple[int, ...], itemsize: int) -> str | None:
    """Why NumPy cannot hold an array of ``shape`` (None when it can): over 64 dimensions, or
    non-zero dimensions whose product times ``itemsize`` passes 2**63-1 (even beside a zero).

    Example:
        >>> numpy_shape_problem((2, 3), 4) is None, numpy_shape_problem((2**62, 2**62, 0), 4)
        (True, 'its size passes what NumPy can index (2**63-1 bytes)')
    """
    if len(shape) > _MAX_DIMS:
        return f"{len(shape)} dimensions; NumPy arrays have at most {_MAX_DIMS}"
    size = itemsize
    for dim in shape:
        size *= dim or 1
        if size > _MAX_INTP:
            return "its size passes what NumPy can index (2**63-1 bytes)"
    return None


def _read_into(fd: int, view: memoryview, offset: int) -> int:
    if hasattr(os, "preadv"):
        return os.preadv(fd, [view], offset)
    data = os.pread(fd, len(view), offset)  # platforms without preadv: one extra copy
    view[:len(data)] = data
    return len(data)


def read_exact(fd: int, offset: int, nbytes: int, *, path: str, hint: str | None = None) -> np.ndarray:
    """``nbytes`` bytes of ``fd`` from ``offset`` as a fresh, read-only uint8 array.

    Raises:
        CorruptCheckpointError: the file ends before ``offset + nbytes`` (it shrank since it
            was opened, or it was truncated all along).

    Example:
        >>> import tempfile
        >>> f = tempfile.TemporaryFile(); _ = f.write(b"abcdef"); f.flush()
        >>> read_exact(f.fileno(), 2, 3, path="x").tobytes()
        b'cde'
        >>> read_exact(f.fileno(), 4, 9, path="x")
        Traceback (most recent call last):
        ...
        ckptkit.errors.CorruptCheckpointError: x: truncated: needs bytes 4..13, the file ends at byte 6
        >>> f.close()
    """
    if BYTE_SOURCES:
        source = BYTE_SOURCES.get(os.path.abspath(path))
        if source is not None:
            taken = source.take(offset, nbytes)  # straight from a remote fetch, else made present here
            if taken is not None:
                return taken
    import numpy as np

    out = np.empty(nbytes, np.uint8)
    view = memoryview(out).cast("B")
    done = 0
    while done < nbytes:
        count = _read_into(fd, view[done:done + _MAX_READ], offset + done)
        if count <= 0:
            raise _truncated(offset, nbytes, offset + done, path=path, hint=hint)
        done += count
    out.flags.writeable = False
    return out


def read_bytes(fd: int, offset: int, nbytes: int, *, path: str, hint: str | None = None) -> bytes:
    """Metadata bytes (a header, a counter's value) as ``bytes``, without NumPy; a remote mirror's bytes go
    through :func:`read_exact`, which makes them present first.

    Example:
        >>> import tempfile
        >>> f = tempfile.TemporaryFile(); _ = f.write(b"abcdef"); f.flush()
        >>> read_bytes(f.fileno(), 2, 3, path="x")
        b'cde'
        >>> f.close()
    """
    if BYTE_SOURCES and os.path.abspath(path) in BYTE_SOURCES:
        return read_exact(fd, offset, nbytes, path=path, hint=hint).tobytes()
    data = b""
    while len(data) < nbytes:
        chunk = os.pread(fd, min(nbytes - len(data), _MAX_READ), offset + len(data))
        if not chunk:
            raise _truncated(offset, nbytes, offset + len(data), path=path, hint=hint)
        data += chunk
    return data


def _truncated(offset: int, nbytes: int, end: int, *, path: str, hint: str | None) -> CorruptCheckpointError:
    return CorruptCheckpointError(f"truncated: needs bytes {offset}..{offset + nbytes}, the file ends at byte {end}",
                                  path=path, hint=hint)


_MADV_DONTNEED = 4  # Linux; on a shared file mapping it only unmaps: the bytes stay in the page cache / file


def _libc_madvise():
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    return libc.madvise


def _shared_file_mapping(array: np.ndarray) -> bool:
    """True when ``array`` views a shared (not copy-on-write) np.memmap of a file."""
    import mmap

    import numpy as np

    base = array
    while base is not None:
        if isinstance(base, np.memmap):
            return getattr(base, "mode", "c") != "c" and isinstance(_root(base), mmap.mmap)
        base = getattr(base, "base", None)
    return False


def _root(array):
    import numpy as np

    while isinstance(getattr(array, "base", None), np.ndarray):
        array = array.base
    return getattr(array, "base", None)


def dont_need(address: int, length: int, *, _madvise=[]) -> bool:
    """``madvise(MADV_DONTNEED)`` on page-aligned ``[address, address + length)`` (Linux; False elsewhere).

    Only for pages whose content the file still has (a clean file mapping): anonymous memory would read
    back as zeros.
    """
    if not _madvise:
        _madvise.append(_libc_madvise())
    return _madvise[0] is not None and _madvise[0](address, length, _MADV_DONTNEED) == 0


def release_pages(array: np.ndarray, *, _madvise=[]) -> bool:
    """Drop a file-mapped array's pages from this process's resident set (they stay in the page cache).

    Reading a tensor through an mmap and writing one into a mapped output both count the touched
    pages in RSS until the mapping goes away; releasing them after each tensor keeps the peak at
    about one tensor. Anything that is not a contiguous shared file mapping is left alone.

    Example:
        >>> import numpy as np
        >>> release_pages(np.zeros(4))  # anonymous memory: never touched
        False
    """
    import numpy as np

    if not isinstance(array, np.ndarray) or not array.flags.c_contiguous or not array.nbytes \
            or not _shared_file_mapping(array):
        return False
    if not _madvise:
        _madvise.append(_libc_madvise())
    if _madvise[0] is None:
        return False
    import mmap

    start = array.ctypes.data
    end = start + array.nbytes
    low, high = start - start % mmap.PAGESIZE, -(-end // mmap.PAGESIZE) * mmap.PAGESIZE
    return _madvise[0](low, high - low, _MADV_DONTNEED) == 0
