"""``ckptkit.json``: the provenance record in every hub folder ckptkit writes.

The model card (``README.md``) is built from this record alone (plus ``student.json`` and
``config.json`` when present), so ``ckptkit card FOLDER`` can rebuild it at any time.

Schema (``required`` keys must be present; ``null`` is allowed where marked ``| None``;
unknown keys are kept, so writers may add fields without breaking readers)::

    {
      "ckptkit_version": "0.1.0",                      # required, str (filled in by write_record)
      "kind": "conversion" | "student" | "distilled",  # required
      "command": "ckptkit convert ...",                # required, shlex.join of the exact argv
      "created": "2025-01-31T12:00:00Z",               # required, ISO-8601 UTC (filled in by write_record)
      "model": {                                       # required
        "family": "bert",                              #   required, str
        "model_class": "BertForPreTraining",           #   required, str (transformers class name)
        "pipeline_tag": "fill-mask" | None,
        "num_parameters": 110000000 | None
      },
      "source": {                                      # required
        "path": "...", "format": "tf", "family": "bert",   # format: tf | tf2 | safetensors | torch | hub
        "global_step": 20000 | None,
        "base_model": "hub/id" | None                  #   the Hub id the source came from, if known
      },
      "verification": {                                # optional (None: not verified)
        "passed": true, "max_abs_diff": 1.2e-6 | None,
        "compared": "hidden states, MLM logits on a fixed batch",
        "tensors_checked": 199 | None, "tolerance": 1e-5 | None
      },
      "card": {                                        # optional: card options, remembered for `ckptkit card`
        "language": ["ko"], "license": "apache-2.0", "tags": [...],
        "base_model": "hub/id" | None, "repo_id": "namespace/name" | None,
        "paths": "public" | "full"                     #   local paths on the card (ckptkit.output.paths_public)
      },
      "results": [{"kind": "verify", "command": ..., "date": ..., "metrics": [...]}],  # optional, measured
                                                       #   results (ckptkit.output.results); the card shows these only
      "working_directory": "/abs/dir",                 # filled in by write_record; never published
      "student": {                                     # students: a copy of student.json
        "teacher": "...", "layers": [1, 5, 9], "arch": {...},
        "teacher_repo_id": "org/teacher" | None,       #   the teacher's Hub id (--teacher-repo-id): base_model
        "training": {"losses": {...}, "eval": {...}}   #   after `distill train`
      }
    }

Example:
    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> path = write_record(folder, {"kind": "conversion", "command": "ckptkit convert a b",
    ...     "model": {"family": "bert", "model_class": "BertForPreTraining"},
    ...     "source": {"path": "a", "format": "tf", "family": "bert"}})
    >>> read_record(folder)["model"]["model_class"]
    'BertForPreTraining'
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

from ckptkit import __version__
from ckptkit.errors import CheckpointNotFoundError, ConfigError
from ckptkit.output.atomic import write_json
from ckptkit.output.names import RECORD_FILE, STUDENT_FILE

__all__ = ["RECORD_FILE", "STUDENT_FILE", "KINDS", "write_record", "read_record", "validate_record",
           "update_record", "command_line", "utc_now"]

KINDS = ("conversion", "student", "distilled")

_STR = (str,)
_OPT_STR = (str, type(None))
_OPT_INT = (int, type(None))
_OPT_NUM = (int, float, type(None))
_OPT_LIST = (list, type(None))
_OPT_DICT = (dict, type(None))

# section -> {key: (accepted types, required)}; "" is the top level.
SCHEMA: dict[str, dict[str, tuple[tuple[type, ...], bool]]] = {
    "": {
        "ckptkit_version": (_STR, True),
        "kind": (_STR, True),
        "command": (_STR, True),
        "created": (_STR, True),
        "model": ((dict,), True),
        "source": ((dict,), True),
        "verification": (_OPT_DICT, False),
        "card": (_OPT_DICT, False),
        "student": (_OPT_DICT, False),
        "results": (_OPT_LIST, False),
        "working_directory": (_OPT_STR, False),
    },
    "model": {
        "family": (_STR, True),
        "model_class": (_STR, True),
        "pipeline_tag": (_OPT_STR, False),
        "num_parameters": (_OPT_INT, False),
    },
    "source": {
        "path": (_STR, True),
        "format": (_STR, True),
        "family": (_STR, True),
        "global_step": (_OPT_INT, False),
        "base_model": (_OPT_STR, False),
    },
    "verification": {
        "passed": ((bool,), True),
        "max_abs_diff": (_OPT_NUM, False),
        "compared": (_OPT_STR, False),
        "tensors_checked": (_OPT_INT, False),
        "tolerance": (_OPT_NUM, False),
    },
    "card": {
        "language": (_OPT_LIST, False),
        "license": (_OPT_STR, False),
        "tags": (_OPT_LIST, False),
        "base_model": (_OPT_STR, False),
        "repo_id": (_OPT_STR, False),
        "paths": (_OPT_STR, False),
        "subfolder": (_OPT_STR, False),
        "base_model_relation": (_OPT_STR, False),
    },
    "student": {
        "teacher": (_OPT_STR, False),
        "teacher_repo_id": (_OPT_STR, False),
        "layers": (_OPT_LIST, False),
        "arch": (_OPT_DICT, False),
        "training": (_OPT_DICT, False),
    },
}


def _type_names(types: tuple[type, ...]) -> str:
    return " or ".join("null" if t is type(None) else t.__name__ for t in types)


def validate_record(record: dict[str, Any], *, path: str | os.PathLike | None = None) -> None:
    """Raise :class:`ConfigError` naming the first key that is missing or has the wrong type.

    Example:
        >>> validate_record({"kind": "conversion"})
        Traceback (most recent call last):
        ...
        ckptkit.errors.ConfigError: ckptkit.json: missing key 'ckptkit_version' (write it with ckptkit.output.write_record)
    """
    where = path if path is not None else RECORD_FILE
    if not isinstance(record, dict):
        raise ConfigError(f"the record is a {type(record).__name__}, not a JSON object", path=where)
    for section, fields in SCHEMA.items():
        block = record if section == "" else record.get(section)
        if block is None:
            continue
        prefix = f"{section}." if section else ""
        for key, (types, required) in fields.items():
            if key not in block:
                if required:
                    raise ConfigError(f"missing key '{prefix}{key}'", path=where,
                                      hint="write it with ckptkit.output.write_record")
                continue
            value = block[key]
            if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
                raise ConfigError(f"'{prefix}{key}' is {value!r}, expected {_type_names(types)}", path=where,
                                  hint="fix the value in the file or rewrite the folder with ckptkit")
    if record["kind"] not in KINDS:
        raise ConfigError(f"'kind' is {record['kind']!r}, expected one of {', '.join(KINDS)}", path=where)
    from ckptkit.output.results import validate_result

    for i, entry in enumerate(record.get("results") or []):
        validate_result(entry, where=f"results[{i}]")


def utc_now() -> str:
    """The current time as ISO-8601 UTC, e.g. ``'2025-01-31T12:00:00Z'``.

    Example:
        >>> utc_now().endswith("Z")
        True
    """
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def command_line(argv: Sequence[str] | None = None) -> str:
    """The exact command that is running, as one shell-quoted line starting with ``ckptkit``.

    Example:
        >>> command_line(["convert", "in dir", "out"])
        "ckptkit convert 'in dir' out"
    """
    args = list(sys.argv[1:] if argv is None else argv)
    return shlex.join(["ckptkit", *args])


def write_record(folder: str | os.PathLike, record: dict[str, Any]) -> Path:
    """Validate ``record`` and write it as ``FOLDER/ckptkit.json`` (atomically); returns the path.

    ``ckptkit_version``, ``created`` and ``working_directory`` (where the command runs: paths in the
    command are relative to it; it is never published) are filled in when absent. The caller's dict
    is not changed.

    Example:
        >>> import tempfile
        >>> p = write_record(tempfile.mkdtemp(), {"kind": "student", "command": "ckptkit distill init t s",
        ...     "model": {"family": "bert", "model_class": "BertForMaskedLM"},
        ...     "source": {"path": "t", "format": "hub", "family": "bert"}})
        >>> p.name
        'ckptkit.json'
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointNotFoundError("folder does not exist", path=folder, hint="create it before writing the record")
    full = {"ckptkit_version": __version__, "created": utc_now(), "working_directory": os.getcwd(), **record}
    path = folder / RECORD_FILE
    validate_record(full, path=path)
    write_json(path, full)
    return path


