"""A progress bar in bytes (size, rate and ETA) for remote transfers, on a terminal only.

Each fetching phase has its own bar, closed (and cleared) when the phase ends, before anything else
is printed: the index and companions while the location is resolved, then the kept byte ranges of
each weight file before the conversion's own bar starts.
"""

from __future__ import annotations

import sys
import threading

__all__ = ["advance", "expect", "close"]

_bar = []
_lock = threading.Lock()


def _shown() -> bool:
    from ckptkit.progress import is_quiet

    return not is_quiet() and sys.stderr.isatty()


MIN_SHOWN = 64 << 10  # bytes: a smaller fetch is over before a bar could say anything


def expect(count: int, *, desc: str = "fetching") -> None:
    """``count`` more bytes are about to be fetched: a bar starts (from MIN_SHOWN bytes) or its total
    grows, so that it shows the size, the rate and the time left."""
    if not _shown():
        return
    with _lock:
        if _bar:
            _bar[0].total = (_bar[0].total or 0) + count
            _bar[0].refresh()
        elif count >= MIN_SHOWN:
            from tqdm.auto import tqdm

            _bar.append(tqdm(desc=desc, total=count, unit="B", unit_scale=True, unit_divisor=1024, leave=False,
                             file=sys.stderr))


def advance(count: int) -> None:
    """Count ``count`` more bytes transferred on the bar, if one is shown."""
    if _bar:
        with _lock:
            if _bar:
                _bar[0].update(count)


def close() -> None:
    """Close (and clear) the bar if one is shown."""
    with _lock:
        while _bar:
            _bar.pop().close()
