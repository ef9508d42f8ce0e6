"""Remote checkpoints on s3:// through moto's S3 server on 127.0.0.1 (an endpoint URL): output identical
to a local conversion, only the kept tensors' bytes transferred, a cache that makes a second run
transfer only the index, and a missing shard or object in one line."""

from __future__ import annotations

import os

import pytest

from support.remote import assert_like_local, convert, free_port, index_bytes, kept_bytes, same_weights
from support.remote import checkpoint  # noqa: F401  (fixture)


@pytest.fixture(scope="module")
def moto_endpoint():
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    yield f"http://127.0.0.1:{server._port}"
    server.stop()


@pytest.fixture
def bucket(checkpoint, moto_endpoint, monkeypatch, request):
    import boto3

    for name, value in {"AWS_ENDPOINT_URL": moto_endpoint, "AWS_ACCESS_KEY_ID": "testing",
                        "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    name = f"ckpt-{request.node.name.replace('_', '-')[:40].lower()}"
    client = boto3.client("s3", endpoint_url=moto_endpoint)
    client.create_bucket(Bucket=name)
    for file in os.listdir(checkpoint[0]):
        client.upload_file(str(checkpoint[0] / file), name, f"bert/{file}")
    return name, client


def _convert(bucket_name, tmp_path, capsys, name="out"):
    return convert(f"s3://{bucket_name}/bert/model.ckpt-1000", tmp_path, capsys, name=name)


def test_s3_convert_identical_kept_bytes_only_then_cached(checkpoint, bucket, moto_endpoint, tmp_path, capsys,
                                                         monkeypatch):
    from support.drop_proxy import DropProxy

    with DropProxy(("127.0.0.1", int(moto_endpoint.rsplit(":", 1)[1]))) as proxy:  # counts what the server sent
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        code, remote, err = _convert(bucket[0], tmp_path, capsys)
    assert proxy.bytes_relayed <= 1.10 * kept_bytes(checkpoint[0])  # HTTP headers and listings included
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    assert code == 0, err
    assert_like_local(tmp_path / "out", checkpoint, remote)
    code, again, err = _convert(bucket[0], tmp_path, capsys, name="again")
    assert code == 0, err
    index = index_bytes(checkpoint[0])
    assert again["bytes_transferred"] == index
    assert same_weights(tmp_path / "again", checkpoint)


def test_s3_missing_shard_is_one_line(bucket, tmp_path, capsys):
    name, client = bucket
    client.delete_object(Bucket=name, Key="bert/model.ckpt-1000.data-00000-of-00001")
    code, _, err = _convert(name, tmp_path, capsys)
    assert code == 2 and err.count("\n") == 1, err
    assert f"s3://{name}/bert/model.ckpt-1000.data-00000-of-00001: data shard 1 of 1 is missing" in err
    assert not (tmp_path / "out").exists()


def test_s3_missing_bucket_is_one_line(bucket, tmp_path, capsys):
    code, _, err = _convert("no-such-bucket", tmp_path, capsys)
    assert code == 2 and err.count("\n") == 1 and "s3://no-such-bucket/bert/model.ckpt-1000" in err, err
    assert "404" in err


def test_s3_without_credentials_names_the_fix(bucket, tmp_path, capsys, monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # never ask 169.254.169.254
    code, _, err = _convert(bucket[0], tmp_path, capsys)
    assert code == 2 and err.count("\n") == 1, err
    assert f"s3://{bucket[0]}/bert" in err and "no credentials" in err and "AWS_ACCESS_KEY_ID" in err


def test_s3_dropped_connections_are_retried(checkpoint, bucket, moto_endpoint, tmp_path, capsys, monkeypatch):
    from support.drop_proxy import DropProxy

    port = int(moto_endpoint.rsplit(":", 1)[1])
    with DropProxy(("127.0.0.1", port), drops=3, after=2048) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        code, remote, err = _convert(bucket[0], tmp_path, capsys)
        assert code == 0, err
        assert proxy.drops == 0  # three transfers were cut mid-way, and retried
    assert same_weights(tmp_path / "out", checkpoint)


def test_s3_403_on_the_weights_is_one_line_and_writes_nothing(bucket, moto_endpoint, tmp_path, capsys, monkeypatch):
    from support.drop_proxy import DropProxy

    port = int(moto_endpoint.rsplit(":", 1)[1])
    with DropProxy(("127.0.0.1", port), deny=r"^GET \S*\.data-") as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        code, _, err = _convert(bucket[0], tmp_path, capsys)
    assert code == 2 and err.count("\n") == 1, err
    assert f"s3://{bucket[0]}/bert/model.ckpt-1000.data-00000-of-00001" in err and "403" in err, err
    assert "AWS_ACCESS_KEY_ID" in err and not (tmp_path / "out").exists()
