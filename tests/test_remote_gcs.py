"""Remote checkpoints on gs:// through a local GCS emulator (gcp-storage-emulator from PyPI, started by
the fixture on 127.0.0.1, reached through STORAGE_EMULATOR_HOST): output identical to a local
conversion, only the kept tensors' bytes transferred, a cached second run, a missing shard or bucket
in one line."""

from __future__ import annotations

import os

import pytest

from support.remote import (assert_like_local, convert as _convert, free_port, index_bytes, kept_bytes,
                            same_weights)
from support.remote import checkpoint  # noqa: F401  (fixture)

BUCKET = "ckpt-bucket"


@pytest.fixture(scope="module")
def emulator():
    from gcp_storage_emulator.server import create_server

    port = free_port()
    server = create_server("127.0.0.1", port, in_memory=True, default_bucket=BUCKET)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def folder(checkpoint, emulator, monkeypatch, request):
    """The checkpoint uploaded under a prefix of its own; yields (gs:// folder URL, gcsfs filesystem)."""
    from gcsfs.core import GCSFileSystem

    monkeypatch.setenv("STORAGE_EMULATOR_HOST", emulator)
    fs = GCSFileSystem(endpoint_url=emulator, token="anon")
    prefix = f"{BUCKET}/{request.node.name[:40]}"
    for name in os.listdir(checkpoint[0]):
        fs.pipe(f"{prefix}/bert/{name}", (checkpoint[0] / name).read_bytes())
    return f"gs://{prefix}/bert", fs


def test_gcs_convert_identical_kept_bytes_only_then_cached(checkpoint, folder, emulator, tmp_path, capsys,
                                                          monkeypatch):
    from support.drop_proxy import DropProxy

    with DropProxy(("127.0.0.1", int(emulator.rsplit(":", 1)[1]))) as proxy:  # counts what the server sent
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", proxy.url)
        code, remote, err = _convert(f"{folder[0]}/model.ckpt-1000", tmp_path, capsys)
    assert proxy.bytes_relayed <= 1.10 * kept_bytes(checkpoint[0])  # HTTP headers and listings included
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", emulator)
    assert code == 0, err
    assert_like_local(tmp_path / "out", checkpoint, remote)
    code, again, err = _convert(f"{folder[0]}/model.ckpt-1000", tmp_path, capsys, name="again")
    assert code == 0, err
    index = index_bytes(checkpoint[0])
    assert again["bytes_transferred"] == index


def test_gcs_missing_shard_is_one_line(folder, tmp_path, capsys):
    url, fs = folder
    fs.rm(url[len("gs://"):] + "/model.ckpt-1000.data-00000-of-00001")
    code, _, err = _convert(f"{url}/model.ckpt-1000", tmp_path, capsys)
    assert code == 2 and err.count("\n") == 1, err
    assert f"{url}/model.ckpt-1000.data-00000-of-00001: data shard 1 of 1 is missing" in err
    assert not (tmp_path / "out").exists()


def test_gcs_missing_object_is_one_line(folder, tmp_path, capsys):
    code, _, err = _convert(f"{folder[0]}/model.ckpt-9999", tmp_path, capsys)
    assert code == 2 and err.count("\n") == 1 and "404" in err and "model.ckpt-9999" in err, err


def test_gcs_dropped_connections_are_retried(checkpoint, folder, emulator, tmp_path, capsys, monkeypatch):
    from support.drop_proxy import DropProxy

    port = int(emulator.rsplit(":", 1)[1])
    with DropProxy(("127.0.0.1", port), drops=1, after=2048) as proxy:  # gcsfs's own backoff is seconds long
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", proxy.url)
        code, remote, err = _convert(f"{folder[0]}/model.ckpt-1000", tmp_path, capsys)
        assert code == 0, err
        assert proxy.drops == 0
    assert same_weights(tmp_path / "out", checkpoint)


def test_gcs_403_on_the_weights_is_one_line_and_writes_nothing(folder, emulator, tmp_path, capsys, monkeypatch):
    from support.drop_proxy import DropProxy

    port = int(emulator.rsplit(":", 1)[1])
    with DropProxy(("127.0.0.1", port), deny=r"^GET \S*\.data-") as proxy:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", proxy.url)
        code, _, err = _convert(f"{folder[0]}/model.ckpt-1000", tmp_path, capsys)
    assert code == 2 and err.count("\n") == 1, err
    assert f"{folder[0]}/model.ckpt-1000.data-00000-of-00001" in err and "403" in err, err
    assert "gcloud auth application-default login" in err and not (tmp_path / "out").exists()
