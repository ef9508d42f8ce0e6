"""Remote folders beyond one listed checkpoint folder: a folder of ELECTRA part folders (discriminator/ +
generator/, each a hub folder) over https and hf://, and https folders on a server that gives no listing
(the files are then found by HEAD requests for the well-known names). Each conversion is byte-identical
to the same conversion of the local folder."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ckptkit.converters.convert import convert_checkpoint
from ckptkit.converters.formats.tf1 import write_tf_checkpoint
from support.bert import tiny_wordpiece_vocab, with_adam_slots
from support.cli import run_cli
from support.families import electra_hparams, electra_tf_variables
from support.range_server import RangeServer
from support.remote import checkpoint  # noqa: F401  (fixture)
from support.remote import kept_bytes

DIMS = dict(vocab_size=90, embedding=16, hidden=32, layers=2, heads=2, intermediate=64, max_positions=40)
TOKEN = "hf_fake_token_for_remote_parts"


@pytest.fixture(scope="module")
def served(tmp_path_factory, checkpoint) -> Path:
    """A served root: electra/ (part folders from an ELECTRA pretraining checkpoint), bert/ (the tiny TF
    checkpoint with Adam slots), hub/ (its hub folder) and sharded/ (sharded safetensors)."""
    root = tmp_path_factory.mktemp("served")
    tf = root.parent / (root.name + "-electra-tf")
    tf.mkdir()
    write_tf_checkpoint(str(tf / "model.ckpt-10"), with_adam_slots(electra_tf_variables(**DIMS, generator_hidden=24)))
    (tf / "hparams.json").write_text(json.dumps(electra_hparams(**DIMS, generator_hidden=24)))
    (tf / "vocab.txt").write_text("\n".join(tiny_wordpiece_vocab(DIMS["vocab_size"])) + "\n")
    convert_checkpoint(str(tf), str(root / "electra"))
    assert {"discriminator", "generator"} <= set(os.listdir(root / "electra"))
    (root / "bert").mkdir()
    for name in os.listdir(checkpoint[0]):
        (root / "bert" / name).write_bytes((checkpoint[0] / name).read_bytes())
    os.symlink(checkpoint[1], root / "hub")
    convert_checkpoint(str(checkpoint[1]), str(root / "sharded"), to="safetensors", max_shard_size="30KB")
    convert_checkpoint(str(checkpoint[1]), str(root / "bin"), to="pytorch")
    return root


def _convert(source, out: Path, capsys, *extra) -> None:
    code, _, err = run_cli(["convert", source, out, "--quiet", *extra], capsys)
    assert code == 0, err


def _same_files(a: Path, b: Path) -> None:
    names = sorted(p.relative_to(a).as_posix() for p in a.rglob("*") if p.is_file() and p.name != "ckptkit.json"
                   and p.name != "README.md")
    assert names and names == sorted(p.relative_to(b).as_posix() for p in b.rglob("*")
                                     if p.is_file() and p.name not in ("ckptkit.json", "README.md"))
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_electra_part_folders_over_https(served, tmp_path, capsys):
    _convert(served / "electra", tmp_path / "local", capsys, "--to", "tf1")
    with RangeServer(str(served)) as server:
        _convert(f"{server.url}/electra", tmp_path / "remote", capsys, "--to", "tf1", "--cache-dir", tmp_path / "c")
        server.faults.listing_status = 404  # the same folder on a server without listings: probed
        _convert(f"{server.url}/electra/", tmp_path / "probed", capsys, "--to", "tf1", "--cache-dir", tmp_path / "c2")
        code, _, err = run_cli(["convert", f"{server.url}/nothing/", tmp_path / "none", "--quiet",
                                "--cache-dir", tmp_path / "c3"], capsys)
    assert code == 2 and err.count("\n") == 1 and "no files there (404)" in err and "/nothing/" in err, err
    assert not (tmp_path / "none").exists()
    _same_files(tmp_path / "local", tmp_path / "remote")
    _same_files(tmp_path / "local", tmp_path / "probed")


def test_electra_part_folders_over_hf(served, tmp_path, capsys, monkeypatch):
    from huggingface_hub import constants

    from fake_hub import FakeHub

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    _convert(served / "electra", tmp_path / "local", capsys, "--to", "tf1")
    with FakeHub(token=TOKEN) as fake:
        monkeypatch.setenv("HF_ENDPOINT", fake.url)
        monkeypatch.setenv("HF_TOKEN", TOKEN)
        repo = fake.add_repo("me/electra")
        repo.branches["main"] = {f"pretrained/{p.relative_to(served / 'electra').as_posix()}": p.read_bytes()
                                 for p in (served / "electra").rglob("*") if p.is_file()}
        _convert("hf://me/electra/pretrained", tmp_path / "remote", capsys, "--to", "tf1",
                 "--cache-dir", tmp_path / "c")
    _same_files(tmp_path / "local", tmp_path / "remote")


@pytest.mark.parametrize("folder, extra, status", [
    ("bert/model.ckpt-1000", [], 404), ("bert/model.ckpt-1000", [], 403), ("bert", [], 404), ("bert/", [], 403),
    ("hub", ["--to", "tf1"], 404), ("sharded", ["--to", "tf1"], 403)])
def test_https_folder_without_a_listing_is_probed(served, tmp_path, capsys, folder, extra, status):
    """nginx without autoindex answers a folder with 403, S3/CDNs with 404: the files are found by HEAD."""

    _convert(served / folder, tmp_path / "local", capsys, *extra)
    with RangeServer(str(served)) as server:
        server.faults.listing_status = status
        code, out, err = run_cli(["convert", f"{server.url}/{folder}", tmp_path / "remote", "--quiet", "--json",
                                  "--cache-dir", tmp_path / "c", *extra], capsys)
        assert code == 0, err
        listings = [p for m, p, _ in server.requests if m == "GET" and p.endswith("/")]
        served_bytes = server.bytes_served
    _same_files(tmp_path / "local", tmp_path / "remote")
    if folder.startswith("bert"):  # only the kept tensors, the index and the companions crossed
        assert served_bytes <= 1.10 * kept_bytes(served / "bert") + 64 * len(listings)
        assert json.loads(out)["remote"]["bytes_skipped"] >= 1.8 * (kept_bytes(served / "bert") * 0.9)


def test_probed_shard_refused_is_one_line_naming_it(served, tmp_path, capsys):
    with RangeServer(str(served)) as server:
        server.faults.listing_status = 404
        server.faults.status[r"\.data-"] = 403
        code, _, err = run_cli(["convert", f"{server.url}/bert", tmp_path / "out", "--quiet",
                                "--cache-dir", tmp_path / "c"], capsys)
    assert code == 2 and err.count("\n") == 1, err
    assert f"{server.url}/bert/model.ckpt-1000.data-00000-of-00001: access denied (403)" in err
    assert not (tmp_path / "out").exists()


def test_bin_over_https_fetches_only_the_tensors_read(served, tmp_path, capsys, monkeypatch):
    """A pytorch_model.bin is read by ranges like the other formats (it was downloaded whole): a one-layer
    student of a two-layer teacher reads the end of the zip, its central directory, data.pkl and the
    student's tensors only."""
    from ckptkit.converters.formats import torch_zip

    monkeypatch.setattr(torch_zip, "_WINDOW", 2048)  # the metadata read-ahead, scaled to this tiny model
    weights = served / "bin" / "pytorch_model.bin"
    code, _, err = run_cli(["distill", "init", served / "bin", tmp_path / "local", "--layers", "1", "--quiet"], capsys)
    assert code == 0, err
    with RangeServer(str(served)) as server:
        code, _, err = run_cli(["distill", "init", f"{server.url}/bin", tmp_path / "remote", "--layers", "1",
                                "--quiet", "--cache-dir", tmp_path / "c"], capsys)
        assert code == 0, err
        bin_bytes = sum(int(r.split("-")[1]) - int(r.split("=")[1].split("-")[0]) + 1
                        for m, p, r in server.requests if p.endswith(".bin") and r and m == "GET")
    assert (tmp_path / "remote" / "model.safetensors").read_bytes() == \
        (tmp_path / "local" / "model.safetensors").read_bytes()
    assert 0 < bin_bytes < 0.8 * weights.stat().st_size, (bin_bytes, weights.stat().st_size)
