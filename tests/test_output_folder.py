"""The output folder has one owner (issue 13 item 4): one atomic writer, each file name defined once.

- :func:`ckptkit.output.atomic.atomic_write` (bytes, text) and :func:`write_json` give files the umask's
  mode and, when anything fails, leave the previous file as it was and no temporary file behind;
- every JSON file the package writes goes through that writer (no ``write_text(json.dumps(...))``);
- ``STUDENT_FILE``, ``RECORD_FILE``, ... and the hub weight-file list are each defined in one place.
"""

from __future__ import annotations

import ast
import errno
import functools
import json
import os
from pathlib import Path

import pytest

import ckptkit
from ckptkit.output.atomic import OutOfSpaceError, atomic_write, write_json

PACKAGE = Path(ckptkit.__file__).parent

# (name of the writer, function writing {"a": 1} to a path)
WRITERS = {
    "bytes": lambda path: atomic_write(path, b'{"a": 1}\n'),
    "text": lambda path: atomic_write(path, '{"a": 1}\n'),
    "json": lambda path: write_json(path, {"a": 1}),
}


@pytest.fixture
def umask_027():
    old = os.umask(0o027)
    try:
        yield
    finally:
        os.umask(old)


def test_the_atomic_writer_takes_bytes_text_and_json_and_follows_the_umask(tmp_path, umask_027):
    for kind, write in WRITERS.items():
        path = tmp_path / f"{kind}.json"
        write(path)
        assert json.loads(path.read_text()) == {"a": 1}, kind
        assert path.stat().st_mode & 0o777 == 0o640, kind
    assert sorted(os.listdir(tmp_path)) == ["bytes.json", "json.json", "text.json"]


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "config.json"
    path.write_text("previous")

    def no_rename(src, dst):
        raise OSError(errno.EIO, "I/O error")
    monkeypatch.setattr(os, "replace", no_rename)
    for kind, write in WRITERS.items():
        with pytest.raises(OSError, match="I/O error"):
            write(path)
        assert path.read_text() == "previous" and os.listdir(tmp_path) == ["config.json"], kind


def test_full_disk_is_one_error_and_leaves_no_temporary(tmp_path, monkeypatch):
    def full(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(OutOfSpaceError, match="no space left on the device"):
        write_json(tmp_path / "student.json", {"layers": [0]})
    assert os.listdir(tmp_path) == []


def test_config_json_that_cannot_be_written_keeps_the_old_one(tmp_path):
    """config_io.write_json used to truncate the file before it knew the document could be written."""
    from ckptkit.converters.config_io import write_json as write_config

    path = tmp_path / "config.json"
    path.write_text('{"hidden_size": 8}\n')
    with pytest.raises(TypeError):
        write_config(str(path), {"hidden_size": object()})
    assert json.loads(path.read_text()) == {"hidden_size": 8} and os.listdir(tmp_path) == ["config.json"]


# ------------------------------------------------------------------ one definition of each name


@functools.lru_cache(maxsize=1)
def _modules() -> list[tuple[str, ast.Module]]:
    return [(p.relative_to(PACKAGE.parent).as_posix(), ast.parse(p.read_text(encoding="utf-8")))
            for p in sorted(PACKAGE.rglob("*.py"))]


def _is_literal(node: ast.AST) -> bool:
    """A constant, a tuple/list/set of literals, or frozenset(...) / tuple(...) of one."""
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return all(_is_literal(e) for e in node.elts)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("frozenset", "tuple"):
        return all(_is_literal(a) for a in node.args)
    return False


NAMES = ("STUDENT_FILE", "RECORD_FILE", "CARD_FILE", "CONFIG_FILE", "MARKER_FILE", "HUB_WEIGHT_FILES",
         "TOKENIZER_FILE_NAMES", "SPIECE_UNDERLINE")


@functools.lru_cache(maxsize=1)
def _definitions() -> dict[str, list[str]]:
    """name -> modules that assign it a literal value."""
    found: dict[str, list[str]] = {name: [] for name in NAMES}
    for module, tree in _modules():
        for node in ast.walk(tree):
            targets = node.targets if isinstance(node, ast.Assign) else \
                [node.target] if isinstance(node, ast.AnnAssign) and node.value is not None else []
            for target in targets:
                if isinstance(target, ast.Name) and target.id in found and _is_literal(node.value):
                    found[target.id].append(module)
    return found


def test_each_file_name_constant_is_defined_once():
    assert {name: where for name, where in _definitions().items() if len(where) != 1} == {}


def _strings(node: ast.AST) -> set[str]:
    return {n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)}


