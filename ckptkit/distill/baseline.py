"""``distill train --baseline mlm``: the same student trained without the teacher, for an honest comparison.

The baseline run is the distillation run with every teacher term off (no teacher forward at all):
the same student folder, training files, seed, masking, schedule and steps, and the MLM loss with
the distillation run's weight. It is written to ``OUTPUT_DIR/baseline-mlm`` (a hub folder of its
own); both students are then scored on the held-out files (:mod:`ckptkit.distill.held_out`) and
the distillation report holds both loss curves and both scores.

Example:
    >>> from ckptkit.distill.train_options import TrainOptions
    >>> opts = TrainOptions(student="s", train_files=["t.txt"], validation_files=["v.txt"], output_dir="o",
    ...                     baseline="mlm")
    >>> b = baseline_options(opts)
    >>> b.weights.ce, b.weights.mlm, b.weights.cos, str(b.output_dir)
    (0.0, 2.0, 0.0, 'o/baseline-mlm')
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Callable

from ckptkit.distill.losses import LossWeights

__all__ = ["BASELINES", "baseline_dir", "baseline_options", "run_baseline", "add_comparison", "read_log"]

# --baseline kind -> what it is
BASELINES: dict[str, str] = {"mlm": "the same student, MLM loss only, no teacher"}


def baseline_dir(output_dir, kind: str) -> Path:
    """Where the baseline of ``kind`` is written: ``OUTPUT_DIR/baseline-KIND``."""
    return Path(output_dir) / f"baseline-{kind}"


def baseline_options(opts):
    """The distillation options with every teacher term off (MLM at the run's weight, else 1)."""
    weights = LossWeights(ce=0.0, mlm=opts.weights.mlm or 1.0, cos=0.0, mse=0.0, attn=0.0, pooled_cos=0.0)
    names = {f.name for f in dataclasses.fields(opts)}
    off = {k: v for k, v in {"teacher_cache": None, "cache_teacher": False}.items() if k in names}
    out = baseline_dir(opts.output_dir, opts.baseline)
    return dataclasses.replace(opts, weights=weights, baseline=None, output_dir=out, push_to_hub=None,
                               resume=opts.resume and out.is_dir(), command=(opts.command or "") + "  # baseline",
                               **off)


def run_baseline(opts, log: Callable[[str], None] | None):
    """Train the baseline of ``opts`` (a :class:`TrainResult` of its own folder)."""
    from ckptkit.distill.train import train_student

    prefixed = (lambda line: log(f"baseline {opts.baseline}: {line}")) if log is not None else None
    return train_student(baseline_options(opts), log=prefixed)


def read_log(folder) -> list[dict[str, Any]]:
    """The rows of ``FOLDER/train_log.jsonl`` (empty when there is none)."""
    path = Path(folder) / "train_log.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def add_comparison(result, baseline, *, opts, teacher, student, tokenizer, seed: int, pooling=None) -> None:
    """Put the baseline's run and both students' held-out scores into ``result.summary``.

    ``pooling``: the teacher's sentence-embedding pooling (:mod:`ckptkit.distill.pooling`; None: mean).
    """
    from ckptkit.distill.held_out import held_out_scores
    from ckptkit.distill.models import load_model

    device = next(student.parameters()).device
    base_model = load_model(baseline.output_dir, objective="mlm", role="baseline").to(device)
    scores = held_out_scores(teacher, {"distilled": student, f"baseline_{opts.baseline}": base_model},
                             tokenizer=tokenizer, eval_files=opts.validation_files,
                             max_seq_length=opts.max_seq_length, seed=seed, mlm_probability=opts.mlm_probability,
                             text_column=opts.text_column, pooling=pooling)
    result.summary["baseline"] = {
        "kind": opts.baseline, "what": BASELINES[opts.baseline], "output_dir": baseline.output_dir,
        "weights": {k: v for k, v in baseline_options(opts).weights.as_dict().items() if v > 0},
        "steps": baseline.steps, "train_runtime_s": baseline.summary.get("train_runtime_s"),
        "tokens_per_second": baseline.summary.get("tokens_per_second"), "losses": baseline.losses,
        "eval": {k: v for k, v in baseline.eval.items() if k.startswith("eval_loss")},
    }
    result.summary["held_out"] = scores
