"""``ckptkit inspect``: tables, JSON, and one-line errors with exit status 2 for bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from ckptkit.cli import main
from ckptkit.converters.formats.tf1 import open_tf_checkpoint, write_tf_checkpoint
from ckptkit.converters.formats.tf1.table import build_table


def run_cli(capsys, *args) -> tuple[int, str, str]:
    try:
        main(["inspect", *map(str, args)])
        code = 0
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def bert_like(tmp_path):
    kernel = "bert/encoder/layer_0/attention/self/query/kernel"
    tensors = [(kernel, np.ones((4, 4), np.float32)), (f"{kernel}/adam_m", np.zeros((4, 4), np.float32)),
               (f"{kernel}/adam_v", np.zeros((4, 4), np.float32)),
               ("bert/pooler/dense/bias/AdamWeightDecayOptimizer_1", np.zeros(4, np.float32)),
               ("bert/pooler/dense/bias", np.arange(4, dtype=np.float32)), ("global_step", np.int64(1234))]
    return write_tf_checkpoint(tmp_path / "model.ckpt-1234", tensors)


def test_table_groups_by_role(capsys, bert_like):
    code, out, err = run_cli(capsys, os.path.dirname(bert_like))
    assert code == 0 and err == ""
    assert "global_step: 1234" in out
    assert "Model weights: 2 tensors, 20 parameters, 80 B" in out
    assert "Optimizer state: 3 tensors, 36 parameters, 144 B" in out
    assert "Counters: 1 tensors, 1 parameters, 8 B" in out
    weights = out.split("Model weights (2)")[1].split("Optimizer state (3)")[0]
    rows = [line.split() for line in weights.strip().splitlines()[2:]]
    assert ["bert/pooler/dense/bias", "float32", "[4]", "16", "B"] in rows and "adam_m" not in weights
    assert "[4, 4]  64 B" in out


def test_json(capsys, bert_like):
    code, out, _ = run_cli(capsys, f"{bert_like}.index", "--json")
    doc = json.loads(out)
    assert code == 0 and doc["format"] == "tf" and doc["global_step"] == 1234
    roles = {t["name"]: t["role"] for t in doc["tensors"]}
    assert roles["global_step"] == "counter" and roles["bert/pooler/dense/bias"] == "weight"
    assert roles["bert/pooler/dense/bias/AdamWeightDecayOptimizer_1"] == "optimizer"
    assert {"name": "global_step", "dtype": "int64", "shape": [], "role": "counter", "nbytes": 8} in doc["tensors"]
    assert doc["totals"]["by_role"]["optimizer"]["tensors"] == 3 and doc["family"] == "bert"


def test_quiet_and_check(capsys, bert_like):
    code, out, err = run_cli(capsys, bert_like, "--quiet", "--check")
    assert code == 0 and "Total: 6 tensors" in out and "name" not in out and err == ""


def test_help_has_an_example():
    out = subprocess.run([sys.executable, "-m", "ckptkit", "inspect", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "ckptkit inspect examples/tiny-bert/model.ckpt-20000" in out.stdout


def _damage(prefix: str, kind: str) -> str:
    """Break the checkpoint in one way; return the path to give and the file the message must name."""
    data = f"{prefix}.data-00000-of-00001"
    if kind == "truncated":
        os.truncate(data, os.path.getsize(data) - 5)
        return data
    if kind == "crc":
        with open_tf_checkpoint(prefix) as ckpt:
            offset = ckpt["bert/pooler/dense/bias"].entry.offset
        raw = bytearray(open(data, "rb").read())
        raw[offset] ^= 0x40
        open(data, "wb").write(raw)
        return data
    if kind == "missing shard":
        os.remove(data)
        return data
    if kind == "not a table":
        open(f"{prefix}.index", "wb").write(b"this is not a table" * 10)
        return f"{prefix}.index"
    raise AssertionError(kind)


@pytest.mark.parametrize("kind,message", [("truncated", "truncated"), ("crc", "CRC mismatch"),
                                          ("missing shard", "missing"), ("not a table", "not a valid checkpoint index")])
def test_bad_checkpoint_is_one_line_exit_2(capsys, bert_like, kind, message):
    named = _damage(bert_like, kind)
    code, out, err = run_cli(capsys, bert_like, "--check")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("ckptkit: error: ") and "Traceback" not in err
    assert message in err and named in err


def test_v1_file_is_refused(capsys, tmp_path):
    v1 = tmp_path / "model.ckpt-1"
    v1.write_bytes(build_table([(b"", b"\x0a\x00"), (b"w", b"\x0a\x02\x08\x01")]))
    code, _, err = run_cli(capsys, v1)
    assert code == 2 and "V1 checkpoint" in err and str(v1) in err and err.count("\n") == 1


@pytest.mark.parametrize("make", ["nonexistent", "empty dir", "dangling state"])
def test_missing_things(capsys, tmp_path, make):
    target = tmp_path / "x"
    if make == "empty dir":
        target.mkdir()
        (target / "notes.txt").write_text("hi")
    elif make == "dangling state":
        target.mkdir()
        (target / "checkpoint").write_text('model_checkpoint_path: "model.ckpt-9"\n')
    code, out, err = run_cli(capsys, target)
    assert code == 2 and out == "" and err.count("\n") == 1 and str(target) in err


def test_real_process_exit_status(tmp_path):
    out = subprocess.run([sys.executable, "-m", "ckptkit", "inspect", str(tmp_path / "nope")],
                         capture_output=True, text=True)
    assert out.returncode == 2 and out.stdout == "" and len(out.stderr.splitlines()) == 1
    assert "Traceback" not in out.stderr
