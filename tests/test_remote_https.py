"""Remote checkpoints over https (a range-capable server on 127.0.0.1): only the kept tensors' bytes
cross the network, retries after dropped connections, one-line errors, a cache that makes a second run
transfer only the index, and nothing remote imported for a local path."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from ckptkit.converters.formats.tf1.writer import write_tf_checkpoint
from support.bert import bert_tf_config, bert_tf_variables, tiny_wordpiece_vocab, with_adam_slots
from support.cli import run_cli
from support.range_server import RangeServer

CFG = dict(vocab_size=100, hidden=32, layers=2, heads=2, intermediate=64, max_positions=64)
COMPARED = ("model.safetensors", "config.json", "tokenizer.json", "vocab.txt", "tokenizer_config.json")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A folder with a TF BERT checkpoint with Adam slots, its config and vocab; and a local conversion."""
    root = tmp_path_factory.mktemp("srv")
    (root / "bert").mkdir()
    write_tf_checkpoint(str(root / "bert" / "model.ckpt-1000"), with_adam_slots(bert_tf_variables(**CFG)))
    (root / "bert" / "bert_config.json").write_text(json.dumps(bert_tf_config(**CFG)))
    (root / "bert" / "vocab.txt").write_text("\n".join(tiny_wordpiece_vocab(100)) + "\n")
    local = root.parent / (root.name + "-local")
    from ckptkit.cli import main

    try:
        main(["convert", str(root / "bert" / "model.ckpt-1000"), str(local), "--quiet"])
    except SystemExit as done:
        assert done.code in (0, None)
    (root / "tf3").mkdir()  # three shards, keys in sorted order as TF writes them (each weight between its slots)
    variables = with_adam_slots(bert_tf_variables(**CFG))
    write_tf_checkpoint(str(root / "tf3" / "model.ckpt-1000"), {k: variables[k] for k in sorted(variables)},
                        num_shards=3)
    for name in ("bert_config.json", "vocab.txt"):
        (root / "tf3" / name).write_bytes((root / "bert" / name).read_bytes())
    for name, extra in (("sharded", ["--to", "safetensors", "--max-shard-size", "30KB"]), ("bin", ["--to", "pytorch"])):
        try:
            main(["convert", str(local), str(root / name), "--quiet", *extra])
        except SystemExit as done:
            assert done.code in (0, None)
    return root, local


@pytest.fixture
def server(served):
    with RangeServer(str(served[0])) as srv:
        yield srv


def _convert(server, tmp_path, capsys, *extra, name="out"):
    return run_cli(["convert", f"{server.url}/bert/model.ckpt-1000", tmp_path / name, "--cache-dir",
                    tmp_path / "cache", "--json", "--quiet", *extra], capsys)


def _kept_bytes(root) -> int:
    from ckptkit.converters.formats import open_checkpoint

    with open_checkpoint(str(root / "bert" / "model.ckpt-1000")) as ckpt:
        kept = sum(ckpt[n].nbytes for n in ckpt if "adam" not in n and n != "global_step")
    small = sum(os.path.getsize(root / "bert" / n) for n in os.listdir(root / "bert") if ".data-" not in n)
    return kept + small


def _same_output(a, b) -> None:
    for name in COMPARED:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_https_convert_is_identical_and_fetches_only_kept_tensors(served, server, tmp_path, capsys):
    root, local = served
    code, out, err = _convert(server, tmp_path, capsys)
    assert code == 0, err
    _same_output(local, tmp_path / "out")
    assert server.bytes_served <= 1.10 * _kept_bytes(root)
    total = sum(os.path.getsize(root / "bert" / n) for n in os.listdir(root / "bert"))
    assert server.bytes_served < 0.5 * total  # the Adam slots (2/3 of the weights) never crossed
    record = json.loads((tmp_path / "out" / "ckptkit.json").read_text())
    assert record["source"]["path"] == f"{server.url}/bert/model.ckpt-1000"  # the URL, not the cache
    remote = json.loads(out)["remote"]
    listings = 1024  # the folder's HTML listing is served but is not file data
    assert server.bytes_served - listings <= remote["bytes_transferred"] <= server.bytes_served
    assert remote["bytes_skipped"] >= 1.8 * _kept_bytes(root)


