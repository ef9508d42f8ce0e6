"""Progress bars that show on a terminal and stay silent in pipes or with ``--quiet``."""

from __future__ import annotations

import sys
from typing import Callable, Iterable, Iterator, TypeVar

T = TypeVar("T")

_quiet = False


def set_quiet(quiet: bool) -> None:
    """Silence (or re-enable) every progress bar of this process."""
    global _quiet
    _quiet = quiet


def is_quiet() -> bool:
    return _quiet


def progress(iterable: Iterable[T], *, total: int | None = None, desc: str = "", unit: str = "it",
             unit_scale: bool = False) -> Iterator[T]:
    """Wrap ``iterable`` in a tqdm bar on stderr when it is a terminal and not quiet.

    Example:
        >>> list(progress([1, 2, 3], desc="demo"))
        [1, 2, 3]
    """
    if _quiet or not sys.stderr.isatty():
        yield from iterable
        return
    from tqdm.auto import tqdm

    yield from tqdm(iterable, total=total, desc=desc, unit=unit, unit_scale=unit_scale, leave=False,
                    file=sys.stderr)


def progress_by_size(iterable: Iterable[T], *, total: int, size: Callable[[T], int], desc: str = "") -> Iterator[T]:
    """Like :func:`progress`, but the bar advances by ``size(item)`` bytes after each item.

    Example:
        >>> list(progress_by_size(["ab", "c"], total=3, size=len))
        ['ab', 'c']
    """
    if _quiet or not sys.stderr.isatty():
        yield from iterable
        return
    from tqdm.auto import tqdm

    with tqdm(total=total, desc=desc, unit="B", unit_scale=True, leave=False, file=sys.stderr) as bar:
        for item in iterable:
            yield item
            bar.update(size(item))
