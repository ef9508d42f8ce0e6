"""Remote checkpoints on hf://ORG/REPO[@REV]/path through huggingface_hub's HfFileSystem against the
in-process fake Hub on 127.0.0.1: identical output, only the kept tensors' bytes downloaded, a revision,
a cached second run, and 403/404 in one line with nothing written."""

from __future__ import annotations

import os

import pytest

from fake_hub import FakeHub
from support.remote import assert_like_local, convert as _convert, index_bytes, same_weights
from support.remote import checkpoint  # noqa: F401  (fixture)

TOKEN = "hf_fake_token_for_remote_reads"


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


@pytest.mark.parametrize("url", ["hf://me/tiny-tf/tf/model.ckpt-1000", "hf://me/tiny-tf@v1/tf/model.ckpt-1000"])
def test_hf_convert_identical_kept_bytes_only_then_cached(checkpoint, hub, tmp_path, capsys, url):
    code, remote, err = _convert(url, tmp_path, capsys)
    assert code == 0, err
    assert_like_local(tmp_path / "out", checkpoint, remote)
    assert hub.bytes_served == remote["bytes_transferred"]
    hub.bytes_served = 0
    code, again, err = _convert(url, tmp_path, capsys, name="again")
    assert code == 0, err
    index = index_bytes(checkpoint[0])
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
    assert same_weights(tmp_path / "out", checkpoint)