def test_second_run_transfers_only_the_index(served, server, tmp_path, capsys):
    assert _convert(server, tmp_path, capsys)[0] == 0
    server.reset()
    code, out, err = _convert(server, tmp_path, capsys, name="again")
    assert code == 0, err
    _same_output(served[1], tmp_path / "again")
    gets = [path for method, path, _ in server.requests if method == "GET" and not path.endswith("/")]
    assert sorted(gets) == ["/bert/checkpoint", "/bert/model.ckpt-1000.index"]


def test_dropped_connections_are_retried(served, server, tmp_path, capsys):
    server.faults.drops = 3
    code, out, err = _convert(server, tmp_path, capsys, "--connections", "4")
    assert code == 0, err
    assert server.faults.drops == 0
    _same_output(served[1], tmp_path / "out")


def test_interrupted_run_resumes_without_fetching_twice(served, server, tmp_path, capsys, monkeypatch):
    from ckptkit.remote import filesystem, lazy_file

    monkeypatch.setattr(filesystem, "BACKOFF_S", 0.001)
    monkeypatch.setattr(lazy_file, "MIN_CHUNK", 4096)  # the weights in ~25 requests
    server.faults.ranged_ok = 10  # then the server fails every range request (5xx, retried, then given up)
    code, out, err = _convert(server, tmp_path, capsys, "--connections", "32")
    assert code == 2 and err.count("\n") == 1 and "transfer failed" in err, err
    assert not (tmp_path / "out").exists()
    first = server.bytes_served
    server.faults.ranged_ok = None
    server.reset()
    code, out, err = _convert(server, tmp_path, capsys)
    assert code == 0, err
    _same_output(served[1], tmp_path / "out")
    assert first > 4096 and first + server.bytes_served <= 1.10 * _kept_bytes(served[0])


@pytest.mark.parametrize("status, words", [(403, "access denied (403)"), (404, "not found (404)")])
def test_refused_data_is_one_line_and_writes_nothing(served, server, tmp_path, capsys, status, words):
    server.faults.status[r"\.data-"] = status
    code, out, err = _convert(server, tmp_path, capsys)
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith("ckptkit: error: ") and words in err and f"{server.url}/bert/" in err
    assert not (tmp_path / "out").exists()


def test_missing_checkpoint_is_one_line(server, tmp_path, capsys):
    code, out, err = run_cli(["inspect", f"{server.url}/nothing/model.ckpt-1", "--cache-dir", tmp_path], capsys)
    assert code == 2 and err.count("\n") == 1 and "404" in err and "/nothing/model.ckpt-1" in err, err


def test_server_without_ranges_needs_allow_full_download(served, server, tmp_path, capsys):
    server.faults.no_ranges = True
    code, out, err = _convert(server, tmp_path, capsys)
    assert code == 2 and err.count("\n") == 1 and "--allow-full-download" in err, err
    assert not (tmp_path / "out").exists()
    code, out, err = _convert(server, tmp_path, capsys, "--allow-full-download", name="full")
    assert code == 0, err
    _same_output(served[1], tmp_path / "full")


def test_inspect_and_verify_read_https(served, server, tmp_path, capsys):
    url = f"{server.url}/bert/model.ckpt-1000"
    code, out, err = run_cli(["inspect", url, "--cache-dir", tmp_path / "c", "--json"], capsys)
    assert code == 0, err
    assert json.loads(out)["format"] == "tf"
    code, out, err = run_cli(["verify", url, served[1], "--no-forward", "--cache-dir", tmp_path / "c"], capsys)
    assert code == 0, err


def test_local_paths_import_nothing_remote(served):
    script = ("import sys; from ckptkit.cli import main\n"
              "try:\n    main(['inspect', sys.argv[1], '--quiet'])\nexcept SystemExit:\n    pass\n"
              "bad = [m for m in ('fsspec', 'aiohttp', 's3fs', 'gcsfs', 'ckptkit.remote.mirror') if m in sys.modules]\n"
              "print(bad)")
    out = subprocess.run([sys.executable, "-c", script, str(served[0] / "bert" / "model.ckpt-1000")],
                         capture_output=True, text=True, check=True, cwd=os.path.dirname(__file__)).stdout
    assert out.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize("folder", ["sharded", "bin"])
