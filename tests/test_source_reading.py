"""Reading sources safely (issue 12 items 3 and 10).

Item 3: a source truncated while it is read ends in one line (exit 2) naming the file, with nothing
left behind, never SIGBUS (exit 135, which Python cannot catch). Each run that could crash runs in
a child process, so a SIGBUS fails the test instead of killing pytest.
Item 10: damaged TF indexes and index jsons give clean errors, fast.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from ckptkit.cli import main
from ckptkit.converters.formats import open_checkpoint
from ckptkit.converters.formats.safetensors_io import open_safetensors, save_safetensors
from ckptkit.converters.formats.tf1 import open_tf_checkpoint, write_tf_checkpoint
from ckptkit.converters.formats.tf1.messages import decode_entry, decode_header, encode_entry, encode_header
from ckptkit.converters.formats.tf1.table import build_table, read_table
from ckptkit.errors import CheckpointNotFoundError, CorruptCheckpointError, UnsupportedFormatError
from support.cli import run_cli

REPO = Path(__file__).resolve().parent.parent
TINY_BERT = REPO / "examples" / "tiny-bert"


def run_child(code: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], cwd=REPO, capture_output=True,
                          text=True, timeout=120)


# ------------------------------------------------------------ item 3: truncated while read

def _make_source(kind: str, folder: Path) -> tuple[str, list[str]]:
    """A source of ``kind`` with a 4 MB tensor: (what to open, the files to truncate)."""
    big = {"big": np.arange(1 << 20, dtype=np.float32), "small": np.ones(3, np.float32)}
    if kind == "tf":
        prefix = write_tf_checkpoint(folder / "m", big, write_state=False)
        return prefix, [f"{prefix}.data-00000-of-00001"]
    if kind == "safetensors":
        save_safetensors(str(folder / "m.safetensors"), big)
        return str(folder / "m.safetensors"), [str(folder / "m.safetensors")]
    if kind == "sharded safetensors":
        save_safetensors(str(folder / "a.safetensors"), {"big": big["big"]})
        save_safetensors(str(folder / "b.safetensors"), {"small": big["small"]})
        (folder / "m.safetensors.index.json").write_text(json.dumps(
            {"weight_map": {"big": "a.safetensors", "small": "b.safetensors"}}))
        return str(folder / "m.safetensors.index.json"), [str(folder / "a.safetensors")]
    from ckptkit.converters.formats.torch_bin import save_torch_bin

    save_torch_bin(str(folder / "pytorch_model.bin"), big)
    return str(folder / "pytorch_model.bin"), [str(folder / "pytorch_model.bin")]


@pytest.mark.parametrize("kind", ["tf", "safetensors", "sharded safetensors", "pytorch"])
def test_source_truncated_after_open_is_a_clean_error(tmp_path, kind):
    """Open (metadata checked against the sizes then), truncate the data, then read: was SIGBUS."""
    source, files = _make_source(kind, tmp_path)
    proc = run_child("""
        import os, sys
        from ckptkit.converters.formats import open_checkpoint
        from ckptkit.errors import CorruptCheckpointError
        with open_checkpoint(sys.argv[1]) as ckpt:
            for path in sys.argv[2:]:
                os.truncate(path, 4096)
            try:
                ckpt["big"].read()
            except CorruptCheckpointError as e:
                print("clean:", e)
    """, source, *files)
    assert proc.returncode == 0, f"exit {proc.returncode} (-7 is SIGBUS): {proc.stderr[-2000:]}"
    assert proc.stdout.startswith(f"clean: {files[0]}: truncated"), proc.stdout


def test_tf_data_truncated_in_the_middle_of_a_read(tmp_path):
    """The file shrinks after the reader obtained the tensor's bytes but before it checks them (the
    CRC): a memory map would SIGBUS there; the bytes read stay valid and complete."""
    source, files = _make_source("tf", tmp_path)
    proc = run_child("""
        import os, sys
        import numpy as np
        from ckptkit.converters.formats.tf1 import open_tf_checkpoint, reader

        real_crc32c = reader.crc32c
        def crc32c_after_truncating(data):
            os.truncate(sys.argv[2], 0)
            return real_crc32c(data)
        reader.crc32c = crc32c_after_truncating
        with open_tf_checkpoint(sys.argv[1]) as ckpt:
            array = ckpt["big"].read()
        assert np.array_equal(array, np.arange(1 << 20, dtype=np.float32))
        print("intact")
    """, source, files[0])
    assert (proc.returncode, proc.stdout.strip()) == (0, "intact"), f"exit {proc.returncode}: {proc.stderr[-2000:]}"


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[str, Path]:
    """tiny-bert as a TF folder, a safetensors hub folder and a PyTorch hub folder."""
    root = tmp_path_factory.mktemp("sources")
    shutil.copytree(TINY_BERT, root / "tf")
    try:
        main(["convert", str(root / "tf"), str(root / "hub"), "--quiet"])
    except SystemExit as exited:
        assert exited.code in (0, None)
    shutil.copytree(root / "hub", root / "hub-bin")
    from ckptkit.converters.formats.torch_bin import save_torch_bin

    with open_safetensors(str(root / "hub" / "model.safetensors")) as ckpt:
        save_torch_bin(str(root / "hub-bin" / "pytorch_model.bin"), {n: t.read() for n, t in ckpt.items()})
    os.remove(root / "hub-bin" / "model.safetensors")
    return {"tf": root / "tf", "hub": root / "hub", "hub-bin": root / "hub-bin"}


TRUNCATE_ON_FIRST_READ = """
    import os, sys
    from ckptkit.converters import tensors
    from ckptkit.cli import main

    real_read = tensors.LazyTensor.read
    def read(self):
        if sys.argv[1] != "done":
            os.truncate(sys.argv[1], 1024)
            sys.argv[1] = "done"
        return real_read(self)
    tensors.LazyTensor.read = read
    main(sys.argv[2:])
