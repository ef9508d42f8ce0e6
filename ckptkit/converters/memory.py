"""Keep peak RSS at about one tensor while streaming through memory-mapped files.

Pages read from or written to a shared file mapping stay in a process's resident set until the
mapping goes away; :func:`release_pages` drops them after each tensor (they stay in the page
cache and, for outputs, in the file).
"""

from __future__ import annotations

import numpy as np

__all__ = ["release_pages"]

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

    base = array
    while base is not None:
        if isinstance(base, np.memmap):
            return getattr(base, "mode", "c") != "c" and isinstance(_root(base), mmap.mmap)
        base = getattr(base, "base", None)
    return False


def _root(array):
    while isinstance(getattr(array, "base", None), np.ndarray):
        array = array.base
    return getattr(array, "base", None)


def release_pages(array: np.ndarray, *, _madvise=[]) -> bool:
    """Drop a file-mapped array's pages from this process's resident set (they stay in the page cache).

    Reading a tensor through an mmap and writing one into a mapped output both count the touched
    pages in RSS until the mapping goes away; releasing them after each tensor keeps the peak at
    about one tensor. Anything that is not a contiguous shared file mapping is left alone.

    Example:
        >>> release_pages(np.zeros(4))  # anonymous memory: never touched
        False
    """
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
