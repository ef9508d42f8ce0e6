"""Fuzzing ckptkit's own PyTorch ``.bin`` reader (zip entries + the code-free state-dict unpickler):
mutated files, mutated ``data.pkl`` pickles and pickles of wild calls to the allowed globals. Through
tests/fuzz_runner.py (a child process, CKPTKIT_FUZZ_CASES cases per target, 5 s per case, address space
capped): only CkptkitError may come out, and no case may run code (a marker file would appear)."""

from __future__ import annotations

import io
import itertools
import os
import pickle
import zipfile

import pytest

from tests.fuzz_runner import Case, mutate_bytes, run_fuzz

_NUMBERS = itertools.count()


def _base(folder: str) -> str:
    """A torch.save zip with views, strides, several dtypes and tied tensors."""
    import torch

    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    state = {"w": base, "t": base.t(), "win": base[1:3, 2:5], "b": torch.ones(3, dtype=torch.bfloat16),
             "i": torch.arange(5), "s": torch.tensor(2.5), "e": torch.zeros(0, 2), "tie": base}
    path = os.path.join(folder, "base.bin")
    torch.save(state, path)
    return path


def _entries(path: str) -> list[tuple[str, bytes]]:
    with zipfile.ZipFile(path) as z:
        return [(i.filename, z.read(i)) for i in z.infolist()]


def _zip(entries: list[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for name, data in entries:
            z.writestr(name, data)
    return buffer.getvalue()


def _read_everything(path: str, marker: str) -> None:
    from ckptkit.converters.formats.torch_bin import open_torch_bin

    try:
        with open_torch_bin(path) as ckpt:
            _ = ckpt.extras
            for tensor in ckpt.values():
                tensor.read()
    finally:
        if os.path.exists(marker):
            raise AssertionError("a pickle ran code")


def _case(workdir: str, content: bytes, description: str) -> Case:
    path, marker = os.path.join(workdir, f"case-{next(_NUMBERS)}.bin"), os.path.join(workdir, "ran")

    def run() -> None:
        with open(path, "xb") as f:  # a new file: truncating one costs ~2 ms on overlay file systems
            f.write(content)
        try:
            _read_everything(path, marker)
        finally:
            os.remove(path)

    return Case(run, description)


def torch_file_cases(workdir: str, rng):
    """The whole .bin file mutated byte by byte (central directory, local headers, data, pickle)."""
    original = open(_base(workdir), "rb").read()
    while True:
        yield _case(workdir, mutate_bytes(original, rng), "mutated file")


def torch_pickle_cases(workdir: str, rng):
    """data.pkl mutated byte by byte inside an otherwise valid zip."""
    entries = _entries(_base(workdir))
    while True:
        mutated = [(n, mutate_bytes(d, rng) if n.endswith("data.pkl") else d) for n, d in entries]
        yield _case(workdir, _zip(mutated), "mutated data.pkl")


_WILD = (0, 1, -1, 2**31, 2**63 - 1, 2**64, 10**12, "0", "1", "cpu", b"0", None, True, 2.5, (), (1,), (2, 3),
         (3, 1), (-1,), (2**62, 2**62), [1], {"a": 1}, "x" * 40)


def _wild(rng):
    return rng.choice(_WILD)


class _Ref:
    """The global MODULE.NAME called with ARGS, as pickle opcodes (written by hand: nothing is imported)."""

    def __init__(self, module: str, name: str, args: tuple = ()):
        self.module, self.name, self.args = module, name, args


class _Pid:
    """A persistent id (torch's storage tuple)."""

    def __init__(self, value):
        self.value = value


def _encode(value) -> bytes:
    """Pickle opcodes for ``value`` (primitives, containers, :class:`_Ref` calls, :class:`_Pid` ids)."""
    if isinstance(value, _Ref):
        call = b"c" + value.module.encode() + b"\n" + value.name.encode() + b"\n"
        return call + b"(" + b"".join(map(_encode, value.args)) + b"tR"
    if isinstance(value, _Pid):
        return _encode(value.value) + b"Q"
    if value is None or isinstance(value, bool):
        return {None: b"N", True: b"\x88", False: b"\x89"}[value]
    if isinstance(value, int):
        return b"I" + str(value).encode() + b"\n"
    if isinstance(value, float):
        return b"F" + repr(value).encode() + b"\n"
    if isinstance(value, str):
        data = value.encode("utf-8", "surrogatepass")
        return b"X" + len(data).to_bytes(4, "little") + data
    if isinstance(value, bytes):
        return b"C" + bytes([len(value)]) + value if len(value) < 256 else b"\x8e" + len(value).to_bytes(8, "little") + value
    if isinstance(value, tuple):
        return b"(" + b"".join(map(_encode, value)) + b"t"
    if isinstance(value, list):
        return b"](" + b"".join(map(_encode, value)) + b"e"
    if isinstance(value, dict):
        return b"}(" + b"".join(_encode(k) + _encode(v) for k, v in value.items()) + b"u"
    raise TypeError(type(value))


def _wild_pickle(rng, marker: str) -> bytes:
    from ckptkit.converters.formats.torch_zip import GLOBALS

    names = sorted(GLOBALS) + [("posix", "system"), ("builtins", "eval"), ("torch", "load"),
                               ("torch", "QInt8Storage"), ("torch", "float8_e8m0fnu"), ("__builtin__", "set")]
    storage_types = [k for k in GLOBALS if k[1].endswith("Storage")]

    def value(depth: int = 0):
        roll = rng.random()
        if depth < 3 and roll < 0.4:
            module, name = rng.choice(names)
            args = ("touch " + marker,) if name == "system" else tuple(value(depth + 1) for _ in range(rng.randint(0, 8)))
            return _Ref(module, name, args)
        if depth < 4 and roll < 0.6:
            kind = _Ref(*rng.choice(storage_types)) if rng.random() < 0.9 else _wild(rng)
            return _Pid(("storage", kind, rng.choice(["0", "1", "9", 0, b"0"]), "cpu", _wild(rng)))
        return _wild(rng)

    return b"\x80\x02" + _encode({f"k{i}": value() for i in range(rng.randint(1, 4))}) + b"."


def torch_wild_calls_cases(workdir: str, rng):
    """Structurally valid pickles calling the allowed globals (and some forbidden ones) with wild arguments."""
    entries = _entries(_base(workdir))
    marker = os.path.join(workdir, "ran")
    while True:
        pickled = _wild_pickle(rng, marker)
        yield _case(workdir, _zip([(n, pickled if n.endswith("data.pkl") else d) for n, d in entries]),
                    "wild calls in data.pkl")


@pytest.mark.parametrize("target", ["torch_file_cases", "torch_pickle_cases", "torch_wild_calls_cases"])
def test_mutated_bin_files_give_only_our_errors(target):
    summary = run_fuzz(f"tests.test_fuzz_torch_bin:{target}")
    assert summary["rejected"] > 0, summary
