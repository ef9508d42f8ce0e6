"""PyTorch ``.bin`` sources read without a memory map (issue 12 item 3).

A ``.bin`` zip is read by ckptkit itself: the zip's entries, ``data.pkl`` through an unpickler that runs
no code, the tensor bytes with positioned reads. A file truncated or rewritten while it is read is one
line (exit 2) naming the file, never SIGBUS, even when the truncation lands right after every size
check; the tensors read are those ``torch.load`` returns, byte for byte.
"""

from __future__ import annotations

import io
import pickle
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from ckptkit.converters.formats.torch_bin import open_torch_bin, save_torch_bin, tensor_to_numpy
from ckptkit.errors import CkptkitError, CorruptCheckpointError, UnsafeCheckpointError, UnsupportedFormatError
from support.cli import run_cli

REPO = Path(__file__).resolve().parent.parent

# Makes os.stat/os.fstat report the victim's original size: the truncation then lands right after any
# size check could notice it (the race a check-then-copy reader loses; its memory map then SIGBUSes).
SIZE_CHECKS_SEE_NOTHING = """
    import os, sys
    victim = sys.argv[1]
    original = os.stat(victim)
    real_stat, real_fstat = os.stat, os.fstat

    def unchanged(result):
        if (result.st_dev, result.st_ino) != (original.st_dev, original.st_ino):
            return result
        fields = list(result)
        fields[6] = original.st_size
        return os.stat_result(fields)

    os.stat = lambda *a, **k: unchanged(real_stat(*a, **k))
    os.fstat = lambda fd: unchanged(real_fstat(fd))

    def shrink():
        if sys.argv[2] == "truncate":
            os.truncate(victim, 4096)
        else:  # rewritten in place, shorter
            with open(victim, "r+b") as f:
                f.truncate(0)
                f.write(b"PK" * 512)
"""

READ_AFTER_SHRINKING = SIZE_CHECKS_SEE_NOTHING + """
    from ckptkit.converters.formats import open_checkpoint
    from ckptkit.errors import CorruptCheckpointError
    with open_checkpoint(victim) as ckpt:
        shrink()
        try:
            ckpt["big"].read()
        except CorruptCheckpointError as e:
            print("clean:", e)
"""

CLI_SHRINKING_AT_FIRST_READ = SIZE_CHECKS_SEE_NOTHING + """
    from ckptkit.converters import tensors
    from ckptkit.cli import main
    real_read = tensors.LazyTensor.read
    def read(self):
        if sys.argv[2] != "done":
            shrink()
            sys.argv[2] = "done"
        return real_read(self)
    tensors.LazyTensor.read = read
    main(sys.argv[3:])
"""


def run_child(code: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], cwd=REPO, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize("how", ["truncate", "rewrite"])
def test_bin_shrinking_right_after_the_size_checks_is_a_clean_error(tmp_path, how):
    """Was SIGBUS (exit -7): the size check passed, then the mapped pages were gone."""
    path = tmp_path / "pytorch_model.bin"
    save_torch_bin(str(path), {"big": np.arange(1 << 20, dtype=np.float32), "small": np.ones(3, np.float32)})
    proc = run_child(READ_AFTER_SHRINKING, str(path), how)
    assert proc.returncode == 0, f"exit {proc.returncode} (-7 is SIGBUS): {proc.stderr[-2000:]}"
    said = {"truncate": "truncated", "rewrite": "zip entry 'pytorch_model.bin/data/0' has no local header"}[how]
    assert proc.stdout.startswith(f"clean: {path}: {said}"), proc.stdout


@pytest.fixture(scope="module")
def bin_folder(tmp_path_factory) -> Path:
    """tiny-bert as a PyTorch hub folder (pytorch_model.bin written by torch.save)."""
    root = tmp_path_factory.mktemp("bin")
    code, _, _ = _run(["convert", REPO / "examples" / "tiny-bert", root / "hub", "--quiet", "--format", "pytorch"])
    assert code == 0 and (root / "hub" / "pytorch_model.bin").is_file()
    return root / "hub"