def read_record(folder: str | os.PathLike) -> dict[str, Any]:
    """Read and validate ``FOLDER/ckptkit.json``.

    Example:
        >>> import tempfile
        >>> read_record(tempfile.mkdtemp())  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ckptkit.errors.CheckpointNotFoundError: .../ckptkit.json: no provenance record (...)
    """
    path = Path(folder) / RECORD_FILE
    if not path.is_file():
        raise CheckpointNotFoundError("no provenance record", path=path,
                                      hint="this folder was not written by ckptkit; write it with "
                                           "`ckptkit convert` or `ckptkit distill`")
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConfigError(f"not valid JSON ({e})", path=path, hint="fix or delete the file and rewrite the folder") from e
    validate_record(record, path=path)
    return record


def update_record(folder: str | os.PathLike, section: str, values: dict[str, Any]) -> dict[str, Any]:
    """Merge ``values`` into one section of the record (e.g. ``"card"``), write it back, return the record.

    Example:
        >>> import tempfile
        >>> d = tempfile.mkdtemp()
        >>> _ = write_record(d, {"kind": "conversion", "command": "ckptkit convert a b",
        ...     "model": {"family": "bert", "model_class": "BertModel"},
        ...     "source": {"path": "a", "format": "tf", "family": "bert"}})
        >>> update_record(d, "card", {"license": "mit"})["card"]
        {'license': 'mit'}
    """
    record = read_record(folder)
    record = {**record, section: {**(record.get(section) or {}), **values}}
    write_record(folder, record)
    return record
