"""Lineage and results as card metadata: base_model from hf:// sources and teachers, model-index from the record.

The model-index block is checked against huggingface_hub's own ``metadata_eval_result`` (the shape the
Hub renders) and parsed back with ``ModelCard``; a card never shows a result its record does not hold.
"""

from __future__ import annotations

import json
import os

import pytest

from ckptkit.output.card import render_model_card, write_model_card
from ckptkit.output.record import read_record, write_record
from ckptkit.output.results import add_result, eval_result, make_result
from fake_hub import FakeHub
from support.cli import run_cli
from support.remote import checkpoint  # noqa: F401  (fixture)

TOKEN = "hf_fake_token_for_card_metadata"
CONVERSION = {
    "kind": "conversion", "command": "ckptkit convert m.ckpt out",
    "model": {"family": "bert", "model_class": "BertForMaskedLM", "pipeline_tag": "fill-mask"},
    "source": {"path": "m.ckpt", "format": "tf", "family": "bert"},
}
EVAL = {"objective": "mlm", "teacher_path": "out/kobert", "examples": 64,
        "teacher": {"mlm_accuracy": 0.61, "perplexity": 9.5, "parameters": 110_000_000, "file_bytes": 440_000_000,
                    "median_ms": 30.0},
        "student": {"mlm_accuracy": 0.52, "perplexity": 14.25, "parameters": 40_000_000, "file_bytes": 160_000_000,
                    "median_ms": 11.0},
        "agreement": {"top1": 0.71, "kl": 0.42, "embedding_cosine": 0.93}, "speedup": 2.7}


def _metadata(folder) -> dict:
    from huggingface_hub import ModelCard

    return ModelCard((folder / "README.md").read_text()).data.to_dict()


