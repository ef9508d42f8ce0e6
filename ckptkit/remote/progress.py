"""A progress bar in bytes (rate; ETA when the total is known) for remote transfers, on a terminal only."""

from __future__ import annotations

import sys
import threading

__all__ = ["advance", "close"]

_bar = []
_lock = threading.Lock()


def advance(count: int) -> None:
    """Count ``count`` more bytes transferred on the bar (created on first use, on a terminal only)."""
    from ckptkit.progress import is_quiet

    if is_quiet() or not sys.stderr.isatty():
        return
    with _lock:
        if not _bar:
            from tqdm.auto import tqdm

            _bar.append(tqdm(desc="fetching", unit="B", unit_scale=True, unit_divisor=1024, leave=False,
                             file=sys.stderr))
        _bar[0].update(count)


def close() -> None:
    """Close the bar if one was shown."""
    with _lock:
        while _bar:
            _bar.pop().close()
