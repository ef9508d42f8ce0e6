"""The Source: one object built once from what the user typed (checkpoint, companions, part folders),
its resolver table, and immutable conversion options."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from ckptkit.converters import source as source_module
from ckptkit.converters.source import RESOLVERS, open_source, resolve_location
from ckptkit.errors import CheckpointNotFoundError, UsageError

REPO = Path(__file__).resolve().parent.parent
TINY_BERT = REPO / "examples" / "tiny-bert"


@pytest.fixture
def tiny(tmp_path) -> Path:
    folder = tmp_path / "ckpt"
    shutil.copytree(TINY_BERT, folder)
    return folder


def _count_listdir(monkeypatch) -> list[str]:
    calls: list[str] = []
    real = os.listdir

    def counting(path="."):
        calls.append(os.path.abspath(path))
        return real(path)

    monkeypatch.setattr(source_module.os, "listdir", counting)
    return calls


def test_companions_found_once(tiny, monkeypatch):
    (tiny / "vocab.model").write_bytes(b"spm")
    calls = _count_listdir(monkeypatch)
    with open_source(str(tiny)) as source:
        first = (source.config_file(("bert_config.json",)), source.vocab_file(), source.spm_file())
        listed = len(calls)
        for _ in range(3):
            again = (source.config_file(("bert_config.json",)), source.vocab_file(), source.spm_file())
        assert again == first
        assert first == (str(tiny / "bert_config.json"), str(tiny / "vocab.txt"), str(tiny / "vocab.model"))
        assert len(calls) == listed <= 2  # the folder and its parent, listed once each
        assert source.checkpoint.format == "tf" and source.checkpoint is source.checkpoint


def test_named_companions_win_and_are_checked_at_open(tiny, tmp_path):
    other = tmp_path / "my_vocab.txt"
    other.write_text("[PAD]\n")
    with open_source(tiny, vocab=str(other)) as source:
        assert source.vocab_file() == str(other)
    with pytest.raises(CheckpointNotFoundError, match="no_such_config.json: file not found"):
        open_source(tiny, config=str(tmp_path / "no_such_config.json"))


def test_part_folders_found_once(tmp_path):
    for part in ("discriminator", "generator"):
        (tmp_path / "parts" / part).mkdir(parents=True)
        (tmp_path / "parts" / part / "config.json").write_text("{}")
    source = open_source(tmp_path / "parts")
    assert source.part_folders == {p: str(tmp_path / "parts" / p) for p in ("discriminator", "generator")}
    assert source.files == list(source.part_folders.values())
    assert source.part("generator").path == str(tmp_path / "parts" / "generator")
    assert open_source(TINY_BERT).part_folders is None


@pytest.mark.parametrize("url", ["ftp://bucket/bert/model.ckpt-100", "sftp://b/k", "abfs://me/tiny-bert"])
def test_resolver_refuses_unknown_location_kinds(url):
    with pytest.raises(UsageError) as caught:
        open_source(url)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(url) and f"{url.split(':')[0]}://" in message


def test_open_checkpoint_goes_through_the_resolver():
    from ckptkit.converters.formats import open_checkpoint

    with pytest.raises(UsageError, match=r"^ftp://me/tiny: ckptkit cannot read ftp:// locations"):
        open_checkpoint("ftp://me/tiny")


def test_resolver_table_is_the_plug_in_point(tmp_path, monkeypatch):
    monkeypatch.setitem(RESOLVERS, "mem", lambda location: str(TINY_BERT))
    assert resolve_location("mem://tiny") == str(TINY_BERT)
    with open_source("mem://tiny") as source:
        assert source.location == "mem://tiny" and source.checkpoint.format == "tf"


@pytest.mark.parametrize("args", [["inspect", "ftp://bucket/model.ckpt"],
                                  ["convert", "ftp://bucket/model.ckpt", "OUT"],
                                  ["convert", "ftp://bucket/model.ckpt", "OUT", "--dry-run"],
                                  ["verify", "ftp://bucket/model.ckpt", "OUT"]])
def test_cli_names_the_url(args, tmp_path, capsys, monkeypatch):
    from ckptkit.cli import main

    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as caught:
        main(args)
    err = capsys.readouterr().err
    assert caught.value.code == 2 and err.count("\n") == 1
    assert err.startswith("ckptkit: error: ftp://bucket/model.ckpt: ckptkit cannot read ftp:// locations")
    assert not (tmp_path / "OUT").exists()


# ------------------------------------------------------------------ immutable options


def test_one_options_object_serves_two_sources(tmp_path):
    """Before: converting the TF source set ``options.to = "hf"``, so the second source (a hub folder) was
    refused with '--to hf needs a TF checkpoint'."""
    import dataclasses

    from ckptkit.converters.convert import ConversionOptions, convert_checkpoint

    options = ConversionOptions(max_shard_size="1MB")
    first = convert_checkpoint(str(TINY_BERT), str(tmp_path / "hf"), options=options)
    second = convert_checkpoint(str(tmp_path / "hf"), str(tmp_path / "tf"), options=options)
    assert (first.plan.info["target"], second.plan.info["target"]) == ("hf", "tf1")
    assert options.to is None and options.max_shard_size == 10**6
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.to = "tf1"


def test_keyword_overrides_leave_the_options_alone(tmp_path):
    from ckptkit.converters.convert import ConversionOptions, dry_run_conversion

    options = ConversionOptions()
    report = dry_run_conversion(str(TINY_BERT), None, options=options, dtype="float16")
    assert {t.dtype.name for t in report.plan.outputs} == {"float16"} and options.dtype is None


def test_options_are_checked_when_built_before_anything_is_written(tmp_path):
    from ckptkit.converters.convert import ConversionOptions

    with pytest.raises(UsageError, match="bad size '2 lightyears'"):
        ConversionOptions(max_shard_size="2 lightyears")
    with pytest.raises(UsageError, match="--max-shard-size is 0 bytes"):
        ConversionOptions(max_shard_size="0MB")
    with pytest.raises(UsageError, match="--num-heads is 0"):
        ConversionOptions(num_heads=0)
