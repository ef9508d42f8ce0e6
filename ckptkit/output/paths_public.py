"""Local paths made fit to publish: what the model card and the uploaded ``ckptkit.json`` show.

A folder ckptkit writes remembers where it came from (``source.path``, the exact ``command``), and
on most machines those absolute paths carry the user's home directory and name. Before anything
goes public, every local path becomes **relative to the working directory** the record was written
in (``working_directory`` in ``ckptkit.json``), or **only its own name** when it lies outside that
directory. The command line follows the same rule token by token. Remote locations stay, without
credentials or query strings (a presigned URL's signature is a secret). ``--card-paths full``
keeps everything as it is.

Example:
    >>> public_path("/home/alice/models/bert/model.ckpt", cwd="/home/alice/models")
    'bert/model.ckpt'
    >>> public_path("/home/alice/data/model.ckpt", cwd="/srv/work")
    'model.ckpt'
    >>> public_command("ckptkit convert /home/alice/m.ckpt out --verify", cwd="/srv/work")
    'ckptkit convert m.ckpt out --verify'
"""

from __future__ import annotations

import os
import posixpath
import re
import shlex
from typing import Any
from urllib.parse import urlsplit, urlunsplit

__all__ = ["PATH_MODES", "public_path", "public_command", "public_record", "public_text", "WORKDIR_KEY"]

PATH_MODES = ("public", "full")
WORKDIR_KEY = "working_directory"  # the record's key: where the command that wrote it ran (local only)

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
# an absolute path inside free text: a '/' or '~/' not preceded by a word character, ':' or another '/'
_EMBEDDED = re.compile(r"(?<![\w:/.~-])(~?/[^\s'\"`,;()\[\]<>|]+)")


def _public_url(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))


def public_path(path: str, *, cwd: str) -> str:
    """``path`` as it may be published: relative to ``cwd`` when inside it, else its own name.

    Remote locations (``gs://``, ``s3://``, ``hf://``, ``https://``) are kept without user,
    password, query or fragment. A relative path is read as relative to ``cwd``.

    Example:
        >>> public_path("out/kobert", cwd="/home/me/work"), public_path("../secret/model.ckpt", cwd="/w")
        ('out/kobert', 'model.ckpt')
        >>> public_path("https://user:pw@host/m.ckpt?X-Amz-Signature=abc", cwd="/w")
        'https://host/m.ckpt'
    """
    if _URL.match(path):
        return _public_url(path)
    if path.startswith("file://"):
        path = path[len("file://"):]
    expanded = os.path.expanduser(path) if path.startswith("~") else path
    if path.startswith("~") and expanded == path:  # ~someone-else: never resolvable here, never published
        return posixpath.basename(path.rstrip("/")) or path
    full = posixpath.normpath(posixpath.join(cwd, expanded))
    base = posixpath.normpath(cwd)
    if full == base:
        return "."
    relative = posixpath.relpath(full, base) if full.startswith(base.rstrip("/") + "/") else None
    return relative if relative is not None else (posixpath.basename(full) or full)


def _looks_like_path(token: str) -> bool:
    return token.startswith(("/", "~", "./", "../", "file://")) or "/.." in token or _URL.match(token) is not None


def public_command(command: str, *, cwd: str) -> str:
    """``command`` with every path-like argument (also ``--opt=PATH``) passed through :func:`public_path`.

    Example:
        >>> public_command("ckptkit verify ~/m.ckpt --config=/etc/x/bert_config.json", cwd="/w")
        'ckptkit verify m.ckpt --config=bert_config.json'
    """
    try:
        tokens = shlex.split(command)
    except ValueError:  # unbalanced quotes: treat it as text
        return public_text(command, cwd=cwd)
    out = []
    for token in tokens:
        flag, eq, value = token.partition("=") if token.startswith("--") and "=" in token else ("", "", token)
        if _looks_like_path(value):
            value = public_path(value, cwd=cwd)
        out.append(f"{flag}{eq}{value}" if eq else value)
    return shlex.join(out)


def public_text(text: str, *, cwd: str) -> str:
    """Free text with every absolute local path inside it made public (warnings, error notes).

    Example:
        >>> public_text("could not read /home/alice/x/vocab.txt, used defaults", cwd="/w")
        'could not read vocab.txt, used defaults'
    """
    return _EMBEDDED.sub(lambda m: public_path(m.group(1), cwd=cwd), text)


def _walk(value: Any, key: str, cwd: str) -> Any:
    if isinstance(value, dict):
        return {k: _walk(v, k, cwd) for k, v in value.items() if k != WORKDIR_KEY}
    if isinstance(value, list):
        return [_walk(v, key, cwd) for v in value]
    if not isinstance(value, str):
        return value
    if key == "command" or value.startswith("ckptkit "):
        return public_command(value, cwd=cwd)
    if _looks_like_path(value) and not any(c.isspace() for c in value):
        return public_path(value, cwd=cwd)
    return public_text(value, cwd=cwd)


def public_record(record: dict[str, Any], *, mode: str = "public", cwd: str | None = None) -> dict[str, Any]:
    """A copy of a ``ckptkit.json`` record fit to publish (``mode="full"``: an unchanged copy).

    Every string is checked: commands token by token, paths by :func:`public_path`, free text by
    :func:`public_text`. ``cwd`` defaults to the record's ``working_directory``, else the current one.

    Example:
        >>> public_record({"command": "ckptkit convert /home/a/m.ckpt out", "source": {"path": "/home/a/m.ckpt"},
        ...                "working_directory": "/srv/w"})
        {'command': 'ckptkit convert m.ckpt out', 'source': {'path': 'm.ckpt'}}
    """
    if mode not in PATH_MODES:
        raise ValueError(f"paths mode {mode!r}: expected one of {', '.join(PATH_MODES)}")
    if mode == "full":
        return dict(record)
    where = cwd or record.get(WORKDIR_KEY) or os.getcwd()
    return _walk(record, "", str(where).replace(os.sep, "/"))
