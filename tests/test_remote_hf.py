"""Remote checkpoints on hf://ORG/REPO[@REV]/path through huggingface_hub's HfFileSystem against the
in-process fake Hub on 127.0.0.1: identical output, only the kept tensors' bytes downloaded, a revision,
a cached second run, and 403/404 in one line with nothing written."""

from __future__ import annotations

import json
import os

import pytest

from ckptkit.converters.formats.tf1.writer import write_tf_checkpoint
from fake_hub import FakeHub
from support.bert import bert_tf_config, bert_tf_variables, tiny_wordpiece_vocab, with_adam_slots
from support.cli import run_cli

CFG = dict(vocab_size=100, hidden=32, layers=2, heads=2, intermediate=64, max_positions=64)
COMPARED = ("model.safetensors", "config.json", "tokenizer.json", "vocab.txt", "tokenizer_config.json")
TOKEN = "hf_fake_token_for_remote_reads"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    root = tmp_path_factory.mktemp("hfsrc")
    write_tf_checkpoint(str(root / "model.ckpt-1000"), with_adam_slots(bert_tf_variables(**CFG)))
    (root / "bert_config.json").write_text(json.dumps(bert_tf_config(**CFG)))
    (root / "vocab.txt").write_text("\n".join(tiny_wordpiece_vocab(100)) + "\n")
    local = root.parent / (root.name + "-local")
    from ckptkit.cli import main

    try:
        main(["convert", str(root / "model.ckpt-1000"), str(local), "--quiet"])
    except SystemExit as done:
        assert done.code in (0, None)
    return root, local


@pytest.fixture
def hub(checkpoint, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # offline mode stays on for every other test
    with FakeHub(token=TOKEN) as fake:
        monkeypatch.setenv("HF_ENDPOINT", fake.url)
        monkeypatch.setenv("HF_TOKEN", TOKEN)
        repo = fake.add_repo("me/tiny-tf")
        files = {f"tf/{n}": (checkpoint[0] / n).read_bytes() for n in os.listdir(checkpoint[0])}
        repo.branches["main"] = dict(files)
        repo.branches["v1"] = dict(files)
        yield fake


def _convert(url, tmp_path, capsys, name="out"):
    code, out, err = run_cli(["convert", url, tmp_path / name, "--cache-dir", tmp_path / "cache", "--json",
                              "--quiet"], capsys)
    return code, (json.loads(out)["remote"] if code == 0 else None), err


def _kept_bytes(root) -> int:
    from ckptkit.converters.formats import open_checkpoint

    with open_checkpoint(str(root / "model.ckpt-1000")) as ckpt:
        kept = sum(ckpt[n].nbytes for n in ckpt if "adam" not in n and n != "global_step")
    return kept + sum(os.path.getsize(root / n) for n in os.listdir(root) if ".data-" not in n)


@pytest.mark.parametrize("url", ["hf://me/tiny-tf/tf/model.ckpt-1000", "hf://me/tiny-tf@v1/tf/model.ckpt-1000"])
def test_hf_convert_identical_kept_bytes_only_then_cached(checkpoint, hub, tmp_path, capsys, url):
    code, remote, err = _convert(url, tmp_path, capsys)
    assert code == 0, err
    for name in COMPARED:
        assert (tmp_path / "out" / name).read_bytes() == (checkpoint[1] / name).read_bytes(), name
    assert hub.bytes_served == remote["bytes_transferred"] <= 1.10 * _kept_bytes(checkpoint[0])
    assert remote["bytes_skipped"] >= 1.8 * _kept_bytes(checkpoint[0])
    hub.bytes_served = 0
    code, again, err = _convert(url, tmp_path, capsys, name="again")
    assert code == 0, err
    index = sum(os.path.getsize(checkpoint[0] / n) for n in ("model.ckpt-1000.index", "checkpoint"))
    assert hub.bytes_served == again["bytes_transferred"] == index


def test_hf_403_on_the_weights_is_one_line_and_writes_nothing(hub, tmp_path, capsys):
    hub.fail(r"/resolve/.*\.data-", 403, message="Access to this file is restricted")
    code, _, err = _convert("hf://me/tiny-tf/tf/model.ckpt-1000", tmp_path, capsys)
    assert code == 2 and err.count("\n") == 1, err
    assert "hf://me/tiny-tf/tf/model.ckpt-1000.data-00000-of-00001" in err and "403" in err and "HF_TOKEN" in err
    assert not (tmp_path / "out").exists()


def test_hf_missing_repo_is_one_line(hub, tmp_path, capsys):
    code, _, err = _convert("hf://me/no-such-repo/tf/model.ckpt-1000", tmp_path, capsys)
    assert code == 2 and err.count("\n") == 1 and "hf://me/no-such-repo" in err and "404" in err, err
    assert not (tmp_path / "out").exists()


def test_hf_without_a_token_names_the_fix(hub, tmp_path, capsys, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.delenv("HF_TOKEN")
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(tmp_path / "no-tokens"))
    code, _, err = _convert("hf://me/tiny-tf/tf/model.ckpt-1000", tmp_path, capsys)
    assert code == 2 and err.count("\n") == 1, err
    assert "hf://me/tiny-tf" in err and "no credentials" in err and "HF_TOKEN" in err
    assert not (tmp_path / "out").exists()


def test_hf_dropped_connections_are_retried(checkpoint, hub, tmp_path, capsys, monkeypatch):
    from support.drop_proxy import DropProxy

    port = int(hub.url.rsplit(":", 1)[1])
    with DropProxy(("127.0.0.1", port), drops=3, after=2048) as proxy:
        monkeypatch.setenv("HF_ENDPOINT", proxy.url)
        code, remote, err = _convert("hf://me/tiny-tf/tf/model.ckpt-1000", tmp_path, capsys)
        assert code == 0, err
        assert proxy.drops == 0
    assert (tmp_path / "out" / "model.safetensors").read_bytes() == \
        (checkpoint[1] / "model.safetensors").read_bytes()
