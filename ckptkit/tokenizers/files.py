"""Which files of a hub folder make up its tokenizer, and copying them as they are.

A tokenizer is more than ``tokenizer.json``: KoBERT's slow tokenizer needs its SentencePiece model and
``vocab.txt`` too. Copying every tokenizer file keeps every way of loading it working.

Example:
    >>> tokenizer_files("/nonexistent")
    []
"""

from __future__ import annotations

import os
from pathlib import Path

from ckptkit.output.atomic import atomic_write
from ckptkit.output.names import TOKENIZER_FILE_NAMES, TOKENIZER_SUFFIXES

__all__ = ["TOKENIZER_FILE_NAMES", "tokenizer_files", "replace_tokenizer_files"]


def tokenizer_files(folder: str | os.PathLike) -> list[str]:
    """The tokenizer files directly in ``folder``, sorted (none when it is not a folder).

    Example:
        >>> import tempfile; d = Path(tempfile.mkdtemp())
        >>> for n in ("config.json", "vocab.txt", "spiece.model"): _ = (d / n).write_text("x")
        >>> tokenizer_files(d)
        ['spiece.model', 'vocab.txt']
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir()
                  if p.is_file() and (p.name in TOKENIZER_FILE_NAMES or p.name.endswith(TOKENIZER_SUFFIXES)))


def replace_tokenizer_files(source: str | os.PathLike, target: str | os.PathLike) -> list[str]:
    """Make ``target``'s tokenizer files exactly ``source``'s: copy each (atomically), remove the others.

    Returns:
        The names copied (empty when ``source`` has no tokenizer files; ``target`` then has none either).

    Example:
        >>> import tempfile; a, b = Path(tempfile.mkdtemp()), Path(tempfile.mkdtemp())
        >>> _ = (a / "vocab.txt").write_text("[PAD]"); _ = (b / "tokenizer.json").write_text("{}")
        >>> replace_tokenizer_files(a, b), tokenizer_files(b)
        (['vocab.txt'], ['vocab.txt'])
    """
    source, target = Path(source), Path(target)
    names = tokenizer_files(source)
    for stale in set(tokenizer_files(target)) - set(names):
        (target / stale).unlink()
    for name in names:
        if not ((target / name).exists() and os.path.samefile(source / name, target / name)):
            atomic_write(target / name, (source / name).read_bytes())
    return names
