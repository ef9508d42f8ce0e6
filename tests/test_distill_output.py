"""What `distill train` prints: one line per logging step, no CPU-only warnings, no bars under --quiet."""

from __future__ import annotations

import re
import warnings

import pytest

from ckptkit.cli import main
from ckptkit.distill.train import train_student
from distill_helpers import TRAIN_ARGS, distill_world  # noqa: F401  (fixture)

pytestmark = pytest.mark.xdist_group("distill")


def test_one_line_per_logging_step(distill_world, tmp_path, capsys):
    """The Trainer's ProgressCallback wrote each log as a dict on stdout besides our line on stderr: twice."""
    main(["distill", "train", "--student", str(distill_world["student"]), "--train-file", str(distill_world["train"]),
          "--validation-file", str(distill_world["held_out"]), "--output-dir", str(tmp_path / "run"),
          "--max-seq-length", "32", "--max-steps", "6", "--per-device-train-batch-size", "8", "--logging-steps", "2",
          "--eval-steps", "6", "--save-steps", "100", "--use-cpu", "--seed", "0"])
    captured = capsys.readouterr()
    lines = (captured.out + captured.err).splitlines()
    train_lines = [line for line in lines if "loss_ce=" in line and "eval_" not in line]
    steps = [re.fullmatch(r"step (\d+): loss=.*", line) for line in train_lines]
    assert all(steps) and [m.group(1) for m in steps] == ["2", "4", "6"], train_lines
    eval_lines = [line for line in lines if "eval_loss_ce=" in line]
    assert len(eval_lines) == 1 and "step 6: eval_loss=" in eval_lines[0]  # also: no second evaluation at the end
    assert "{'loss'" not in captured.out and "train_runtime" not in captured.out + captured.err


def test_no_pin_memory_warning_on_cpu(distill_world, tmp_path):
    """Without --use-cpu on a machine without accelerator, pin_memory made torch warn on every epoch."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train_student(student=distill_world["student"], train_files=[distill_world["train"]], output_dir=tmp_path / "o",
                      max_seq_length=32, quiet=True,
                      training_args={**{k: v for k, v in TRAIN_ARGS.items() if k != "use_cpu"}, "max_steps": 2})
    messages = [str(w.message) for w in caught]
    assert not [m for m in messages if "pin_memory" in m], messages


def test_no_bars_in_a_pipe_and_none_under_quiet(distill_world, tmp_path, capsys):
    """Training and evaluation bars belong on a terminal: in a pipe they were interleaved with the lines."""
    args = ["distill", "train", "--student", str(distill_world["student"]), "--train-file", str(distill_world["train"]),
            "--validation-file", str(distill_world["held_out"]), "--max-seq-length", "32", "--max-steps", "4",
            "--logging-steps", "2", "--eval-steps", "2", "--use-cpu", "--seed", "0"]
    main([*args, "--output-dir", str(tmp_path / "piped")])
    err = capsys.readouterr().err
    assert "step 4: eval_loss=" in err and "it/s]" not in err and "\r" not in err
    main([*args, "--output-dir", str(tmp_path / "quiet"), "-q", "--json"])
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out.lstrip().startswith("{")
