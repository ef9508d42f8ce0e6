"""`ckptkit distill train` end to end: outputs, exact resume, teacher cache, hidden objective, errors."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

from ckptkit.cli import main
from distill_helpers import distill_world, make_student, train_tiny_teacher  # noqa: F401  (fixture)

pytestmark = pytest.mark.xdist_group("distill")


def cli(world, out, *extra, steps=10):
    main(["distill", "train", "--teacher", str(world["teacher"]), "--student", str(world["student"]),
          "--train-file", str(world["train"]), "--output-dir", str(out), "--max-seq-length", "32",
          "--max-steps", str(steps), "--per-device-train-batch-size", "8", "--learning-rate", "1e-3",
          "--logging-steps", "5", "--save-steps", "5", "--use-cpu", "--seed", "0", "-q", *extra])


def test_outputs_and_exact_resume(distill_world, tmp_path, capsys):
    out = tmp_path / "run"
    cli(distill_world, out, "--json")
    report = json.loads(capsys.readouterr().out)
    assert report["steps"] == 10 and set(report["losses"]) == {"ce", "mlm", "cos"}
    for name in ("config.json", "model.safetensors", "tokenizer.json", "student.json", "README.md", "ckptkit.json",
                 "loss_curves.png", "train_log.jsonl", "distill_report.json", "checkpoint-5", "checkpoint-10"):
        assert (out / name).exists(), name
    info = json.loads((out / "student.json").read_text())
    assert info["layers"] == [0] and info["training"]["losses"]["ce"]["weight"] == 5.0
    assert "## Distillation" in (out / "README.md").read_text()
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    step_rows = [row for row in log if "loss" in row]
    assert {"loss_ce", "loss_mlm", "loss_cos", "learning_rate", "tokens_per_second"} <= set(step_rows[0])
    from transformers import AutoModelForMaskedLM
    AutoModelForMaskedLM.from_pretrained(out)  # a plain hub folder
    finished = load_file(out / "model.safetensors")

    # interrupted after step 5: resume must land on the same weights (optimizer, schedule, RNG, data position)
    shutil.rmtree(out / "checkpoint-10")
    (out / "model.safetensors").unlink()
    with pytest.raises(SystemExit) as refused:
        cli(distill_world, out)
    assert refused.value.code == 2 and "--resume" in capsys.readouterr().err
    cli(distill_world, out, "--resume")
    resumed = load_file(out / "model.safetensors")
    for name, tensor in finished.items():
        torch.testing.assert_close(resumed[name], tensor, rtol=1e-5, atol=1e-6, msg=name)


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_on_cpu_with_tensorboard(distill_world, tmp_path, capsys, precision):
    """--bf16/--fp16 run the student under autocast and the teacher in that dtype; the first step's KD loss
    matches a float32 run's to the dtype's precision, and --report-to tensorboard writes the same scalars."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cli(distill_world, tmp_path / "fp32", "--json", "--logging-steps", "1", steps=3)
    fp32 = json.loads(capsys.readouterr().out)
    out = tmp_path / precision
    cli(distill_world, out, "--json", "--logging-steps", "1", f"--{precision}", "--report-to", "tensorboard", steps=3)
    report = json.loads(capsys.readouterr().out)
    dtype = {"bf16": "bfloat16", "fp16": "float16"}[precision]
    assert report["precision"] == dtype and report["teacher_dtype"] == dtype and fp32["precision"] == "float32"
    assert report["losses"]["ce"]["first"] == pytest.approx(fp32["losses"]["ce"]["first"], rel=0.05)
    assert report["losses"]["ce"]["first"] != fp32["losses"]["ce"]["first"]  # it really ran in low precision
    weights = load_file(out / "model.safetensors")
    assert {t.dtype for t in weights.values()} == {torch.float32}  # float32 master weights are saved
    events = EventAccumulator(str(next((out / "runs").iterdir()))).Reload()
    logged = [json.loads(line)["loss_ce"] for line in (out / "train_log.jsonl").read_text().splitlines()
              if "loss_ce" in line]
    assert [e.value for e in events.Scalars("train/loss_ce")] == pytest.approx(logged, rel=1e-6)


