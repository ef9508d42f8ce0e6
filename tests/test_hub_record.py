"""ckptkit.json: the provenance record contract (write, read, validate) and the hub modules' doctests."""

from __future__ import annotations

import doctest
import json

import pytest

import ckptkit
from ckptkit.errors import CheckpointNotFoundError, ConfigError
from ckptkit.output.record import command_line, read_record, update_record, write_record

RECORD = {
    "kind": "conversion",
    "command": "ckptkit convert model.ckpt-20000 out --verify",
    "model": {"family": "bert", "model_class": "BertForPreTraining", "pipeline_tag": "fill-mask",
              "num_parameters": 110_000_000},
    "source": {"path": "model.ckpt-20000", "format": "tf", "family": "bert", "global_step": 20000,
               "base_model": None},
    "verification": {"passed": True, "max_abs_diff": 1.2e-6, "compared": "hidden states", "tensors_checked": 199},
}


def test_round_trip_fills_version_and_time_and_keeps_caller_dict(tmp_path):
    given = json.loads(json.dumps(RECORD))
    path = write_record(tmp_path, given)
    assert given == RECORD  # not mutated
    back = read_record(tmp_path)
    assert path.name == "ckptkit.json"
    assert back["ckptkit_version"] == ckptkit.__version__
    assert back["created"].endswith("Z")
    assert {k: back[k] for k in RECORD} == RECORD
    assert not list(tmp_path.glob("*.tmp"))  # written atomically, no leftovers


def test_unknown_keys_are_kept(tmp_path):
    write_record(tmp_path, {**RECORD, "extra": {"anything": 1}})
    assert read_record(tmp_path)["extra"] == {"anything": 1}


@pytest.mark.parametrize("change, words", [
    (lambda r: r.pop("command"), "missing key 'command'"),
    (lambda r: r["model"].pop("model_class"), "missing key 'model.model_class'"),
    (lambda r: r["source"].update(global_step="20000"), "'source.global_step' is '20000', expected int or null"),
    (lambda r: r["verification"].update(passed="yes"), "'verification.passed' is 'yes', expected bool"),
    (lambda r: r.update(kind="teacher"), "'kind' is 'teacher', expected one of conversion, student, distilled"),
    (lambda r: r["source"].update(global_step=True), "'source.global_step' is True"),
])
def test_invalid_records_name_the_key(tmp_path, change, words):
    bad = json.loads(json.dumps(RECORD))
    change(bad)
    with pytest.raises(ConfigError, match=words.replace("(", r"\(").replace(")", r"\)")):
        write_record(tmp_path, bad)
    assert not (tmp_path / "ckptkit.json").exists()


def test_missing_and_broken_files(tmp_path):
    with pytest.raises(CheckpointNotFoundError, match="no provenance record"):
        read_record(tmp_path)
    (tmp_path / "ckptkit.json").write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        read_record(tmp_path)
    with pytest.raises(CheckpointNotFoundError, match="folder does not exist"):
        write_record(tmp_path / "nope", RECORD)


def test_update_record_merges_one_section(tmp_path):
    write_record(tmp_path, {**RECORD, "card": {"license": "mit", "tags": ["a"]}})
    update_record(tmp_path, "card", {"language": ["ko"], "license": "apache-2.0"})
    assert read_record(tmp_path)["card"] == {"license": "apache-2.0", "tags": ["a"], "language": ["ko"]}


def test_command_line_is_shell_quoted():
    assert command_line(["convert", "my model", "--language", "ko"]) == "ckptkit convert 'my model' --language ko"


@pytest.mark.parametrize("module_name", ["ckptkit.output.record", "ckptkit.output.card_sections",
                                         "ckptkit.output.atomic", "ckptkit.output.names", "ckptkit.hub.upload"])
def test_docstring_examples_run(module_name):
    import importlib

    module = importlib.import_module(module_name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
    assert result.attempted > 0
