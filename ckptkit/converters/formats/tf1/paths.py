"""From whatever the user gives (directory, state file, prefix, ``.index``, data shard) to a prefix.

Example:
    >>> data_file("out/model.ckpt", 0, 2)
    'out/model.ckpt.data-00000-of-00002'
    >>> strip_suffix("run/model.ckpt-20000.index")
    'run/model.ckpt-20000'
"""

from __future__ import annotations

import os
import re

from ckptkit.converters.formats.tf1.state import STATE_FILE, parse_state
from ckptkit.converters.formats.tf1.table import is_table
from ckptkit.errors import CheckpointNotFoundError, CorruptCheckpointError, UnsupportedFormatError

__all__ = ["resolve_prefix", "data_file", "strip_suffix"]

_SUFFIX = re.compile(r"(\.index|\.data-\d{5}-of-\d{5}|\.meta)$")
_STEP = re.compile(r"-(\d+)$")


def data_file(prefix: str, shard: int, num_shards: int) -> str:
    """The name of one data shard of ``prefix``."""
    return f"{prefix}.data-{shard:05d}-of-{num_shards:05d}"


def strip_suffix(path: str) -> str:
    """``prefix.index`` / ``prefix.data-00000-of-00001`` / ``prefix.meta`` -> ``prefix``."""
    return _SUFFIX.sub("", path)


def _from_state_file(directory: str) -> str | None:
    state_path = os.path.join(directory, STATE_FILE)
    if not os.path.isfile(state_path):
        return None
    with open(state_path, encoding="utf-8", errors="replace") as f:
        paths = parse_state(f.read()).get("model_checkpoint_path")
    if not paths or not paths[-1]:
        raise CorruptCheckpointError("state file names no model_checkpoint_path", path=state_path)
    named = paths[-1]
    candidates = [named if os.path.isabs(named) else os.path.join(directory, named),
                  os.path.join(directory, os.path.basename(named.rstrip("/\\")))]  # moved from the training machine
    for candidate in candidates:
        if os.path.isfile(candidate + ".index"):
            return candidate
    raise CheckpointNotFoundError(f"state file names {named!r}, but {os.path.basename(named)}.index is not in "
                                  f"{directory}", path=state_path, hint="copy the checkpoint files next to it")


def _only_prefix_in(directory: str) -> str:
    prefixes = sorted(n[:-len(".index")] for n in os.listdir(directory) if n.endswith(".index"))
    if len(prefixes) == 1:
        return os.path.join(directory, prefixes[0])
    if not prefixes:
        raise CheckpointNotFoundError("directory holds no TensorFlow checkpoint", path=directory,
                                      hint="expected a 'checkpoint' state file or a *.index file")
    raise CheckpointNotFoundError("several checkpoints and no 'checkpoint' state file", path=directory,
                                  hint="give one prefix: " + ", ".join(prefixes[:5]))


def _refuse_single_file(path: str) -> None:
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(max(0, size - 48))
        tail = f.read()
    if is_table(tail):
        raise UnsupportedFormatError("this is a V1 checkpoint (TensorFlow before 1.0: one table file, no .index)",
                                     path=path, hint="ckptkit reads the V2 format; re-save it with TensorFlow 1.x "
                                     "using tf.train.Saver(write_version=tf.train.SaverDef.V2)")
    raise CorruptCheckpointError("not a TensorFlow checkpoint: no .index file next to it and not a table", path=path)


def resolve_prefix(path: str | os.PathLike) -> str:
    """The checkpoint prefix meant by ``path``, checked to have its ``.index`` file.

    Raises:
        CheckpointNotFoundError: nothing usable at ``path``.
        UnsupportedFormatError: ``path`` is a V1 (pre-1.0) checkpoint.
    """
    p = os.fspath(path)
    if os.path.isdir(p):
        return _from_state_file(p) or _only_prefix_in(p)
    if os.path.basename(p) == STATE_FILE and os.path.isfile(p):
        return _from_state_file(os.path.dirname(p) or ".")
    prefix = strip_suffix(p)
    if os.path.isfile(prefix + ".index"):
        return prefix
    if os.path.isfile(p) and prefix == p:
        _refuse_single_file(p)
    missing_index = prefix != p or _has_shards(p)
    raise CheckpointNotFoundError("the checkpoint's .index file is missing" if missing_index else "no such checkpoint",
                                  path=prefix + ".index" if missing_index else p,
                                  hint="give a checkpoint directory, a prefix such as model.ckpt-20000, or its .index")


def _has_shards(prefix: str) -> bool:
    directory, base = os.path.split(prefix)
    try:
        return any(n.startswith(base + ".data-") for n in os.listdir(directory or "."))
    except OSError:
        return False
