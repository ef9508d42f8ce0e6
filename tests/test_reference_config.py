"""The TF-side reference of `verify` runs under the *source's* activation and head count, not under the output's
config.json translated back (converters/reference_config.py): a config.json whose activation or head count
differs from the original fails verification although every tensor is bitwise equal. Before, both sides ran the
edited value and verification passed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ckptkit.converters.convert import convert_checkpoint
from ckptkit.converters.formats.tf1 import write_tf_checkpoint
from support.bert import bert_tf_config, bert_tf_variables, tiny_wordpiece_vocab
from support.cli import run_cli

DIMS = dict(vocab_size=40, hidden=16, layers=2, heads=4, intermediate=32, max_positions=32)


@pytest.fixture(scope="module")
def relu_bert(tmp_path_factory) -> tuple[Path, Path]:
    """A Google BERT trained with relu (bert_config.json says so), converted without verifying."""
    root = tmp_path_factory.mktemp("refconfig")
    tf = root / "tf"
    tf.mkdir()
    write_tf_checkpoint(str(tf / "model.ckpt-1"), sorted(bert_tf_variables(**DIMS, seed=3).items()))
    (tf / "bert_config.json").write_text(json.dumps(bert_tf_config(**DIMS, hidden_act="relu")))
    (tf / "vocab.txt").write_text("\n".join(tiny_wordpiece_vocab(40)) + "\n")
    convert_checkpoint(str(tf), str(root / "hf"))
    return tf, root / "hf"


def _edited(hf: Path, tmp_path: Path, **changes) -> Path:
    copy = tmp_path / "hf"
    copy.mkdir()
    for path in hf.iterdir():
        (copy / path.name).write_bytes(path.read_bytes())
    config = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps({**config, **changes}))
    return copy


@pytest.mark.parametrize("engine", ["numpy", "transformers"])
def test_the_untouched_conversion_passes(relu_bert, engine, capsys):
    tf, hf = relu_bert
    assert json.loads((hf / "config.json").read_text())["hidden_act"] == "relu"
    code, out, err = run_cli(["verify", str(tf), str(hf), "--engine", engine], capsys)
    assert code == 0 and "verification PASSED" in out, out + err


@pytest.mark.parametrize("change", [{"hidden_act": "gelu_new"}, {"num_attention_heads": 2}])
def test_a_config_json_that_disagrees_with_the_source_fails(relu_bert, change, tmp_path, capsys):
    tf, hf = relu_bert
    edited = _edited(hf, tmp_path, **change)
    code, out, err = run_cli(["verify", str(tf), str(edited), "--json"], capsys)
    report = json.loads(out)
    assert code == 1 and not report["passed"], out + err
    assert report["tensors_bitwise"] == report["tensors_checked"] > 0  # the weights are right; the config is not
    assert any(not r["ok"] for r in report["outputs"])


def test_convert_verify_uses_the_config_the_conversion_read(relu_bert, tmp_path, capsys):
    """--config names the original config; the reference takes its activation from there, not from a stale
    bert_config.json beside the checkpoint."""
    tf, _ = relu_bert
    stale = tmp_path / "tf"
    stale.mkdir()
    for path in tf.iterdir():
        (stale / path.name).write_bytes(path.read_bytes())
    (stale / "bert_config.json").write_text(json.dumps(bert_tf_config(**DIMS, hidden_act="gelu")))
    original = tmp_path / "original_config.json"
    original.write_text(json.dumps(bert_tf_config(**DIMS, hidden_act="relu")))
    code, out, err = run_cli(["convert", str(stale), str(tmp_path / "out"), "--config", str(original), "--verify",
                              "-q"], capsys)
    assert code == 0, out + err
