"""`distill init --mlm-head`: the teacher's MLM head when it has one, a fresh BERT-initialised one otherwise."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file

from ckptkit.cli import main
from distill_helpers import distill_world  # noqa: F401  (fixture)

pytestmark = pytest.mark.xdist_group("distill")


@pytest.fixture(scope="module")
def headless_teacher(distill_world, tmp_path_factory):
    """The tiny teacher without its MLM head (a BertModel, as sentence-transformers models are)."""
    from transformers import AutoTokenizer, BertForMaskedLM

    folder = tmp_path_factory.mktemp("headless") / "teacher"
    BertForMaskedLM.from_pretrained(distill_world["teacher"]).bert.save_pretrained(folder)
    AutoTokenizer.from_pretrained(distill_world["teacher"]).save_pretrained(folder)
    return folder


def _gelu(x):
    from scipy.special import erf

    return 0.5 * x * (1.0 + erf(x / np.sqrt(2.0)))


def test_fresh_head_for_a_teacher_without_one(headless_teacher, tmp_path, capsys):
    from transformers import AutoModelForMaskedLM

    out = tmp_path / "student"
    main(["distill", "init", str(headless_teacher), str(out), "--layers", "1", "--mlm-head", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert report["model_class"] == "BertForMaskedLM"
    assert json.loads((out / "student.json").read_text())["mlm_head"].startswith("fresh")
    assert json.loads((out / "config.json").read_text())["architectures"] == ["BertForMaskedLM"]
    model, info = AutoModelForMaskedLM.from_pretrained(out, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]  # nothing left to transformers' random init

    saved, teacher = load_file(out / "model.safetensors"), load_file(headless_teacher / "model.safetensors")
    assert not any(name.startswith("bert.pooler") for name in saved)  # BertForMaskedLM has no pooler
    np.testing.assert_array_equal(saved["bert.encoder.layer.0.output.dense.weight"],
                                  teacher["encoder.layer.1.output.dense.weight"])
    dense = saved["cls.predictions.transform.dense.weight"]
    assert abs(dense.std() - 0.02) < 0.003 and abs(dense.mean()) < 0.003  # BERT's N(0, initializer_range)
    assert (saved["cls.predictions.transform.LayerNorm.weight"] == 1).all()
    for name in ("cls.predictions.transform.LayerNorm.bias", "cls.predictions.transform.dense.bias",
                 "cls.predictions.bias"):
        assert (saved[name] == 0).all(), name

    # the logits are the head applied to the last hidden state, decoder = the word embeddings (tied), in NumPy
    ids = torch.tensor([[2, 7, 8, 9, 3]])
    with torch.no_grad():
        out_t = model(input_ids=ids, output_hidden_states=True)
    h = out_t.hidden_states[-1][0].numpy().astype(np.float64)
    x = _gelu(h @ dense.T.astype(np.float64) + saved["cls.predictions.transform.dense.bias"])
    x = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + model.config.layer_norm_eps)
    logits = x @ saved["bert.embeddings.word_embeddings.weight"].T.astype(np.float64) + saved["cls.predictions.bias"]
    np.testing.assert_allclose(out_t.logits[0].numpy(), logits, atol=1e-4)


def test_head_copied_when_the_teacher_has_one(distill_world, headless_teacher, tmp_path, capsys):
    out = tmp_path / "copied"
    main(["distill", "init", str(distill_world["teacher"]), str(out), "--layers", "0", "--mlm-head", "-q"])
    assert json.loads((out / "student.json").read_text())["mlm_head"] == "copied from the teacher"
    saved, teacher = load_file(out / "model.safetensors"), load_file(distill_world["teacher"] / "model.safetensors")
    for name in [n for n in teacher if n.startswith("cls.")]:
        np.testing.assert_array_equal(saved[name], teacher[name])
    plain = tmp_path / "plain"
    main(["distill", "init", str(headless_teacher), str(plain), "--layers", "0", "-q"])
    assert json.loads((plain / "config.json").read_text())["architectures"] == ["BertModel"]  # only when asked
