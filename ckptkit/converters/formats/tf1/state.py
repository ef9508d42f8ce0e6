"""The directory's ``checkpoint`` state file: a text-format ``CheckpointState`` proto.

Example:
    >>> text = format_state("model.ckpt-2", ["model.ckpt-1", "model.ckpt-2"])
    >>> print(text, end="")
    model_checkpoint_path: "model.ckpt-2"
    all_model_checkpoint_paths: "model.ckpt-1"
    all_model_checkpoint_paths: "model.ckpt-2"
    >>> parse_state(text + 'last_preserved_timestamp: 1.5\\n')["model_checkpoint_path"]
    ['model.ckpt-2']
"""

from __future__ import annotations

import codecs
import re

__all__ = ["STATE_FILE", "parse_state", "format_state"]

STATE_FILE = "checkpoint"
_LINE = re.compile(r'^\s*(\w+)\s*:\s*(?:"((?:[^"\\]|\\.)*)"|(\S+))\s*$')


def _unescape(text: str) -> str:
    return codecs.escape_decode(text.encode("utf-8"))[0].decode("utf-8", "replace")


def parse_state(text: str) -> dict[str, list[str]]:
    """Field name -> values (in file order). Lines that are not ``name: value`` are ignored."""
    fields: dict[str, list[str]] = {}
    for line in text.splitlines():
        match = _LINE.match(line)
        if match:
            name, quoted, bare = match.groups()
            fields.setdefault(name, []).append(_unescape(quoted) if quoted is not None else bare)
    return fields


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def format_state(latest: str, all_paths: list[str]) -> str:
    """The state file naming ``latest`` and ``all_paths`` (oldest first), as TensorFlow writes it."""
    lines = [f"model_checkpoint_path: {_quote(latest)}"]
    lines += [f"all_model_checkpoint_paths: {_quote(p)}" for p in all_paths]
    return "\n".join(lines) + "\n"
