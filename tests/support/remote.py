"""Shared pieces of the remote-source tests (s3://, gs://, hf://): the tiny TF checkpoint with its local
conversion (the ``checkpoint`` fixture), a free port, the in-process convert with a cache, and the
byte-count / output checks."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest

from ckptkit.converters.formats.tf1.writer import write_tf_checkpoint
from support.bert import bert_tf_config, bert_tf_variables, tiny_wordpiece_vocab, with_adam_slots
from support.cli import run_cli

CFG = dict(vocab_size=100, hidden=32, layers=2, heads=2, intermediate=64, max_positions=64)
COMPARED = ("model.safetensors", "config.json", "tokenizer.json", "vocab.txt", "tokenizer_config.json")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tiny_checkpoint(root: Path) -> tuple[Path, Path]:
    """Write a tiny BERT TF checkpoint (with Adam slots) into ROOT and convert it locally next to it.

    Returns (ROOT, the local conversion's folder), the reference every remote conversion must match.
    """
    from ckptkit.cli import main  # module-scoped fixtures have no capsys, so not run_cli

    write_tf_checkpoint(str(root / "model.ckpt-1000"), with_adam_slots(bert_tf_variables(**CFG)))
    (root / "bert_config.json").write_text(json.dumps(bert_tf_config(**CFG)))
    (root / "vocab.txt").write_text("\n".join(tiny_wordpiece_vocab(100)) + "\n")
    local = root.parent / (root.name + "-local")
    try:
        main(["convert", str(root / "model.ckpt-1000"), str(local), "--quiet"])
    except SystemExit as done:
        assert done.code in (0, None)
    return root, local


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> tuple[Path, Path]:
    """The tiny checkpoint and its local conversion, once per test module (import it there as a fixture)."""
    return tiny_checkpoint(tmp_path_factory.mktemp("remotesrc"))


def convert(url: str, tmp_path: Path, capsys, *, name: str = "out") -> tuple[int, dict | None, str]:
    """(exit status, the JSON report's ``remote`` block or None on failure, stderr) of converting URL."""
    code, out, err = run_cli(["convert", url, tmp_path / name, "--cache-dir", tmp_path / "cache", "--json",
                              "--quiet"], capsys)
    return code, (json.loads(out)["remote"] if code == 0 else None), err


def kept_bytes(root: Path) -> int:
    """Bytes of the tensors a conversion keeps (no Adam slots, no global_step) plus the small files."""
    from ckptkit.converters.formats import open_checkpoint

    with open_checkpoint(str(root / "model.ckpt-1000")) as ckpt:
        kept = sum(ckpt[n].nbytes for n in ckpt if "adam" not in n and n != "global_step")
    return kept + sum(os.path.getsize(root / n) for n in os.listdir(root) if ".data-" not in n)


def index_bytes(root: Path) -> int:
    """Bytes of the files a cached second run still fetches: the index and the ``checkpoint`` file."""
    return sum(os.path.getsize(root / n) for n in ("model.ckpt-1000.index", "checkpoint"))


def assert_like_local(out: Path, checkpoint: tuple[Path, Path], remote: dict) -> None:
    """OUT matches the local conversion file for file, and only about the kept bytes were transferred."""
    for name in COMPARED:
        assert (out / name).read_bytes() == (checkpoint[1] / name).read_bytes(), name
    assert remote["bytes_transferred"] <= 1.10 * kept_bytes(checkpoint[0])
    assert remote["bytes_skipped"] >= 1.8 * kept_bytes(checkpoint[0])


def same_weights(out: Path, checkpoint: tuple[Path, Path]) -> bool:
    """Whether OUT's model.safetensors is byte-identical to the local conversion's."""
    return (out / "model.safetensors").read_bytes() == (checkpoint[1] / "model.safetensors").read_bytes()