"""

MID_RUN = {  # case: (source, file truncated at the first tensor read, command after the source)
    "convert tf -> hub": ("tf", "model.ckpt-20000.data-00000-of-00001", ["convert", "{src}", "{out}"]),
    "convert safetensors -> tf1": ("hub", "model.safetensors", ["convert", "{src}", "{out}", "--to", "tf1"]),
    "convert pytorch -> tf1": ("hub-bin", "pytorch_model.bin", ["convert", "{src}", "{out}", "--to", "tf1"]),
    "inspect --check safetensors": ("hub", "model.safetensors", ["inspect", "{src}", "--check"]),
}


@pytest.mark.parametrize("case", sorted(MID_RUN))
def test_cli_source_truncated_mid_run(sources, tmp_path, case):
    name, victim, command = MID_RUN[case]
    src = tmp_path / "src"
    shutil.copytree(sources[name], src)
    work = tmp_path / "work"
    work.mkdir()
    argv = [a.format(src=src, out=work / "out") for a in command]
    proc = run_child(TRUNCATE_ON_FIRST_READ, str(src / victim), *argv)
    assert proc.returncode == 2, f"exit {proc.returncode} (-7 is SIGBUS): {proc.stderr[-2000:]}"
    assert proc.stderr.startswith(f"ckptkit: error: {src / victim}: truncated") and proc.stderr.count("\n") == 1, \
        proc.stderr
    assert list(work.iterdir()) == []  # no output folder, no temporary left behind


# ------------------------------------------------------------ item 10: damaged TF index, index json

def _rewrite_index(prefix: str, edit) -> None:
    entries = dict(read_table(open(f"{prefix}.index", "rb").read()))
    edit(entries)
    with open(f"{prefix}.index", "wb") as f:
        f.write(build_table(sorted(entries.items())))


@pytest.mark.parametrize("shape,message", [((1,) * 65, "65 dimensions; NumPy arrays have at most 64"),
                                           ((2**62, 2**62, 0), "its size passes what NumPy can index")])
def test_tf_shape_numpy_cannot_hold_is_a_clean_error(tmp_path, capsys, shape, message):
    prefix = write_tf_checkpoint(tmp_path / "m", {"w": np.float32(1.5)}, write_state=False)

    def reshape(entries):
        entry = decode_entry(entries[b"w"])
        entries[b"w"] = encode_entry(dataclasses.replace(entry, shape=shape, size=4 if all(shape) else 0))

    _rewrite_index(prefix, reshape)
    with pytest.raises(UnsupportedFormatError, match=f"tensor 'w' of shape .*: {message}"):
        with open_tf_checkpoint(prefix) as ckpt:
            ckpt["w"].read()
    code, _, err = run_cli(["inspect", prefix, "--check"], capsys)
    assert code == 2 and err.startswith(f"ckptkit: error: {prefix}.index: tensor 'w'") and err.count("\n") == 1


def test_header_claiming_850000_shards_fails_fast(tmp_path, capsys):
    prefix = write_tf_checkpoint(tmp_path / "m", {"w": np.float32(1.5)}, write_state=False)

    def many_shards(entries):
        entries[b""] = encode_header(dataclasses.replace(decode_header(entries[b""]), num_shards=850_000))

    _rewrite_index(prefix, many_shards)
    start = time.perf_counter()
    with pytest.raises(CheckpointNotFoundError, match="data shard 1 of 850000 is missing") as caught:
        open_tf_checkpoint(prefix)
    assert time.perf_counter() - start < 0.1  # one directory listing (naming 850,000 shards first took 0.35-8 s)
    assert caught.value.path == f"{prefix}.data-00000-of-850000"
    code, _, err = run_cli(["inspect", prefix], capsys)
    assert code == 2 and "data shard 1 of 850000 is missing" in err and err.count("\n") == 1


def test_missing_middle_shard_is_named(tmp_path):
    prefix = write_tf_checkpoint(tmp_path / "m", {f"w{i}": np.full(4, i, np.float32) for i in range(3)},
                                 num_shards=3, write_state=False)
    os.remove(f"{prefix}.data-00001-of-00003")
    with pytest.raises(CheckpointNotFoundError, match="data shard 2 of 3 is missing"):
        open_tf_checkpoint(prefix)


@pytest.mark.parametrize("shard", ["a\x00.safetensors", "\ud800", 7, None, ["a.safetensors"], ""])
def test_index_json_with_a_bad_shard_name_is_a_clean_error(tmp_path, capsys, shard):
    save_safetensors(str(tmp_path / "a.safetensors"), {"w": np.ones(2, np.float32)})
    text = json.dumps({"weight_map": {"w": shard}})
    (tmp_path / "model.safetensors.index.json").write_text(text)
    with pytest.raises(CorruptCheckpointError, match="tensor 'w' names"):
        open_checkpoint(tmp_path / "model.safetensors.index.json")
    code, _, err = run_cli(["inspect", str(tmp_path)], capsys)
    assert code == 2 and err.startswith("ckptkit: error: ") and "tensor 'w' names" in err and err.count("\n") == 1
