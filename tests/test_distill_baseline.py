"""Honest baselines: no teacher forward without teacher terms; `--baseline mlm` trains the same student without it."""

from __future__ import annotations

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
