"""A student's publishing path end to end: `distill train --teacher-repo-id --push-to-hub` and `distill eval`.

The teacher is a tiny converted BERT (tests/support/cards.py); training runs one step. What reaches the
fake Hub must name the teacher as base_model; `distill eval` must record what it measured in the
student's ckptkit.json, say so, and the card must show it.
"""

from __future__ import annotations

import json

import pytest

from support.cards import ckptkit, tiny_bert

pytestmark = [pytest.mark.xdist_group("distill"),
              pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")]
CORPUS = "paris is the capital of france .\nthe capital of france is paris .\n" * 20


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    work = tmp_path_factory.mktemp("publish-distill")
    (work / "tf").mkdir()
    tiny_bert(work / "tf")
    (work / "corpus.txt").write_text(CORPUS)
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(work)
        ckptkit("convert", "tf", "teacher", "--quiet")
        ckptkit("distill", "init", "teacher", "student", "--layers", "1", "--quiet")
    return work


def test_train_with_teacher_repo_id_pushes_a_card_naming_the_teacher(world, hub, monkeypatch, tmp_path, capsys):
    from huggingface_hub import ModelCard

    monkeypatch.chdir(world)
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    ckptkit("distill", "train", "--teacher", "teacher", "--student", "student", "--train-file", "corpus.txt",
            "--output-dir", str(tmp_path / "distil"), "--max-seq-length", "16", "--max-steps", "1",
            "--per-device-train-batch-size", "4", "--use-cpu", "--save-steps", "10", "-q",
            "--teacher-repo-id", "my-org/tiny-bert", "--push-to-hub", "me/distil")
    received = hub.files("me/distil")
    meta = ModelCard(received["README.md"].decode()).data.to_dict()
    assert meta["base_model"] == "my-org/tiny-bert" and "base_model_relation" not in meta
    assert json.loads(received["ckptkit.json"])["student"]["teacher_repo_id"] == "my-org/tiny-bert"
    leaked = [name for name, data in received.items() if str(tmp_path).encode() in data or str(world).encode() in data]
    assert leaked == [], leaked  # no file names the local folders (student.json, configs, tokenizer files included)
    assert "training_args.bin" not in received  # a pickle of local paths stays local
    assert (tmp_path / "distil" / "training_args.bin").is_file()


def test_distill_eval_records_what_it_measured(world, monkeypatch, capsys):
    monkeypatch.chdir(world)
    ckptkit("distill", "eval", "--teacher", "teacher", "--student", "student", "--eval-file", "corpus.txt",
            "--max-seq-length", "16", "--batch-size", "4", "--max-batches", "2", "--latency-runs", "1")
    printed = capsys.readouterr()
    assert "top-1 agreement" in printed.out
    assert printed.err.strip().endswith("recorded in student/ckptkit.json (the model card shows it)")
    record = json.loads((world / "student" / "ckptkit.json").read_text())
    entry = record["results"][-1]
    assert entry["kind"] == "distill-eval" and entry["command"].startswith("ckptkit distill eval --teacher teacher")
    own = {m["type"] for m in entry["metrics"] if "model" not in m}
    assert {"accuracy", "top1_agreement", "latency_ms", "parameters", "size_bytes", "speedup"} <= own
    card = (world / "student" / "README.md").read_text()
    assert "### Distillation evaluation (`ckptkit distill eval`)" in card and "| top-1 agreement with the teacher |" in card
    assert "model-index" in card


def test_distill_eval_task_records_downstream_accuracy(world, monkeypatch, capsys):
    from huggingface_hub import ModelCard

    monkeypatch.chdir(world)
    rows = "".join(f"{i}\tparis is the capital of france {'.' if i % 2 else ''}\t{i % 2}\n" for i in range(40))
    (world / "task.tsv").write_text("id\tdocument\tlabel\n" + rows)
    ckptkit("distill", "eval", "--teacher", "teacher", "--student", "student", "--task", "task.tsv",
            "--task-epochs", "1", "--task-batch-size", "8", "--max-seq-length", "16", "-q")
    record = json.loads((world / "student" / "ckptkit.json").read_text())
    entry = record["results"][-1]
    assert entry["kind"] == "downstream" and entry["dataset"]["name"] == "task.tsv"
    assert [m.get("model") for m in entry["metrics"]] == [None, "teacher", "majority class"]
    card = (world / "student" / "README.md").read_text()
    own = [r for r in ModelCard(card).data.eval_results if r.task_type == "text-classification"]
    assert [r.metric_value for r in own] == [entry["metrics"][0]["value"]]  # the student's accuracy only
    assert "| accuracy (held out) |" in card and "| metric | this model | teacher | majority class |" in card