def test_report_to_without_its_package_is_one_line(distill_world, tmp_path, capsys, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name.startswith("tensorboard")
                        else real(name, *a))
    with pytest.raises(SystemExit) as exited:
        cli(distill_world, tmp_path / "tb", "--report-to", "tensorboard")
    err = capsys.readouterr().err
    assert exited.value.code == 2 and "needs the tensorboard package" in err and "ckptkit[tensorboard]" in err
    assert "Traceback" not in err and not (tmp_path / "tb").exists()


def test_teacher_cache_is_built_once_and_reused(distill_world, tmp_path, capsys):
    out = tmp_path / "cached"
    cli(distill_world, out, "--cache-teacher", "--alpha-mse", "1", "--json", steps=12)
    report = json.loads(capsys.readouterr().out)
    cache = report["teacher_cache"]
    assert cache["built_now"] and cache["teacher_forward_avoided_s"] > 0 and "saved_s" in cache
    assert cache["bytes_per_token"] > 0
    assert report["losses"]["ce"]["last"] < report["losses"]["ce"]["first"]
    assert sorted(p.name for p in (out / "teacher-cache").iterdir()) == ["cache.json", "pieces"]
    meta = json.loads((out / "teacher-cache" / "cache.json").read_text())
    assert meta["complete"] and meta["top_k"] == 64 and 3 in meta["hidden"]   # the last layer (cos)
    # a second run over the same cache folder reads it without building
    cli(distill_world, tmp_path / "again", "--teacher-cache", str(out / "teacher-cache"), "--alpha-mse", "1",
        "--json", steps=4)
    assert json.loads(capsys.readouterr().out)["teacher_cache"]["built_now"] is False


def test_hidden_objective_trains_an_embedding_student(distill_world, tmp_path, capsys):
    root = tmp_path
    encoder = root / "encoder"
    train_tiny_teacher(encoder, distill_world["train"], steps=5, layers=2, with_head=False)
    student = make_student(encoder, root / "encoder_student", [1], head=False)
    with pytest.raises(SystemExit) as refused:  # no MLM head: the mlm objective is refused in one line
        main(["distill", "train", "--teacher", str(encoder), "--student", str(student), "--train-file",
              str(distill_world["train"]), "--output-dir", str(root / "x"), "-q", "--max-steps", "1"])
    assert refused.value.code == 2 and "--objective hidden" in capsys.readouterr().err
    main(["distill", "train", "--teacher", str(encoder), "--student", str(student), "--objective", "hidden",
          "--train-file", str(distill_world["train"]), "--output-dir", str(root / "out"), "--max-seq-length", "32",
          "--max-steps", "30", "--per-device-train-batch-size", "8", "--learning-rate", "2e-3", "--logging-steps",
          "5", "--use-cpu", "-q", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert set(report["losses"]) == {"cos", "mse", "pooled_cos"}
    assert report["losses"]["pooled_cos"]["last"] < report["losses"]["pooled_cos"]["first"]


def test_vocabulary_mismatch_is_one_line(distill_world, tmp_path, capsys):
    from transformers import BertForMaskedLM
    from distill_helpers import tiny_config
    other = tmp_path / "other"
    BertForMaskedLM(tiny_config(40, layers=1)).save_pretrained(other)
    with pytest.raises(SystemExit) as refused:
        main(["distill", "train", "--teacher", str(distill_world["teacher"]), "--student", str(other),
              "--train-file", str(distill_world["train"]), "--output-dir", str(tmp_path / "o"), "-q"])
    err = capsys.readouterr().err.strip()
    assert refused.value.code == 2 and err.count("\n") == 0 and "vocabulary" in err


def test_push_to_hub_uploads_the_student_but_not_training_state(distill_world, tmp_path, hub, monkeypatch, capsys):
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    cli(distill_world, tmp_path / "pushed", "--push-to-hub", "me/student", "--save-steps", "1", steps=2)
    assert (tmp_path / "pushed" / "checkpoint-2").is_dir()  # resume state exists locally ...
    received = set(hub.files("me/student"))
    assert {"model.safetensors", "config.json", "student.json", "ckptkit.json", "README.md"} <= received
    assert not any(name.startswith(("checkpoint-", "teacher-cache/", "ranks/")) for name in received)  # ... not here
