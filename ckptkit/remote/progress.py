"""A progress bar in bytes (rate; ETA when the total is known) for remote transfers, on a terminal only."""

from __future__ import annotations

import sys
import threading

__all__ = ["advance", "expect", "close"]

_bar = []
_lock = threading.Lock()


def _shown() -> bool:
    from ckptkit.progress import is_quiet

    return not is_quiet() and sys.stderr.isatty()


def _the_bar():
    if not _bar:
        from tqdm.auto import tqdm

        _bar.append(tqdm(desc="fetching", total=0, unit="B", unit_scale=True, unit_divisor=1024, leave=False,
                         file=sys.stderr))
    return _bar[0]


def expect(count: int) -> None:
    """``count`` more bytes are about to be fetched: the bar's total grows (rate and ETA)."""
    if _shown():
        with _lock:
            bar = _the_bar()
            bar.total = (bar.total or 0) + count
            bar.refresh()


def advance(count: int) -> None:
    """Count ``count`` more bytes transferred on the bar (created on first use, on a terminal only)."""
    if _shown():
        with _lock:
            _the_bar().update(count)


def close() -> None:
    """Close the bar if one was shown."""
    with _lock:
        while _bar:
            _bar.pop().close()
