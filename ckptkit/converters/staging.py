"""Atomic output folders: everything is written under a temporary sibling and renamed at the end."""

from __future__ import annotations

import contextlib
import os
import shutil
from typing import Iterator

from ckptkit.errors import UsageError

__all__ = ["staged_folder"]


@contextlib.contextmanager
def staged_folder(destination: str, *, overwrite: bool = False) -> Iterator[str]:
    """Yield a temporary folder next to ``destination``; on success it becomes ``destination``.

    On any error the temporary folder is removed and ``destination`` is untouched.

    Example:
        >>> import tempfile, os
        >>> out = os.path.join(tempfile.mkdtemp(), "model")
        >>> with staged_folder(out) as tmp:
        ...     open(os.path.join(tmp, "config.json"), "w").write("{}")
        2
        >>> os.listdir(out)
        ['config.json']
    """
    destination = os.path.abspath(destination)
    if os.path.exists(destination) and (not os.path.isdir(destination) or os.listdir(destination)) \
            and not overwrite:
        raise UsageError("output exists and is not empty", path=destination,
                         hint="choose a new folder or pass --overwrite")
    parent = os.path.dirname(destination)
    os.makedirs(parent, exist_ok=True)
    staging = os.path.join(parent, f".{os.path.basename(destination)}.tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    os.makedirs(staging)
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    old = None
    if os.path.exists(destination):
        old = f"{staging}.old"
        os.replace(destination, old)
    os.replace(staging, destination)
    if old:
        shutil.rmtree(old, ignore_errors=True)