def test_the_hub_weight_file_list_is_written_once():
    """No second literal list naming both safetensors and PyTorch hub weight files."""
    holders = [module for module, tree in _modules() for node in ast.walk(tree)
               if isinstance(node, (ast.Tuple, ast.List, ast.Set))
               and {"model.safetensors", "pytorch_model.bin"} <= _strings(node)
               and not any(isinstance(child, (ast.Tuple, ast.List, ast.Set)) and
                           {"model.safetensors", "pytorch_model.bin"} <= _strings(child) for child in node.elts)]
    assert holders == ["ckptkit/output/names.py"]


# ------------------------------------------------------------------ one atomic writer


def _is_json_dumps(node: ast.AST) -> bool:
    return any(isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr in ("dumps", "dump")
               and isinstance(n.func.value, ast.Name) and n.func.value.id == "json" for n in ast.walk(node))


def _opens_for_append(node: ast.AST) -> bool:
    """``open(p, "a")``, ``path.open("a")`` or either with ``mode="a..."``."""
    if not isinstance(node, ast.Call):
        return False
    name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", None)
    modes = [*node.args, *(k.value for k in node.keywords if k.arg == "mode")]
    return name == "open" and any(isinstance(m, ast.Constant) and str(m.value).startswith("a") for m in modes)


def _appending(tree: ast.AST) -> set[int]:
    """ids of nodes inside ``with open(..., "a")``: a log appended line by line is not a file swapped in."""
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.With) and any(_opens_for_append(item.context_expr) for item in node.items):
            inside |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    return inside


def test_json_files_are_written_only_through_the_atomic_writer():
    """``write_text(json.dumps(...))``, ``f.write(json.dumps(...))`` and ``json.dump(doc, f)`` write a file in
    place: a crash leaves half of it and nothing fixes its mode. Only ckptkit.output.atomic writes JSON."""
    offenders = []
    for module, tree in _modules():
        appending = _appending(tree)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or id(node) in appending or not isinstance(node.func, ast.Attribute):
                continue
            direct_dump = node.func.attr == "dump" and isinstance(node.func.value, ast.Name) \
                and node.func.value.id == "json"
            write_of_dumps = node.func.attr in ("write", "write_text", "write_bytes") and \
                any(_is_json_dumps(a) for a in node.args)
            if direct_dump or write_of_dumps:
                offenders.append(f"{module}:{node.lineno}")
    assert offenders == []


def test_temporary_files_are_made_in_one_place():
    makers = [module for module, tree in _modules() for node in ast.walk(tree)
              if isinstance(node, ast.Attribute) and node.attr in ("mkstemp", "NamedTemporaryFile")]
    assert makers == ["ckptkit/output/atomic.py"]


def test_old_import_paths_still_work():
    from ckptkit.converters.staging import atomic_write as old_atomic_write, staged_folder
    from ckptkit.hub import write_model_card, write_record
    from ckptkit.hub.model_card import MARKER
    from ckptkit.hub.record import STUDENT_FILE

    from ckptkit.output import card, names, record, staging
    assert (old_atomic_write, staged_folder) == (atomic_write, staging.staged_folder)
    assert (write_model_card, write_record, MARKER) == (card.write_model_card, record.write_record, card.MARKER)
    assert STUDENT_FILE == names.STUDENT_FILE == "student.json"


@pytest.mark.parametrize("module_name", ["ckptkit.output.staging", "ckptkit.hub.translate", "ckptkit.tokenizers.files",
                                         "ckptkit.tokenizers.wordpiece", "ckptkit.tokenizers.unigram",
                                         "ckptkit.tokenizers.template"])
def test_docstring_examples_run(module_name):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module_name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0
