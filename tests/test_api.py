"""The Python API (ckptkit.convert, verify, inspect, build_student, distill, open_checkpoint): its docstring
examples run as written on the bundled examples/tiny-bert, its options are keyword-only, it raises
ckptkit's errors, and ``import ckptkit`` stays light."""

from __future__ import annotations

import doctest
import inspect
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

import ckptkit
from ckptkit.errors import CkptkitError

REPO = Path(__file__).resolve().parent.parent
API = ["convert", "verify", "inspect", "build_student", "distill", "open_checkpoint"]
HEAVY = ["torch", "transformers", "tensorflow", "tokenizers", "sentencepiece", "datasets"]


@pytest.fixture
def in_repo(monkeypatch, tmp_path):
    """Run from the repository root (the examples name examples/tiny-bert); temporary folders under tmp_path."""
    monkeypatch.chdir(REPO)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))


@pytest.mark.parametrize("module, at_least", [("ckptkit.api", 25), ("ckptkit", 2), ("ckptkit.converters.inspection", 3)])
def test_docstring_examples_run(in_repo, module, at_least):
    import importlib

    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted >= at_least


def test_import_ckptkit_and_its_api_stays_light():
    probe = ("import sys, ckptkit\n"
             f"functions = [getattr(ckptkit, name) for name in {API!r}]\n"
             "print(json.dumps({'callable': all(map(callable, functions)), "
             f"'heavy': sorted(m for m in {HEAVY!r} if m in sys.modules)}}))")
    done = subprocess.run([sys.executable, "-c", "import json\n" + probe], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"callable": True, "heavy": []}


@pytest.mark.parametrize("name", API)
def test_options_are_keyword_only_and_documented(name):
    function = ckptkit.api.distill if name == "distill" else getattr(ckptkit, name)
    parameters = list(inspect.signature(function).parameters.values())
    positional = [p.name for p in parameters if p.kind is p.POSITIONAL_OR_KEYWORD]
    assert len(positional) <= 2 and not any(p.kind is p.VAR_POSITIONAL for p in parameters)
    assert all(p.kind in (p.KEYWORD_ONLY, p.VAR_KEYWORD) for p in parameters[len(positional):])
    assert all(section in function.__doc__ for section in ("Args:", "Returns:", "Example:"))
    assert inspect.signature(function).return_annotation is not inspect.Signature.empty


def test_the_distill_package_is_the_distill_function(in_repo, monkeypatch):
    import ckptkit.distill.losses  # noqa: F401  (importing a submodule must not hide the function)

    calls = []
    monkeypatch.setattr(ckptkit.api, "distill", lambda *args, **kwargs: calls.append((args, kwargs)) or "report")
    assert ckptkit.distill("s", "o", train_files=["t.txt"]) == "report"
    assert calls == [(("s", "o"), {"train_files": ["t.txt"]})]


def test_failures_raise_ckptkit_errors(in_repo, tmp_path):
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "mine.txt").write_text("not ckptkit's")
    with pytest.raises(CkptkitError, match="taken"):
        ckptkit.convert("examples/tiny-bert", taken)
    assert (taken / "mine.txt").read_text() == "not ckptkit's" and len(list(taken.iterdir())) == 1
    with pytest.raises(CkptkitError):
        ckptkit.inspect(tmp_path / "missing")
    with pytest.raises(TypeError):
        ckptkit.convert("examples/tiny-bert", tmp_path / "out", no_such_option=True)
    assert not (tmp_path / "out").exists()
