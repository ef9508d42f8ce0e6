"""A remote weight file seen as a local sparse file in the cache: the format readers read it with their
usual positioned reads; :func:`ckptkit.converters.memory.read_exact` first asks :meth:`LazyFile.ensure`
for the bytes it is about to read, which fetches only the ranges not yet cached (concurrently, in
chunks, retried) and records them, so an interrupted run resumes and a second run fetches nothing.
"""

from __future__ import annotations

import bisect

import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor

from ckptkit.errors import RemoteError
from ckptkit.output.atomic import write_json
from ckptkit.remote.filesystem import RemoteFS
from ckptkit.remote.settings import SETTINGS, STATS

__all__ = ["LazyFile", "missing_ranges", "merge_ranges"]

MIN_CHUNK = 1 << 20  # bytes: a range is split for concurrency only into pieces at least this big
MAX_CHUNK = 8 << 20  # bytes per request at most
IN_FLIGHT = 32 << 20  # bytes being received at once, all connections together (peak memory beyond one tensor)
PIECES = 8  # a range is fetched in at least this many pieces when it is big enough (MIN_CHUNK each)


def merge_ranges(ranges: list[list[int]]) -> list[list[int]]:
    """Sorted, disjoint ranges covering ``ranges`` (touching ones joined).

    Example:
        >>> merge_ranges([[5, 9], [0, 2], [2, 4], [8, 12]])
        [[0, 4], [5, 12]]
    """
    merged: list[list[int]] = []
    for start, end in sorted(ranges):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return merged


def missing_ranges(have: list[list[int]], start: int, end: int, *, highs: list[int] | None = None
                   ) -> list[tuple[int, int]]:
    """The parts of ``[start, end)`` not covered by the merged, sorted ranges ``have``.

    ``highs`` (the ranges' ends, kept by a caller that asks often) skips the ranges before ``start``.

    Example:
        >>> missing_ranges([[0, 4], [6, 8]], 2, 10)
        [(4, 6), (8, 10)]
    """
    gaps, cursor = [], start
    for low, high in have[bisect.bisect_right(highs, start):] if highs is not None else have:
        if low >= end:
            break
        if high <= cursor:
            continue
        if low > cursor:
            gaps.append((cursor, low))
        cursor = max(cursor, high)
    if cursor < end:
        gaps.append((cursor, end))
    return gaps


