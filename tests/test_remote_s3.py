"""Remote checkpoints on s3:// through moto's S3 server on 127.0.0.1 (an endpoint URL): output identical
to a local conversion, only the kept tensors' bytes transferred, a cache that makes a second run
transfer only the index, and a missing shard or object in one line."""

from __future__ import annotations

import json
import os
import socket

import pytest

from ckptkit.converters.formats.tf1.writer import write_tf_checkpoint
from support.bert import bert_tf_config, bert_tf_variables, tiny_wordpiece_vocab, with_adam_slots
from support.cli import run_cli

CFG = dict(vocab_size=100, hidden=32, layers=2, heads=2, intermediate=64, max_positions=64)
COMPARED = ("model.safetensors", "config.json", "tokenizer.json", "vocab.txt", "tokenizer_config.json")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    root = tmp_path_factory.mktemp("s3src")
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


@pytest.fixture(scope="module")
def moto_endpoint():
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=_free_port(), verbose=False)
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
    code, out, err = run_cli(["convert", f"s3://{bucket_name}/bert/model.ckpt-1000", tmp_path / name,
                              "--cache-dir", tmp_path / "cache", "--json", "--quiet"], capsys)
    return code, (json.loads(out)["remote"] if code == 0 else None), err


def _kept_bytes(root) -> int:
    from ckptkit.converters.formats import open_checkpoint

    with open_checkpoint(str(root / "model.ckpt-1000")) as ckpt:
        kept = sum(ckpt[n].nbytes for n in ckpt if "adam" not in n and n != "global_step")
    return kept + sum(os.path.getsize(root / n) for n in os.listdir(root) if ".data-" not in n)


def test_s3_convert_identical_kept_bytes_only_then_cached(checkpoint, bucket, moto_endpoint, tmp_path, capsys,
                                                         monkeypatch):
    from support.drop_proxy import DropProxy

    with DropProxy(("127.0.0.1", int(moto_endpoint.rsplit(":", 1)[1]))) as proxy:  # counts what the server sent
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        code, remote, err = _convert(bucket[0], tmp_path, capsys)
    assert proxy.bytes_relayed <= 1.10 * _kept_bytes(checkpoint[0])  # HTTP headers and listings included
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    assert code == 0, err
    for name in COMPARED:
        assert (tmp_path / "out" / name).read_bytes() == (checkpoint[1] / name).read_bytes(), name
    assert remote["bytes_transferred"] <= 1.10 * _kept_bytes(checkpoint[0])
    assert remote["bytes_skipped"] >= 1.8 * _kept_bytes(checkpoint[0])
    code, again, err = _convert(bucket[0], tmp_path, capsys, name="again")
    assert code == 0, err
    index = sum(os.path.getsize(checkpoint[0] / n) for n in ("model.ckpt-1000.index", "checkpoint"))
    assert again["bytes_transferred"] == index
    assert (tmp_path / "again" / "model.safetensors").read_bytes() == (checkpoint[1] / "model.safetensors").read_bytes()


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
    assert (tmp_path / "out" / "model.safetensors").read_bytes() == \
        (checkpoint[1] / "model.safetensors").read_bytes()


def test_s3_403_on_the_weights_is_one_line_and_writes_nothing(bucket, moto_endpoint, tmp_path, capsys, monkeypatch):
    from support.drop_proxy import DropProxy

    port = int(moto_endpoint.rsplit(":", 1)[1])
    with DropProxy(("127.0.0.1", port), deny=r"^GET \S*\.data-") as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        code, _, err = _convert(bucket[0], tmp_path, capsys)
    assert code == 2 and err.count("\n") == 1, err
    assert f"s3://{bucket[0]}/bert/model.ckpt-1000.data-00000-of-00001" in err and "403" in err, err
    assert "AWS_ACCESS_KEY_ID" in err and not (tmp_path / "out").exists()
