"""`distill eval --task`: teacher and student fine-tuned on a labelled set, accuracy side by side; fair latency."""

from __future__ import annotations

import json
import random
import time

import pytest

from ckptkit.cli import main
from ckptkit.distill.evaluate import compare_latency, latency
from ckptkit.distill.task_data import read_task
from distill_helpers import distill_world, sentence  # noqa: F401  (fixture)

pytestmark = pytest.mark.xdist_group("distill")
FLYING_OR_SWIMMING = ("bird", "fish", "dog", "새", "물고기", "강아지")


def _label(text: str) -> int:
    return int(text.split()[2 if text.startswith("the") else 0] in FLYING_OR_SWIMMING)


@pytest.fixture(scope="module")
def nsmc_like(tmp_path_factory):
    """NSMC's layout (id, document, label; header; a quote in a text; an empty document): does the subject fly
    or swim? A label the toy grammar's subject decides."""
    rng = random.Random(5)
    rows = ["id\tdocument\tlabel"]
    for i in range(600):
        text = sentence(rng)
        quote = ' "' if i % 50 == 0 else ""
        rows.append(f"{1000 + i}\t{text}{quote}\t{_label(text)}")
    rows.append("9999\t\t1")  # NSMC has rows without a document
    path = tmp_path_factory.mktemp("task") / "ratings_train.txt"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_task_accuracy_of_teacher_and_student(distill_world, nsmc_like, capsys):
    args = ["distill", "eval", "--teacher", str(distill_world["teacher"]), "--student", str(distill_world["student"]),
            "--task", str(nsmc_like), "--task-epochs", "2", "--task-learning-rate", "1e-3", "--task-batch-size", "16",
            "--task-test-fraction", "0.2", "-q"]
    main([*args, "--json"])
    result = json.loads(capsys.readouterr().out)["task"]
    assert result["columns"] == {"text": "document", "label": "label"} and result["labels"] == ["0", "1"]
    assert result["skipped_rows"] == 1 and result["train_examples"] == 480 and result["test_examples"] == 120
    assert result["teacher"]["steps"] == result["student"]["steps"] == 60
    for role in ("teacher", "student"):  # clearly above chance after 60 steps
        assert result[role]["accuracy"] > max(0.8, result["chance"] + 0.15), result
    main(args)
    text = capsys.readouterr().out
    assert "accuracy (held out)" in text and "teacher" in text and "majority class (chance)" in text


def test_columns_detected_or_named(tmp_path):
    csv_file = tmp_path / "t.csv"
    csv_file.write_text('pos,"a good, long film"\nneg,bad\npos,"fine, really"\n', encoding="utf-8")
    task = read_task(csv_file)  # no header: the longest column is the text, the other the label
    assert task.texts == ["a good, long film", "bad", "fine, really"] and task.label_names == ["neg", "pos"]
    named = read_task(csv_file, text_column="1", label_column="0")
    assert named.labels == [1, 0, 1] and named.columns == ("1", "0")


def test_task_refusals_are_one_line(distill_world, tmp_path, capsys):
    one_label = tmp_path / "one.tsv"
    one_label.write_text("text\tlabel\na\t1\nb\t1\n", encoding="utf-8")
    for extra, message in ((["--task", str(one_label)], "1 distinct labels"), ([], "nothing to evaluate on"),
                           (["--task", str(one_label), "--text-column", "nope"], "no column 'nope'")):
        with pytest.raises(SystemExit) as refused:
            main(["distill", "eval", "--teacher", str(distill_world["teacher"]), "--student",
                  str(distill_world["student"]), "-q", *extra])
        err = capsys.readouterr().err.strip()
        assert refused.value.code == 2 and err.count("\n") == 0 and message in err, err


class _ColdStart:
    """A 'model' whose first calls are slow (allocator, thread pool, caches), then fast."""

    def __init__(self, cold_calls: int, cold_s: float = 0.02, warm_s: float = 0.001) -> None:
        self.calls, self.cold_calls, self.cold_s, self.warm_s = 0, cold_calls, cold_s, warm_s

    def __call__(self, **batch):
        self.calls += 1
        time.sleep(self.cold_s if self.calls <= self.cold_calls else self.warm_s)


def test_latency_is_measured_after_warm_up():
    """Two warm-up passes left 6 cold passes among 10 timed ones: the median was the cold time."""
    timed = latency(_ColdStart(cold_calls=8), {}, runs=10)
    assert timed["median_ms"] < 8 and timed["warmup_runs"] >= 8
    both = compare_latency({"teacher": _ColdStart(8, warm_s=0.004), "student": _ColdStart(8, warm_s=0.002)}, {},
                           runs=7)
    assert 1.3 < both["teacher"]["median_ms"] / both["student"]["median_ms"] < 3.0
