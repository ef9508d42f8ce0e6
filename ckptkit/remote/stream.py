"""Fetching that overlaps converting: the byte ranges of one remote weight file fetched in the order the
conversion reads its tensors, a bounded window of bytes ahead of it, and handed straight to the reader.

:func:`ckptkit.converters.memory.prefetch` builds a :class:`FetchStream` per remote file from the tensors
the plan reads, in the order it reads them. Worker threads (``--connections``) fetch the missing ranges
(adjacent ones coalesced, split into chunks), write each chunk into the sparse cache file (so the cache
and resume behave as before) and keep it in memory until :meth:`FetchStream.take` copies it into the
tensor being read. Bytes fetched or in flight and not yet taken stay under ``window``: peak memory is
one tensor plus the window. A cold run reads no tensor back from the cache file; bytes already cached
(a second or resumed run) are read from it with positioned reads.
"""

from __future__ import annotations

import bisect
import os
import threading
from dataclasses import dataclass

import numpy as np

from ckptkit.errors import CorruptCheckpointError

__all__ = ["FetchStream", "WINDOW"]

WINDOW = 16 << 20  # bytes fetched (or being fetched) ahead of the conversion, not yet taken by it
SMALL = 64 << 10  # bytes: a gap this small is coalesced with its file neighbours whatever the reading order
_MISSING = object()


@dataclass
class _Chunk:
    start: int
    end: int
    last: int  # the last item (in reading order) with bytes in this chunk
    done: bool = False
    data: bytes | memoryview | None = None
    left: int = 0  # bytes not yet taken; the chunk is freed at 0 or once the reader is past ``last``
    number: int = 0  # its place in the fetching order
    held: bool = False  # counted in the window