@pytest.fixture
def hf_source(checkpoint, monkeypatch):  # noqa: F811
    """The tiny TF checkpoint on the fake Hub as me/tiny-tf (tf/ folder)."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    with FakeHub(token=TOKEN, lifetime=45) as fake:
        monkeypatch.setenv("HF_ENDPOINT", fake.url)
        monkeypatch.setenv("HF_TOKEN", TOKEN)
        repo = fake.add_repo("me/tiny-tf")
        repo.branches["main"] = {f"tf/{n}": (checkpoint[0] / n).read_bytes() for n in os.listdir(checkpoint[0])}
        yield fake


def test_hf_source_and_its_students_keep_the_hub_id(hf_source, tmp_path, capsys):
    code, _, err = run_cli(["convert", "hf://me/tiny-tf/tf/model.ckpt-1000", tmp_path / "conv",
                            "--cache-dir", tmp_path / "cache", "--quiet"], capsys)
    assert code == 0, err
    meta = _metadata(tmp_path / "conv")
    assert meta["base_model"] == "me/tiny-tf"
    assert "base_model_relation" not in meta  # a format conversion: none of the Hub's values fits
    # a student of that folder: the teacher's Hub id is remembered from the teacher folder's record
    code, _, err = run_cli(["distill", "init", tmp_path / "conv", tmp_path / "student", "--layers", "0", "-q"], capsys)
    assert code == 0, err
    meta = _metadata(tmp_path / "student")
    assert meta["base_model"] == "me/tiny-tf" and "base_model_relation" not in meta
    assert "distillation" in meta["tags"]


def test_teacher_repo_id_and_local_teachers(checkpoint, tmp_path, capsys):  # noqa: F811
    local_teacher = checkpoint[1]  # converted from a local path: no Hub id anywhere
    code, _, err = run_cli(["distill", "init", local_teacher, tmp_path / "plain", "--layers", "0", "-q"], capsys)
    assert code == 0, err
    assert "base_model" not in _metadata(tmp_path / "plain")
    code, _, err = run_cli(["distill", "init", local_teacher, tmp_path / "given", "--layers", "0", "-q",
                            "--teacher-repo-id", "my-org/bert-tiny"], capsys)
    assert code == 0, err
    assert _metadata(tmp_path / "given")["base_model"] == "my-org/bert-tiny"
    assert read_record(tmp_path / "given")["student"]["teacher_repo_id"] == "my-org/bert-tiny"
    assert "| **Teacher on the Hub** | `my-org/bert-tiny` |" in (tmp_path / "given" / "README.md").read_text()
    code, _, err = run_cli(["distill", "init", local_teacher, tmp_path / "bad", "--layers", "0",
                            "--teacher-repo-id", "./bert-tiny"], capsys)
    assert code == 2 and err.strip() == ("ckptkit: error: --teacher-repo-id './bert-tiny' is not a Hub id (give "
                                         "NAMESPACE/NAME, e.g. --teacher-repo-id google/electra-small-discriminator)")
    assert not (tmp_path / "bad").exists()


def test_teacher_uploaded_before_is_the_students_base_model(tmp_path):
    teacher, student = tmp_path / "teacher", tmp_path / "student"
    teacher.mkdir(), student.mkdir()
    write_record(teacher, {**CONVERSION, "card": {"repo_id": "me/kobert"}})  # `ckptkit upload` remembers it
    write_record(student, {**CONVERSION, "kind": "student", "student": {"teacher": str(teacher), "layers": [0]}})
    assert "base_model: me/kobert" in render_model_card(student)


def test_verify_result_is_model_index_and_a_table(tmp_path):
    from huggingface_hub import ModelCard, metadata_eval_result

    verification = {"passed": True, "max_abs_diff": 3e-6, "tensors_checked": 39,
                    "compared": "logits, hidden states vs a NumPy float64 forward pass over the TF variables",
                    "outputs": [{"output": "hidden_states", "max_abs_diff": 1.5e-6},
                                {"output": "logits", "max_abs_diff": 3e-6}]}
    write_record(tmp_path, {**CONVERSION, "verification": verification})
    text = write_model_card(tmp_path, repo_id="me/tiny").read_text()
    index = ModelCard(text).data.to_dict()["model-index"]
    expected = metadata_eval_result(
        model_pretty_name="tiny", task_pretty_name=None, task_id="fill-mask",
        metrics_pretty_name="max abs difference: hidden_states", metrics_id="max_abs_diff", metrics_value=1.5e-6,
        dataset_pretty_name="fixed inputs, compared with the source checkpoint", dataset_id="ckptkit-verify")
    first = expected["model-index"][0]["results"][0]
    assert index[0]["name"] == "tiny"
    assert index[0]["results"][0]["task"] == {"type": "fill-mask"} == {k: v for k, v in first["task"].items() if v}
    assert index[0]["results"][0]["dataset"] == first["dataset"]
    # the same metric entry (huggingface_hub's helper also writes the optional verified: false)
    assert index[0]["results"][0]["metrics"][0] == {k: v for k, v in first["metrics"][0].items() if k != "verified"}
    assert [m["value"] for m in index[0]["results"][0]["metrics"]] == [1.5e-6, 3e-6]
    assert "| hidden_states | 1.5e-06 |" in text and "| logits | 3e-06 |" in text
    assert "**Passed** (39 tensors compared). Measured on " in text and "by `ckptkit convert m.ckpt out`" in text
    assert "Compared with: logits, hidden states vs a NumPy float64 forward pass" in text


def test_eval_and_downstream_results_with_command_and_date(tmp_path):
    from huggingface_hub import ModelCard

    write_record(tmp_path, {**CONVERSION, "kind": "distilled", "student": {"teacher": "t", "layers": [0, 4]}})
    add_result(tmp_path, eval_result(EVAL, command="ckptkit distill eval --student out/s --eval-file held.txt",
                                     date="2025-02-01T10:00:00Z"))
    add_result(tmp_path, make_result(
        "downstream", [{"type": "accuracy", "value": 0.874}, {"type": "accuracy", "value": 0.901, "model": "teacher"},
                       {"type": "accuracy", "value": 0.83, "model": "baseline: 3 layers from scratch"}],
        command="ckptkit distill eval --student out/s --task nsmc", date="2025-02-02T10:00:00Z",
        task={"type": "text-classification", "name": "sentiment"},
        dataset={"name": "NSMC", "type": "e9t/nsmc", "split": "test"}))
    text = write_model_card(tmp_path, repo_id="me/distil").read_text()
    results = ModelCard(text).data.eval_results
    own = {(r.task_type, r.dataset_type, r.metric_type): r.metric_value for r in results}
    assert own[("text-classification", "e9t/nsmc", "accuracy")] == 0.874
    assert own[("fill-mask", "held-out-text", "accuracy")] == 0.52
    assert own[("fill-mask", "held-out-text", "speedup")] == 2.7
    assert 0.901 not in [r.metric_value for r in results] and 0.61 not in [r.metric_value for r in results]
    assert "### Downstream task: sentiment, NSMC, test" in text
    assert "| metric | this model | teacher | baseline: 3 layers from scratch |" in text
    assert "| accuracy | 0.874 | 0.901 | 0.83 |" in text
    assert "Measured on 2025-02-02T10:00:00Z by `ckptkit distill eval --student out/s --task nsmc`." in text
    assert "| MLM accuracy (masked tokens, held out) | 0.52 | 0.61 |" in text
    assert "| parameters | 40,000,000 | 110,000,000 |" in text and "| top-1 agreement with the teacher | 0.71 |  |" in text


def test_a_card_never_claims_a_result_its_record_lacks(tmp_path):
    write_record(tmp_path, CONVERSION)
    text = write_model_card(tmp_path).read_text()
    assert "model-index" not in text and "max abs" not in text.lower() and "## Results" not in text
    assert "This folder was not verified." in text
    assert "checked against it" not in text
    student = tmp_path / "student"
    student.mkdir()
    write_record(student, {**CONVERSION, "kind": "student", "student": {"teacher": "t", "layers": [0]}})
    text = write_model_card(student).read_text()
    assert "model-index" not in text and "## Verification" not in text and "## Results" not in text


def test_malformed_results_are_refused_naming_the_entry(tmp_path):
    from ckptkit.errors import ConfigError

    write_record(tmp_path, CONVERSION)
    with pytest.raises(ConfigError, match=r"'results\[\]\.metrics\[0\]' is \{'type': 'accuracy', 'value': 'high'\}"):
        add_result(tmp_path, make_result("downstream", [{"type": "accuracy", "value": "high"}], command="c", date="d"))
    assert "results" not in json.loads((tmp_path / "ckptkit.json").read_text())


def test_distilled_student_remembers_the_teacher_id_given_at_init(tmp_path):
    init, distilled = tmp_path / "init", tmp_path / "distilled"
    init.mkdir(), distilled.mkdir()
    write_record(init, {**CONVERSION, "kind": "student",
                        "student": {"teacher": "/gone/teacher", "layers": [0], "teacher_repo_id": "my-org/kobert"}})
    # distill train's record: source is the init folder, student rebuilt from student.json (no teacher_repo_id)
    write_record(distilled, {**CONVERSION, "kind": "distilled", "source": {**CONVERSION["source"], "path": str(init)},
                             "student": {"teacher": "/gone/teacher", "layers": [0], "training": {"steps": 3}}})
    text = render_model_card(distilled)
    assert "base_model: my-org/kobert" in text and "base_model_relation" not in text
    assert "/gone" not in text  # the teacher's local path is shown as its own name


def test_card_command_relation_and_paths_options(tmp_path):
    from click.testing import CliRunner

    from ckptkit.cli.hub_cmd import card_command

    write_record(tmp_path, {**CONVERSION, "source": {**CONVERSION["source"], "path": "/home/someone/m.ckpt"}})
    result = CliRunner().invoke(card_command, [str(tmp_path), "--base-model", "google/bert-tiny",
                                               "--base-model-relation", "quantized", "--card-paths", "full"])
    assert result.exit_code == 0, result.output
    assert result.output == f"wrote {tmp_path / 'README.md'}\n"
    meta = _metadata(tmp_path)
    assert (meta["base_model"], meta["base_model_relation"]) == ("google/bert-tiny", "quantized")
    assert "/home/someone/m.ckpt" in (tmp_path / "README.md").read_text()
    CliRunner().invoke(card_command, [str(tmp_path), "--card-paths", "public"])
    assert "/home/someone" not in (tmp_path / "README.md").read_text()
    bad = CliRunner().invoke(card_command, [str(tmp_path), "--base-model-relation", "distilled"])
    assert bad.exit_code == 2 and "'distilled' is not one of 'adapter', 'merge', 'quantized', 'finetune'" in bad.output
