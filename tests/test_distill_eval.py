"""`ckptkit distill eval`: table and JSON, sane values (a teacher agrees with itself), embedding mode."""

from __future__ import annotations

import json

import pytest

from ckptkit.cli import main
from distill_helpers import distill_world, make_student, train_tiny_teacher  # noqa: F401  (fixture)

pytestmark = pytest.mark.xdist_group("distill")


def evaluate(*args, capsys):
    main(["distill", "eval", "--max-seq-length", "32", "--max-batches", "4", "--latency-runs", "3", "-q", *args])
    return capsys.readouterr().out


def test_json_has_every_metric_and_teacher_agrees_with_itself(distill_world, capsys):
    world = distill_world
    result = json.loads(evaluate("--teacher", str(world["teacher"]), "--student", str(world["teacher"]),
                                 "--eval-file", str(world["held_out"]), "--json", capsys=capsys))
    assert result["objective"] == "mlm"
    assert result["agreement"]["top1"] == 1.0 and result["agreement"]["kl"] == pytest.approx(0, abs=1e-6)
    assert result["agreement"]["hidden_cosine"] == pytest.approx(1, abs=1e-5)
    assert result["teacher"]["mlm_accuracy"] == result["student"]["mlm_accuracy"] > 0.2
    for side in ("teacher", "student"):
        assert {"perplexity", "parameters", "file_bytes", "median_ms", "p90_ms"} <= set(result[side])


def test_table_for_a_student_uses_student_json_teacher(distill_world, capsys):
    text = evaluate("--student", str(distill_world["student"]), "--eval-file", str(distill_world["held_out"]),
                    capsys=capsys)
    for label in ("MLM accuracy", "perplexity", "parameters", "weight files", "latency", "top-1 agreement",
                  "KL(teacher||student)", "sentence-embedding cosine", "speedup"):
        assert label in text, label


def test_embedding_models_get_embedding_cosine(distill_world, tmp_path, capsys):
    encoder = train_tiny_teacher(tmp_path / "enc", distill_world["train"], steps=2, layers=2, with_head=False)
    student = make_student(encoder, tmp_path / "enc_student", [0], head=False)
    result = json.loads(evaluate("--student", str(student), "--eval-file", str(distill_world["held_out"]), "--json",
                                 capsys=capsys))
    assert result["objective"] == "hidden" and "top1" not in result["agreement"]
    assert -1 <= result["agreement"]["embedding_cosine"] <= 1 and result["speedup"] > 0
