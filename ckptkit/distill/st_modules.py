"""The sentence-transformers module stack of a teacher, carried to its student (at init and after training).

A sentence-transformers folder is a hub folder (the Transformer module) plus ``modules.json``
naming the stack (Transformer, Pooling, Normalize, Dense...), each other module's folder
(``1_Pooling/config.json``, ``2_Normalize``), ``sentence_bert_config.json`` and
``config_sentence_transformers.json``. The student keeps the same stack: its own weights are
the Transformer module (``path: ""``), the other modules' folders are copied as they are.

Example:
    >>> st_module_folders("/nonexistent")
    []
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from ckptkit.errors import ConfigError
from ckptkit.output.atomic import write_json

__all__ = ["ST_FILES", "MODULES_FILE", "is_sentence_transformer", "read_modules", "st_module_folders",
           "copy_st_modules"]

MODULES_FILE = "modules.json"
# top-level files of a sentence-transformers folder besides the Transformer module's own
ST_FILES = ("sentence_bert_config.json", "config_sentence_transformers.json")
_TRANSFORMER = "Transformer"


def is_sentence_transformer(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` is a sentence-transformers model (it has ``modules.json``)."""
    return (Path(folder) / MODULES_FILE).is_file()


def read_modules(folder: str | os.PathLike) -> list[dict]:
    """``folder``'s ``modules.json``: the module stack in order, each with its ``type`` and ``path``."""
    path = Path(folder) / MODULES_FILE
    try:
        modules = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ConfigError(f"cannot read the sentence-transformers module list ({e})", path=path) from e
    if not isinstance(modules, list) or not all(isinstance(m, dict) and "type" in m for m in modules):
        raise ConfigError("modules.json is not a list of modules with a 'type'", path=path)
    return modules


def st_module_folders(folder: str | os.PathLike) -> list[str]:
    """The folders of the modules after the Transformer (``1_Pooling``...), as ``modules.json`` names them."""
    folder = Path(folder)
    if not is_sentence_transformer(folder):
        return []
    return [m["path"] for m in read_modules(folder)
            if m.get("path") and not m["type"].endswith(_TRANSFORMER)]


def copy_st_modules(source: str | os.PathLike, target: str | os.PathLike) -> list[str]:
    """Give ``target`` (a student's hub folder) ``source``'s sentence-transformers stack; returns the names written.

    ``modules.json`` is written with the Transformer module at the folder's top (where the student's
    weights are); the other modules' folders and the sentence-transformers configs are copied as
    they are (a module without a folder, such as an old Normalize, stays without one).
    Nothing is written for a ``source`` without ``modules.json``.
    """
    source, target = Path(source), Path(target)
    if not is_sentence_transformer(source):
        return []
    modules = [{**m, "path": ""} if m["type"].endswith(_TRANSFORMER) else m for m in read_modules(source)]
    write_json(target / MODULES_FILE, modules)
    written = [MODULES_FILE]
    for name in ST_FILES:
        if (source / name).is_file() and not _same(source / name, target / name):
            shutil.copyfile(source / name, target / name)
        written += [name] if (source / name).is_file() else []
    for sub in st_module_folders(source):
        if (source / sub).is_dir() and not _same(source / sub, target / sub):
            shutil.rmtree(target / sub, ignore_errors=True)
            shutil.copytree(source / sub, target / sub)
        written += [sub] if (source / sub).is_dir() else []
    return written


def _same(a: Path, b: Path) -> bool:
    return b.exists() and os.path.samefile(a, b)
