"""Distillation on a tiny teacher trained in the test: KD must beat MLM-only on agreement."""

from __future__ import annotations

import pytest

from ckptkit.distill.evaluate import evaluate_student
from ckptkit.distill.train import resolve_weights, train_student
from distill_helpers import TRAIN_ARGS, distill_world  # noqa: F401  (fixture)

pytestmark = pytest.mark.xdist_group("distill")


def run(world, out, *, steps, weights=None, **kw):
    return train_student(teacher=world["teacher"], student=world["student"], train_files=[world["train"]],
                         output_dir=out, max_seq_length=32, weights=weights, quiet=True,
                         training_args={**TRAIN_ARGS, "max_steps": steps}, **kw)


def test_distillation_lowers_kd_loss_raises_agreement_and_beats_mlm_only(distill_world, tmp_path):
    steps = 100
    kd = run(distill_world, tmp_path / "kd", steps=steps)
    mlm_only = run(distill_world, tmp_path / "mlm", steps=steps, weights=resolve_weights("mlm", {"ce": 0, "cos": 0,
                                                                                               "mlm": 1}))
    assert kd.losses["ce"]["last"] < kd.losses["ce"]["first"]
    assert kd.top1_agreement["last"] > kd.top1_agreement["first"]
    metrics = {name: evaluate_student(teacher=distill_world["teacher"], student=tmp_path / name,
                                      eval_files=[distill_world["held_out"]], max_seq_length=32, latency_runs=2,
                                      quiet=True)
               for name in ("kd", "mlm")}
    before = evaluate_student(teacher=distill_world["teacher"], student=distill_world["student"],
                              eval_files=[distill_world["held_out"]], max_seq_length=32, latency_runs=2, quiet=True)
    print({k: v["agreement"] for k, v in metrics.items()}, before["agreement"])
    assert metrics["kd"]["agreement"]["top1"] > before["agreement"]["top1"]
    assert metrics["kd"]["agreement"]["top1"] > metrics["mlm"]["agreement"]["top1"]
    assert metrics["kd"]["agreement"]["kl"] < metrics["mlm"]["agreement"]["kl"]
