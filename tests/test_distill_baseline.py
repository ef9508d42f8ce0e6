"""Honest baselines: no teacher forward without teacher terms; `--baseline mlm` trains the same student without it."""

from __future__ import annotations

import math

import pytest

import ckptkit.distill.models as models_mod
from ckptkit.distill.train import resolve_weights, train_student
from distill_helpers import TRAIN_ARGS, distill_world  # noqa: F401  (fixture)

pytestmark = pytest.mark.xdist_group("distill")


def _count_teacher_forwards(monkeypatch) -> list[int]:
    calls = [0]
    real = models_mod.load_model

    def counting(path, *, role, **kw):
        model = real(path, role=role, **kw)
        if role == "teacher":
            model.register_forward_pre_hook(lambda *a: calls.__setitem__(0, calls[0] + 1))
        return model

    monkeypatch.setattr(models_mod, "load_model", counting)
    return calls


@pytest.mark.parametrize("weights, forwards", [({"ce": 0, "cos": 0, "mlm": 1}, 0), ({}, 4)])
def test_teacher_runs_only_when_a_teacher_term_is_on(distill_world, tmp_path, monkeypatch, weights, forwards):
    calls = _count_teacher_forwards(monkeypatch)
    result = train_student(student=distill_world["student"], train_files=[distill_world["train"]],
                           output_dir=tmp_path / "o", max_seq_length=32,
                           weights=resolve_weights("mlm", weights), quiet=True,
                           training_args={**TRAIN_ARGS, "max_steps": 4, "logging_steps": 2})
    assert result.steps == 4
    assert calls[0] == forwards  # one per training step when the teacher is compared with


def test_baseline_mlm_trains_the_same_student_without_the_teacher(distill_world, tmp_path, capsys):
    import json

    from ckptkit.cli import main
    from ckptkit.distill.evaluate import evaluate_student

    out = tmp_path / "kd"
    args = ["distill", "train", "--student", str(distill_world["student"]), "--train-file", str(distill_world["train"]),
            "--validation-file", str(distill_world["held_out"]), "--max-seq-length", "32", "--max-steps", "20",
            "--per-device-train-batch-size", "16", "--learning-rate", "2e-3", "--logging-steps", "5",
            "--save-steps", "100", "--use-cpu", "--seed", "42", "--baseline", "mlm", "-q"]
    main([*args, "--output-dir", str(out), "--json"])
    report = json.loads(capsys.readouterr().out)
    base = out / "baseline-mlm"
    assert report["baseline"]["output_dir"] == str(base) and report["baseline"]["steps"] == report["steps"] == 20
    base_log = [json.loads(line) for line in (base / "train_log.jsonl").read_text().splitlines()]
    assert all("loss_ce" not in row and "loss_cos" not in row for row in base_log)  # no teacher term at all
    assert [row["step"] for row in base_log if "loss_mlm" in row and "loss" in row] == [5, 10, 15, 20]
    assert report["baseline"]["losses"]["mlm"]["weight"] == report["losses"]["mlm"]["weight"] == 2.0

    # the held-out scores agree with `distill eval` of each folder (same seed, fixed masking, same blocks)
    held = report["held_out"]
    for name, folder in (("distilled", out), ("baseline_mlm", base)):
        ref = evaluate_student(teacher=distill_world["teacher"], student=folder, eval_files=[distill_world["held_out"]],
                               max_seq_length=32, latency_runs=1, seed=42, quiet=True)
        assert held[name]["mlm_loss"] == pytest.approx(math.log(ref["student"]["perplexity"]), rel=1e-3)
        assert held[name]["top1_agreement"] == pytest.approx(ref["agreement"]["top1"], abs=1e-4)
        assert held[name]["kl"] == pytest.approx(ref["agreement"]["kl"], rel=1e-3)
    assert held["distilled"]["kl"] < held["baseline_mlm"]["kl"]  # the teacher's soft targets were learnt
    info = json.loads((out / "student.json").read_text())["training"]
    assert info["held_out"] == held and info["baseline"]["kind"] == "mlm"
    assert (out / "loss_curves.png").stat().st_size > 0

    main([*args[:-1], "--output-dir", str(tmp_path / "text")])  # the text report shows both side by side
    text = capsys.readouterr().out
    assert "distilled (KD)" in text and "baseline (mlm)" in text and "held-out MLM loss" in text


@pytest.mark.parametrize("extra, message", [([], "--baseline needs --validation-file"),
                                            (["--validation-file", "V", "--objective", "hidden"], "--objective mlm")])
def test_baseline_refusals_are_one_line(distill_world, tmp_path, capsys, extra, message):
    from ckptkit.cli import main

    extra = [str(distill_world["held_out"]) if e == "V" else e for e in extra]
    with pytest.raises(SystemExit) as refused:
        main(["distill", "train", "--student", str(distill_world["student"]), "--train-file",
              str(distill_world["train"]), "--output-dir", str(tmp_path / "x"), "--baseline", "mlm", "-q", *extra])
    err = capsys.readouterr().err.strip()
    assert refused.value.code == 2 and err.count("\n") == 0 and message in err and not (tmp_path / "x").exists()