class FetchStream:
    """The missing bytes of ``extents`` (``(offset, nbytes)`` in reading order) of ``lazy``, fetched
    ahead of the reader by at most ``window`` bytes with ``connections`` threads."""

    def __init__(self, lazy, extents, *, connections: int, window: int | None = None):
        window = window or WINDOW
        self.lazy, self.window = lazy, window
        self.items: list[tuple[int, int]] = []
        seen: set[tuple[int, int]] = set()
        for offset, nbytes in extents:
            item = (offset, min(offset + nbytes, lazy.size))
            if nbytes > 0 and item[0] < item[1] and item not in seen:
                seen.add(item)
                self.items.append(item)
        self._by_start = sorted((s, e, i) for i, (s, e) in enumerate(self.items))
        self._starts = [s for s, _, _ in self._by_start]
        self.item_chunks: list[list[int]] = [[] for _ in self.items]
        self.chunks: list[_Chunk] = []
        from ckptkit.remote.lazy_file import MAX_CHUNK, MIN_CHUNK

        self._plan_chunks(max(MIN_CHUNK, min(MAX_CHUNK, window // max(1, connections))))
        self.total = sum(c.end - c.start for c in self.chunks)
        self.cond = threading.Condition()
        self.cursor = self.outstanding = self.position = 0
        self.wanted, self.arrived = -1, 0
        self.error: BaseException | None = None
        self.closed = False
        self._kept: set[int] = set()  # chunks arrived and still held in memory
        self.read_back = 0  # bytes read from the cache file (cached before this run, or freed early)
        self._fd = os.open(lazy.path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        self.threads = [threading.Thread(target=self._work, name=f"ckptkit-fetch-{n}", daemon=True)
                        for n in range(min(max(1, connections), len(self.chunks)))]
        if self.chunks:
            from ckptkit.remote.progress import expect

            expect(self.total, desc=f"fetching {os.path.basename(lazy.path)}")
        for thread in self.threads:
            thread.start()

    # ---- the schedule

    def _plan_chunks(self, size: int) -> None:
        """The missing bytes as chunks of at most ``size``, in the order the reader needs them. File-adjacent
        gaps are coalesced when the reader takes them one after the other, and small ones (LayerNorms,
        biases) also when it does not, up to MIN_CHUNK a request: each request costs a round trip."""
        from ckptkit.remote.lazy_file import MIN_CHUNK, missing_ranges

        have = [list(r) for r in self.lazy.ranges]
        highs = [h for _, h in have]
        pieces = sorted((low, high, index) for index, (start, end) in enumerate(self.items)
                        for low, high in missing_ranges(have, start, end, highs=highs))
        runs: list[list] = []  # [start, end, [(gap start, gap end, item)]] in file order
        for low, high, index in pieces:
            if runs and runs[-1][1] == low:
                run, (plow, phigh, previous) = runs[-1], runs[-1][2][-1]
                small = high - low < SMALL and phigh - plow < SMALL and high - run[0] <= MIN_CHUNK
                if index == previous + 1 or small:
                    run[1] = high
                    run[2].append((low, high, index))
                    continue
            runs.append([low, high, [(low, high, index)]])
        chunks = []
        for start, end, parts in runs:
            for at in range(start, end, size):
                stop = min(at + size, end)
                touched = [item for low, high, item in parts if low < stop and high > at]
                chunks.append((min(touched), at, stop, touched))
        for first, at, stop, touched in sorted(chunks):
            for item in touched:
                self.item_chunks[item].append(len(self.chunks))
            self.chunks.append(_Chunk(at, stop, max(touched), left=stop - at, number=len(self.chunks)))

    def _find(self, start: int, end: int) -> int | None:
        """The item holding bytes ``[start, end)`` (an item's sub-range too: a zip entry's header)."""
        at = bisect.bisect_right(self._starts, start) - 1
        for k in range(at, max(-1, at - 4), -1):
            if self._by_start[k][1] >= end:
                return self._by_start[k][2]
        return None

    # ---- the fetching side

    def _admit(self) -> int | None:
        """The next chunk to fetch once the window allows it; None when there is nothing more to do."""
        with self.cond:
            while not (self.closed or self.error) and self.cursor < len(self.chunks):
                chunk = self.chunks[self.cursor]
                first = not self.lazy._checked and self.cursor == 0
                if (self.lazy._checked or first) and (self.outstanding == 0 or self.cursor <= self.wanted
                                                       or self.outstanding + chunk.end - chunk.start <= self.window):
                    self.cursor += 1
                    self.outstanding += chunk.end - chunk.start
                    chunk.held = True
                    return self.cursor - 1
                self.cond.wait()
            return None

    def _work(self) -> None:
        from ckptkit.remote.lazy_file import missing_ranges

        while (index := self._admit()) is not None:
            chunk = self.chunks[index]
            try:
                data = self.lazy.fetch(chunk.start, chunk.end) if missing_ranges(
                    self.lazy.ranges, chunk.start, chunk.end) else None
            except BaseException as e:  # noqa: BLE001 - handed to the reader, which raises it
                with self.cond:
                    self.error = self.error or e
                    self.cond.notify_all()
                return
            with self.cond:
                self.lazy._checked = True
                chunk.done, chunk.data = True, data
                self.arrived += 1
                self._kept.add(index)
                if data is None or chunk.last < self.position:
                    self._free(chunk)
                self.cond.notify_all()

    def _free(self, chunk: _Chunk) -> None:
        chunk.data = None
        self._kept.discard(chunk.number)
        if chunk.held:
            chunk.held = False
            self.outstanding -= chunk.end - chunk.start
            self.cond.notify_all()

    @property
    def finished(self) -> bool:
        """Whether every chunk has arrived (or the stream stopped)."""
        return self.arrived == len(self.chunks) or self.closed or self.error is not None

    # ---- the reading side

    def take(self, offset: int, nbytes: int) -> np.ndarray | None:
        """Bytes ``[offset, offset + nbytes)`` as a fresh read-only uint8 array, waiting for their chunks;
        None when they are not part of this stream (the caller reads them as usual)."""
        end = offset + nbytes
        index = self._find(offset, end)
        if index is None or self.closed:
            return None
        with self.cond:
            if index > self.position:
                self.position = index
                for number in [n for n in self._kept if self.chunks[n].last < index]:
                    self._free(self.chunks[number])  # behind the reader now: in the cache file only
        out = np.empty(nbytes, np.uint8)
        covered = []
        for number in self.item_chunks[index]:
            chunk = self.chunks[number]
            low, high = max(chunk.start, offset), min(chunk.end, end)
            if low >= high:
                continue
            data = self._wait(number)
            if data is _MISSING:  # the stream was stopped before this chunk came
                self.lazy.ensure(low, high - low)
                data = None
            if data is None:
                self._pread(out, low - offset, high - low, low)
            else:
                out[low - offset:high - offset] = np.frombuffer(data, np.uint8, high - low, low - chunk.start)
                with self.cond:
                    chunk.left -= high - low
                    if chunk.left <= 0:
                        self._free(chunk)
            covered.append([low, high])
        from ckptkit.remote.lazy_file import merge_ranges, missing_ranges

        for low, high in missing_ranges(merge_ranges(covered), offset, end):  # cached before this run
            self._pread(out, low - offset, high - low, low)
        out.flags.writeable = False
        return out

    def _wait(self, number: int):
        chunk = self.chunks[number]
        with self.cond:
            if number > self.wanted:
                self.wanted = number
                self.cond.notify_all()
            while not chunk.done and self.error is None and not self.closed:
                self.cond.wait()
            if self.error is not None:
                raise self.error
            return chunk.data if chunk.done else _MISSING

    def _pread(self, out: np.ndarray, at: int, count: int, offset: int) -> None:
        from ckptkit.converters import memory

        view, done = memoryview(out).cast("B")[at:at + count], 0
        while done < count:
            got = memory._read_into(self._fd, view[done:], offset + done)
            if got <= 0:
                raise CorruptCheckpointError(f"truncated: needs bytes {offset}..{offset + count}",
                                             path=self.lazy.path, hint="remove the cache folder and run again")
            done += got
        self.read_back += count

    def close(self) -> None:
        """Stop fetching (each thread ends after its current chunk), drop what was not taken."""
        with self.cond:
            self.closed = True
            self.cond.notify_all()
        for thread in self.threads:
            thread.join()
        for chunk in self.chunks:
            chunk.data = None
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
