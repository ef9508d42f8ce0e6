"""Open any supported checkpoint by path: detection is a table, each format a module.

Example:
    >>> from ckptkit.converters.formats import detect_format
    >>> detect_format("does/not/exist")
    Traceback (most recent call last):
    ...
    ckptkit.errors.CheckpointNotFoundError: does/not/exist: no such file or directory (give a checkpoint directory, a TF prefix such as model.ckpt-20000, or a weights file)
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Callable

from ckptkit.converters.tensors import Checkpoint
from ckptkit.errors import CheckpointNotFoundError, UnsupportedFormatError
from ckptkit.output.names import hub_weight_names

__all__ = ["open_checkpoint", "detect_format", "FORMAT_OPENERS"]

# format name -> "module:function" taking (path) and returning a Checkpoint.
FORMAT_OPENERS: dict[str, str] = {
    "tf": "ckptkit.converters.formats.tf1:open_tf_checkpoint",
    "safetensors": "ckptkit.converters.formats.safetensors_io:open_safetensors",
    "pytorch": "ckptkit.converters.formats.torch_bin:open_torch_bin",
    "hub": "ckptkit.converters.formats.hub_folder:open_hub_folder",
    "saved_model": "ckptkit.converters.formats.saved_model:open_saved_model",  # opens as format "tf"
}



def _dir_format(path: Path) -> str | None:
    names = set(os.listdir(path))
    if any(n in names for n in hub_weight_names()):
        return "hub"
    if "saved_model.pb" in names or path.name == "variables" and (path.parent / "saved_model.pb").is_file():
        return "saved_model"
    if "checkpoint" in names or any(n.endswith(".index") for n in names):
        return "tf"
    return None


# (predicate on an existing file, format), first match wins.
_FILE_RULES: tuple[tuple[Callable[[str], bool], str], ...] = (
    (lambda n: n == "saved_model.pb", "saved_model"),
    (lambda n: n.endswith(".index"), "tf"),
    (lambda n: n.endswith(".safetensors") or n.endswith(".safetensors.index.json"), "safetensors"),
    (lambda n: n.endswith((".bin", ".pt", ".pth")) or n.endswith(".bin.index.json"), "pytorch"),
    (lambda n: n == "checkpoint" or ".ckpt" in n, "tf"),  # a state file or a data shard / V1 file
)


def detect_format(path: str | os.PathLike) -> str:
    """The format name of the checkpoint at ``path`` (a key of :data:`FORMAT_OPENERS`)."""
    p = Path(path)
    if p.is_dir():
        found = _dir_format(p)
        if found:
            return found
        raise CheckpointNotFoundError("directory holds no checkpoint", path=p,
                                      hint="expected a TF 'checkpoint' file / *.index, saved_model.pb, "
                                           "model.safetensors or pytorch_model.bin")
    if p.is_file():
        for predicate, fmt in _FILE_RULES:
            if predicate(p.name):
                return fmt
        raise UnsupportedFormatError("not a checkpoint format ckptkit knows", path=p,
                                     hint="expected .index, .safetensors, .bin or a hub folder")
    if Path(f"{p}.index").is_file() or p.parent.is_dir() and any(
            n.startswith(p.name + ".data-") for n in os.listdir(p.parent)):
        return "tf"
    raise CheckpointNotFoundError("no such file or directory", path=p,
                                  hint="give a checkpoint directory, a TF prefix such as model.ckpt-20000, "
                                       "or a weights file")


def open_checkpoint(path: str | os.PathLike, *, format: str | None = None) -> Checkpoint:
    """Open a checkpoint of any supported format as a lazy, read-only mapping.

    Args:
        path: a TF checkpoint directory, prefix or ``.index`` file; a ``.safetensors`` file or
            index json; a PyTorch ``.bin`` file or index json; or a hub folder.
        format: skip detection and use this format (``tf``, ``safetensors``, ``pytorch``, ``hub``).

    Returns:
        A :class:`~ckptkit.converters.tensors.Checkpoint`; use it as a context manager.

    Example:
        >>> with open_checkpoint("examples/tiny-bert") as ckpt:  # doctest: +SKIP
        ...     ckpt["bert/pooler/dense/kernel"].read().shape
        (32, 32)
    """
    from ckptkit.converters.source import resolve_location

    path = resolve_location(path)  # a location kind ckptkit cannot read is one line naming it
    fmt = format or detect_format(path)
    if fmt not in FORMAT_OPENERS:
        raise UnsupportedFormatError(f"unknown format {fmt!r}", hint="one of " + ", ".join(FORMAT_OPENERS))
    module, _, function = FORMAT_OPENERS[fmt].partition(":")
    return getattr(importlib.import_module(module), function)(os.fspath(path))