def _run(argv) -> tuple[int, str, str]:
    proc = subprocess.run([sys.executable, "-m", "ckptkit", *map(str, argv)], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    return proc.returncode, proc.stdout, proc.stderr


@pytest.mark.parametrize("how", ["truncate", "rewrite"])
def test_cli_bin_shrinking_mid_run_is_one_line_and_leaves_nothing(bin_folder, tmp_path, how):
    src, work = tmp_path / "src", tmp_path / "work"
    shutil.copytree(bin_folder, src)
    work.mkdir()
    victim = src / "pytorch_model.bin"
    proc = run_child(CLI_SHRINKING_AT_FIRST_READ, str(victim), how, "convert", str(src), str(work / "out"),
                     "--to", "tf1")
    assert proc.returncode == 2, f"exit {proc.returncode} (-7 is SIGBUS): {proc.stderr[-2000:]}"
    assert proc.stderr.startswith(f"ckptkit: error: {victim}: truncated") and proc.stderr.count("\n") == 1, \
        proc.stderr
    assert list(work.iterdir()) == []  # no output folder, no temporary left behind


def _state_dict() -> dict:
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    state = {
        "plain": torch.randn(3, 5), "transposed": base.t(), "window": base[1:3, 2:5], "base": base,
        "every_other": torch.arange(10, dtype=torch.int64)[::2], "expanded": torch.ones(3, 1).expand(3, 4),
        "scalar": torch.tensor(3.5), "empty": torch.zeros(0, 3), "bool": torch.tensor([True, False, True]),
        "bf16": torch.randn(7, dtype=torch.bfloat16), "fp16": torch.randn(3, dtype=torch.float16),
        "fp8": torch.ones(4).to(torch.float8_e5m2), "u16": torch.arange(5).to(torch.uint16),
        "int8": torch.tensor([-3, 4], dtype=torch.int8), "f64": torch.randn(2, dtype=torch.float64),
        "complex": torch.randn(2, dtype=torch.complex64), "param": torch.nn.Parameter(torch.ones(2)),
    }
    state["tied"] = state["plain"]
    return state


def _same_as_torch(path: Path) -> list[str]:
    reference = torch.load(path, weights_only=True, map_location="cpu")
    reference = reference.get("state_dict", reference)
    with open_torch_bin(str(path)) as ckpt:
        assert list(ckpt) == [k for k, v in reference.items() if isinstance(v, torch.Tensor)]
        for name, lazy in ckpt.items():
            array, expected = lazy.read(), tensor_to_numpy(reference[name])
            assert (array.dtype, array.shape) == (expected.dtype, expected.shape), name
            assert array.tobytes() == expected.tobytes(), name
        return sorted(map(sorted, ckpt.extras["shared"]))


def test_bin_tensors_are_those_torch_load_returns(tmp_path):
    """Views with offsets and strides, 0-d and empty tensors, every dtype, Parameters, tied weights."""
    torch.save(_state_dict(), tmp_path / "a.bin")
    assert _same_as_torch(tmp_path / "a.bin") == [["plain", "tied"]]
    torch.save({"epoch": 3, "state_dict": {"w": torch.ones(2, 2).t()}, "note": "x"}, tmp_path / "b.bin")
    assert _same_as_torch(tmp_path / "b.bin") == []


def test_zip_bin_is_read_without_torch(tmp_path):
    """Opening and reading a .bin needs no torch (and imports none): it used torch.load(mmap=True)."""
    torch.save(_state_dict(), tmp_path / "a.bin")
    proc = run_child("""
        import sys
        sys.modules["torch"] = None  # importing torch now fails
        from ckptkit.converters.formats.torch_bin import open_torch_bin
        with open_torch_bin(sys.argv[1]) as ckpt:
            print(ckpt["window"].read().tolist(), ckpt["bf16"].read().dtype)
    """, str(tmp_path / "a.bin"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[[8.0, 9.0, 10.0], [14.0, 15.0, 16.0]] bfloat16"


# ------------------------------------------------------------ damaged or hostile zips: one line, nothing runs

class _RunsCode:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


def _rezip(path: Path, *, replace: dict[str, bytes] | None = None, drop: str = "",
           compress: str = "") -> None:
    """Rewrite the zip at ``path``: entries replaced or dropped, the one ending in ``compress`` deflated."""
    with zipfile.ZipFile(path) as old:
        entries = [(i.filename, old.read(i)) for i in old.infolist()]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as new:
        for name, data in entries:
            if drop and name.endswith(drop):
                continue
            data = next((v for k, v in (replace or {}).items() if name.endswith(k)), data)
            method = zipfile.ZIP_DEFLATED if compress and name.endswith(compress) else zipfile.ZIP_STORED
            new.writestr(name, data, compress_type=method)
    path.write_bytes(buffer.getvalue())


def _hostile(path: Path, kind: str, marker: Path) -> None:
    torch.save({"w": torch.arange(6, dtype=torch.float32).reshape(2, 3)}, path)
    edits = {
        "code execution": dict(replace={"data.pkl": pickle.dumps({"w": _RunsCode(str(marker))}, protocol=2)}),
        "code in a nested value": dict(replace={"data.pkl": pickle.dumps(
            {"w": [1, {"x": _RunsCode(str(marker))}]}, protocol=2)}),
        "compressed storage": dict(compress="data/0"),
        "missing storage": dict(drop="data/0"),
        "storage too small": dict(replace={"data/0": b"\0" * 8}),
        "not a pickle": dict(replace={"data.pkl": b"\x80\x02garbage"}),
        "big-endian": dict(replace={"byteorder": b"big"}),
        "not a state dict": dict(replace={"data.pkl": pickle.dumps([1, 2], protocol=2)}),
        "bytearray bomb": dict(replace={"data.pkl": b"\x80\x02c__builtin__\nbytearray\nJ\x00\x00\x00\x7f\x85R."}),
    }
    _rezip(path, **edits[kind])


HOSTILE = {  # kind: (error class, text in the one line)
    "code execution": (UnsafeCheckpointError, "refused to unpickle: it needs code execution beyond tensors "
                                              "(global posix.system)"),
    "code in a nested value": (UnsafeCheckpointError, "(global posix.system)"),
    "compressed storage": (UnsupportedFormatError, "tensor 'w': its storage is deflate-compressed in the zip"),
    "missing storage": (CorruptCheckpointError, "tensor 'w': its storage data/0 is missing"),
    "storage too small": (CorruptCheckpointError, "tensor 'w' of shape [2, 3] reaches past its storage"),
    "not a pickle": (CorruptCheckpointError, "data.pkl is not a readable state dict"),
    "big-endian": (UnsupportedFormatError, "a big-endian PyTorch checkpoint"),
    "not a state dict": (CorruptCheckpointError, "holds a list, not a state dict"),
    "bytearray bomb": (CorruptCheckpointError, "bytearray() of something other than bytes"),
}


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_damaged_or_hostile_bin_is_one_line_and_runs_nothing(tmp_path, capsys, kind):
    path, marker = tmp_path / "pytorch_model.bin", tmp_path / "ran"
    _hostile(path, kind, marker)
    error, text = HOSTILE[kind]
    with pytest.raises(error, match=None) as caught:
        with open_torch_bin(str(path)) as ckpt:
            ckpt["w"].read()
    assert text in str(caught.value) and str(caught.value).startswith(str(path))
    code, out, err = run_cli(["inspect", path], capsys)
    assert code == 2 and err.startswith(f"ckptkit: error: {path}: ") and text in err and err.count("\n") == 1, err
    assert not marker.exists()


def test_legacy_non_zip_bin_still_reads(tmp_path):
    """A pre-1.6 file (not a zip) is loaded whole by torch.load(weights_only=True), as before."""
    torch.save({"w": torch.arange(4.0).reshape(2, 2).t()}, tmp_path / "old.bin", _use_new_zipfile_serialization=False)
    assert not zipfile.is_zipfile(tmp_path / "old.bin")
    with open_torch_bin(str(tmp_path / "old.bin")) as ckpt:
        assert ckpt["w"].read().tolist() == [[0.0, 2.0], [1.0, 3.0]]
    assert issubclass(UnsafeCheckpointError, CkptkitError)