def _chunks(gaps: list[tuple[int, int]], connections: int) -> list[tuple[int, int]]:
    """The gaps, each split into pieces of MIN_CHUNK..MAX_CHUNK bytes so that big ones use every connection,
    the bytes in flight stay under IN_FLIGHT (or one MIN_CHUNK per connection) and progress shows in steps.

    Example:
        >>> [(s, e - s) for s, e in _chunks([(0, 40 << 20)], 8)][:2]  # 8 connections: 4 MiB pieces
        [(0, 4194304), (4194304, 4194304)]
    """
    total = sum(e - s for s, e in gaps)
    connections = max(1, connections)
    pieces = max(connections, PIECES)  # also with few connections: the progress bar moves in steps
    size = max(MIN_CHUNK, min(MAX_CHUNK, IN_FLIGHT // connections, -(-total // pieces)))
    return [(p, min(p + size, e)) for s, e in gaps for p in range(s, e, size)]


def return_freed_buffers(*, _done=[]) -> bool:
    """Make glibc give buffers of 1 MiB and more back to the system when they are freed (a fixed mmap
    threshold). Its default threshold grows to the largest buffer freed so far, after which each
    fetching thread's arena keeps its received chunks' memory: peak RSS then grows by about
    connections x chunk size. Once per process, Linux/glibc only (else a no-op returning False)."""
    if _done:
        return _done[0]
    import ctypes
    import sys

    ok = False
    if sys.platform.startswith("linux"):
        try:
            mallopt = ctypes.CDLL(None).mallopt
            ok = mallopt(-3, MIN_CHUNK) == 1  # M_MMAP_THRESHOLD
        except (OSError, AttributeError):
            ok = False
    _done.append(ok)
    return ok


class LazyFile:
    """One remote file mirrored sparsely at ``path``; ``state`` records the byte ranges already fetched."""

    def __init__(self, fs: RemoteFS, url: str, path: str, state: str, size: int):
        self.fs, self.url, self.path, self.state, self.size = fs, url, path, state, size
        self._lock = threading.Lock()
        return_freed_buffers()
        self.ranges: list[list[int]] = self._load()
        self._checked = False
        self.stream = None  # a FetchStream (ckptkit.remote.stream) while a conversion streams this file

    def take(self, offset: int, nbytes: int):
        """Bytes ``[offset, offset + nbytes)`` handed over by the running fetch stream as a fresh uint8
        array, or None after making them present in the cache file (the caller then reads them there)."""
        stream = self.stream
        if stream is not None:
            data = stream.take(offset, nbytes)
            if data is not None:
                STATS.add_needed(nbytes)
                return data
        end = min(offset + nbytes, self.size)
        if missing_ranges(self.ranges, offset, end) == [(offset, end)] and nbytes <= MAX_CHUNK and end > offset:
            STATS.add_needed(end - offset)  # one small range read on demand: handed over as fetched
            data = self._fetch(offset, end)
            self._checked = True
            if len(data) == nbytes:
                import numpy as np

                return np.frombuffer(data, np.uint8)
            return None
        self.ensure(offset, nbytes)
        return None

    def _load(self) -> list[list[int]]:
        try:
            with open(self.state, encoding="utf-8") as f:
                saved = json.load(f)
            if saved.get("url") == self.url and saved.get("size") == self.size and \
                    os.path.getsize(self.path) == self.size:
                return merge_ranges(saved["ranges"])
        except (OSError, ValueError, KeyError, TypeError):
            pass
        with open(self.path, "wb") as f:  # a fresh sparse file of the remote size
            f.truncate(self.size)
        return []

    def _save(self) -> None:
        write_json(self.state, {"url": self.url, "size": self.size, "ranges": self.ranges})

    def _store(self, start: int, data: bytes) -> None:
        with open(self.path, "r+b", buffering=0) as f:
            view, done = memoryview(data), 0
            while done < len(view):
                done += os.pwrite(f.fileno(), view[done:], start + done)
        with self._lock:
            self.ranges = merge_ranges([*self.ranges, [start, start + len(data)]])
            self._save()

    def fetch(self, start: int, end: int) -> bytes | memoryview:
        """Fetch bytes ``[start, end)``, store them in the cache file and return them."""
        return self._fetch(start, end)

    def _fetch(self, start: int, end: int) -> bytes | memoryview:
        data = self.fs.read(self.url, start, end)
        if len(data) > end - start:  # a whole file where a range was asked: the bar's total grows with it
            from ckptkit.remote.progress import expect

            expect(len(data) - (end - start))
        STATS.add_transferred(len(data))
        if len(data) == end - start:
            self._store(start, data)
            return data
        if len(data) == self.size and SETTINGS.allow_full_download:
            self._store(0, data)
            return memoryview(data)[start:end]
        if len(data) == self.size:
            raise RemoteError("the server does not support range requests", path=self.url,
                              hint="rerun with --allow-full-download to download whole files")
        raise RemoteError(f"short read: asked bytes {start}..{end}, got {len(data)}", path=self.url,
                          hint="the file changed on the server; run again")

    def ensure(self, offset: int, nbytes: int) -> None:
        """Make bytes ``[offset, offset + nbytes)`` present in the local file (fetching what is missing)."""
        end = min(offset + nbytes, self.size)
        STATS.add_needed(end - offset)
        self._get(missing_ranges(self.ranges, offset, end))

    def ensure_many(self, extents: list[tuple[int, int]]) -> None:
        """Make many ``(offset, nbytes)`` extents present: touching ones coalesced into one request, the
        requests run concurrently (``--connections``)."""
        wanted = merge_ranges([[o, min(o + n, self.size)] for o, n in extents if n > 0])
        self._get([gap for low, high in wanted for gap in missing_ranges(self.ranges, low, high)])

    def _get(self, gaps: list[tuple[int, int]]) -> None:
        if not gaps:
            return
        from ckptkit.remote.progress import close, expect

        expect(sum(end - start for start, end in gaps), desc=f"fetching {os.path.basename(self.path)}")
        try:
            self._get_chunks(_chunks(gaps, SETTINGS.connections))
        finally:
            close()  # cleared before the next bar or message

    def _get_chunks(self, chunks: list[tuple[int, int]]) -> None:
        if not self._checked:  # the first range alone: a server without range support shows here
            self._fetch(*chunks.pop(0))
            self._checked = True
            chunks = [c for c in chunks if missing_ranges(self.ranges, *c)]
        if len(chunks) <= 1 or SETTINGS.connections <= 1:
            for chunk in chunks:
                self._fetch(*chunk)
            return
        with ThreadPoolExecutor(min(SETTINGS.connections, len(chunks))) as pool:
            for future in [pool.submit(self._fetch, *chunk) for chunk in chunks]:
                future.result()
