"""No local paths published: a conversion from a folder under the user's home, uploaded to the fake Hub.

The uploaded README.md and ckptkit.json (read back from tests/fake_hub.py) must not contain the
home directory nor the user name; the local record keeps the full paths; ``--card-paths full``
publishes them on purpose.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import sys
from pathlib import Path

import pytest

from ckptkit.output.paths_public import public_command, public_path, public_record, public_text

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "tiny-bert"
USER = "alice-q7zk"
PRINTED: dict[str, str] = {}  # what the module fixture's commands printed
pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")


def _run(monkeypatch, *argv: str) -> None:
    from ckptkit.cli import main

    monkeypatch.setattr(sys, "argv", ["ckptkit", *argv])  # the recorded command is the real argv
    main(list(argv))


@pytest.fixture(scope="module")
def converted_once(tmp_path_factory):
    """A TF checkpoint under $HOME/models, converted (and verified) from a working directory elsewhere."""
    root = tmp_path_factory.mktemp("paths")
    home = root / "home" / USER
    source = home / "models" / "tiny-bert"
    shutil.copytree(EXAMPLE, source)
    work = root / "work"
    work.mkdir()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HOME", str(home))
        patch.chdir(work)
        _run(patch, "convert", str(source), "out/tiny-bert", "--quiet")
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            _run(patch, "verify", str(source), "out/tiny-bert")
    PRINTED["verify"] = printed.getvalue()
    return home, source, work / "out" / "tiny-bert"


@pytest.fixture
def converted(converted_once, monkeypatch):
    home, _, out = converted_once
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(out.parent.parent)
    return converted_once


def test_uploaded_card_and_record_hold_no_home_directory(converted, hub, monkeypatch, capsys):
    home, source, out = converted
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    _run(monkeypatch, "upload", "out/tiny-bert", "--repo-id", "me/tiny-bert", "--quiet")
    files = hub.files("me/tiny-bert")
    assert {"README.md", "ckptkit.json", "model.safetensors"} <= set(files)
    for name, data in files.items():
        assert str(home).encode() not in data and USER.encode() not in data, name
        assert str(out.parent.parent).encode() not in data, name  # nor the working directory
    record = json.loads(files["ckptkit.json"])
    assert record["source"]["path"] == "model.ckpt-20000"  # outside the working directory: its own name
    assert record["command"] == "ckptkit convert tiny-bert out/tiny-bert --quiet"
    assert record["results"][0]["command"] == "ckptkit verify tiny-bert out/tiny-bert"
    assert "working_directory" not in record
    card = files["README.md"].decode()
    assert "ckptkit convert tiny-bert out/tiny-bert --quiet" in card
    # the local record keeps everything; only the published copy is made public
    local = json.loads((out / "ckptkit.json").read_text())
    assert local["source"]["path"] == str(source / "model.ckpt-20000") and str(source) in local["command"]


def test_verify_records_its_result_and_says_so(converted_once):
    lines = PRINTED["verify"].splitlines()
    assert lines[-2:] == ["verification PASSED", "recorded in out/tiny-bert/ckptkit.json (the model card shows it)"]
    _, _, out = converted_once
    result = json.loads((out / "ckptkit.json").read_text())["results"][-1]
    assert result["kind"] == "verify" and {m["name"] for m in result["metrics"]} >= {
        "max abs difference: mlm_logits", "max abs difference: nsp_logits"}
    assert "NumPy float64 forward pass over the TF variables" in result["reference"]
    assert "| nsp_logits |" in (out / "README.md").read_text()


def test_card_paths_full_keeps_them(converted, hub, monkeypatch, capsys):
    home, source, out = converted
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    _run(monkeypatch, "upload", "out/tiny-bert", "--repo-id", "me/full", "--card-paths", "full", "--quiet")
    files = hub.files("me/full")
    assert str(source).encode() in files["ckptkit.json"] and str(source).encode() in files["README.md"]


def test_dry_run_says_what_is_published(converted, capsys, monkeypatch):
    _run(monkeypatch, "upload", "out/tiny-bert", "--repo-id", "me/tiny-bert", "--dry-run")
    out = capsys.readouterr().out
    assert "refresh README.md from ckptkit.json (usage snippet names the repo)" in out
    assert ("publish the cards, ckptkit.json and student.json with local paths relative to the working directory, "
            "or the file's own name when outside it") in out
    _run(monkeypatch, "upload", "out/tiny-bert", "--repo-id", "me/tiny-bert", "--dry-run", "--card-paths", "full")
    assert "publish the cards, ckptkit.json and student.json with local paths in full (--card-paths full)" in capsys.readouterr().out


@pytest.mark.parametrize("path, cwd, expected", [
    ("/home/u/work/out/m", "/home/u/work", "out/m"),
    ("/home/u/data/m.ckpt", "/home/u/work", "m.ckpt"),
    ("../data/m.ckpt", "/home/u/work", "m.ckpt"),
    ("out/m", "/home/u/work", "out/m"),
    ("/home/u/work", "/home/u/work", "."),
    ("/home/u/workshop/m", "/home/u/work", "m"),  # a sibling sharing the prefix is outside
    ("~other/m.ckpt", "/w", "m.ckpt"),
    ("gs://bucket/bert/model.ckpt", "/w", "gs://bucket/bert/model.ckpt"),
    ("https://user:secret@host/m.ckpt?X-Amz-Signature=s3cr3t", "/w", "https://host/m.ckpt"),
    ("hf://google/electra-small@main/model.ckpt", "/w", "hf://google/electra-small@main/model.ckpt"),
])
def test_public_path(path, cwd, expected):
    assert public_path(path, cwd=cwd) == expected


def test_public_command_text_and_record():
    command = "ckptkit convert '/home/u/my models/m.ckpt' out --config=/home/u/cfg/bert_config.json --repo-id me/x"
    assert public_command(command, cwd="/srv") == \
        "ckptkit convert m.ckpt out --config=bert_config.json --repo-id me/x"
    assert public_text("cannot read /home/u/x/vocab.txt; see https://huggingface.co/docs", cwd="/srv") == \
        "cannot read vocab.txt; see https://huggingface.co/docs"
    record = {"command": "ckptkit distill init /home/u/t s", "working_directory": "/srv",
              "student": {"teacher": "/home/u/t", "training": {"train_files": ["/home/u/c.txt"]}}}
    assert public_record(record) == {"command": "ckptkit distill init t s",
                                     "student": {"teacher": "t", "training": {"train_files": ["c.txt"]}}}
    assert public_record(record, mode="full") == record
