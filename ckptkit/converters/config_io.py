"""Reading the TF-side config files that sit next to checkpoints, and finding companions (vocab)."""

from __future__ import annotations

import json
import os
from typing import Mapping

from ckptkit.errors import CheckpointNotFoundError, ConfigError

__all__ = ["read_json_config", "checkpoint_folder", "find_companion"]


def read_json_config(path: str) -> dict:
    """A JSON object from ``path`` with one-line errors naming the file.

    Example:
        >>> read_json_config("missing_config.json")
        Traceback (most recent call last):
        ...
        ckptkit.errors.CheckpointNotFoundError: missing_config.json: config file not found
    """
    if not os.path.isfile(path):
        raise CheckpointNotFoundError("config file not found", path=path)
    try:
        with open(path, encoding="utf-8") as f:
            config = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"not valid JSON ({e})", path=path) from e
    if not isinstance(config, dict):
        raise ConfigError("not a JSON object", path=path)
    return config


def checkpoint_folder(source_path: str) -> str:
    """The directory a checkpoint lives in (the path itself for a directory)."""
    path = os.path.abspath(source_path)
    return path if os.path.isdir(path) else os.path.dirname(path)


def find_companion(source_path: str, names: tuple[str, ...], *, explicit: str | None = None) -> str | None:
    """An explicit path, else the first of ``names`` found next to the checkpoint (or its parent)."""
    if explicit:
        if not os.path.exists(explicit):
            raise CheckpointNotFoundError("file not found", path=explicit)
        return explicit
    folder = checkpoint_folder(source_path)
    for directory in (folder, os.path.dirname(folder)):
        for name in names:
            candidate = os.path.join(directory, name)
            if os.path.isfile(candidate):
                return candidate
    return None


def write_json(path: str, document: Mapping) -> None:
    """Write a config file (keys sorted) with the one atomic writer, :func:`ckptkit.output.atomic.write_json`."""
    from ckptkit.output.atomic import write_json as atomic_write_json

    atomic_write_json(path, document, sort_keys=True)