def test_hub_folders_over_https_convert_like_local(served, server, tmp_path, capsys, folder):
    root = served[0]
    assert len([n for n in os.listdir(root / "sharded") if n.endswith(".safetensors")]) > 1
    code, out, err = run_cli(["convert", f"{server.url}/{folder}", tmp_path / "remote", "--to", "tf1", "--quiet",
                              "--cache-dir", tmp_path / "cache"], capsys)
    assert code == 0, err
    data_gets = [p for m, p, r in server.requests if m == "GET" and p.endswith(".safetensors")]
    for shard in {p for p in data_gets}:  # header length, header, then every tensor in one coalesced range
        assert data_gets.count(shard) == 3, (shard, server.requests)
    code, out, err = run_cli(["convert", root / folder, tmp_path / "local", "--to", "tf1", "--quiet"], capsys)
    assert code == 0, err
    for name in os.listdir(tmp_path / "local"):
        if name.startswith("model.ckpt") or name.endswith(".txt"):
            assert (tmp_path / "remote" / name).read_bytes() == (tmp_path / "local" / name).read_bytes(), name


def test_distill_init_reads_only_the_student_layers(served, server, tmp_path, capsys):
    code, out, err = run_cli(["distill", "init", f"{server.url}/bert/model.ckpt-1000", tmp_path / "student",
                              "--layers", "1", "--cache-dir", tmp_path / "cache", "--quiet"], capsys)
    assert code == 0, err
    code, out, err = run_cli(["distill", "init", served[0] / "bert" / "model.ckpt-1000", tmp_path / "local",
                              "--layers", "1", "--quiet"], capsys)
    assert code == 0, err
    remote = (tmp_path / "student" / "model.safetensors").read_bytes()
    assert remote == (tmp_path / "local" / "model.safetensors").read_bytes()
    assert server.bytes_served < 0.8 * _kept_bytes(served[0])  # one of two layers: less than the weights


def test_sharded_tf_over_https(served, server, tmp_path, capsys):
    root = served[0]
    assert len([n for n in os.listdir(root / "tf3") if ".data-" in n]) == 3
    code, out, err = run_cli(["convert", f"{server.url}/tf3/model.ckpt-1000", tmp_path / "remote", "--quiet",
                              "--cache-dir", tmp_path / "cache"], capsys)
    assert code == 0, err
    code, out, err = run_cli(["convert", root / "tf3" / "model.ckpt-1000", tmp_path / "local", "--quiet"], capsys)
    assert code == 0, err
    _same_output(tmp_path / "local", tmp_path / "remote")
    small = sum(os.path.getsize(root / "tf3" / n) for n in os.listdir(root / "tf3") if ".data-" not in n)
    kept = _kept_bytes(root) - sum(os.path.getsize(root / "bert" / n) for n in os.listdir(root / "bert")
                                   if ".data-" not in n)
    assert server.bytes_served <= 1.10 * (kept + small)
    server.faults.status[r"tf3/model\.ckpt-1000\.data-00001-of-00003"] = 404
    code, out, err = run_cli(["convert", f"{server.url}/tf3/model.ckpt-1000", tmp_path / "gone", "--quiet",
                              "--cache-dir", tmp_path / "cache2"], capsys)
    assert code == 2 and err.count("\n") == 1, err
    assert f"{server.url}/tf3/model.ckpt-1000.data-00001-of-00003: not found (404)" in err
    assert not (tmp_path / "gone").exists()


def test_unknown_host_is_not_retried():
    """A DNS failure (offline, or a typo in the host) fails at once: retrying cannot resolve it."""
    import socket

    from ckptkit.remote.filesystem import translate

    try:
        try:
            raise socket.gaierror(-2, "Name or service not known")
        except socket.gaierror as e:
            raise ConnectionError("Cannot connect to host storage.googleapis.com:443") from e
    except ConnectionError as error:
        fatal = translate(error, "gs://bucket/model.ckpt-1", "gs")
    assert fatal is not None and "cannot resolve the server's host name" in str(fatal)
    assert translate(ConnectionResetError("reset by peer"), "https://x/y", "https") is None
