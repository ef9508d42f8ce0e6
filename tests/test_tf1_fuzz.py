"""Fuzzing the TF readers: any bytes end in our error, never another exception or a hang.

Hypothesis drives the parsers piece by piece; tests/fuzz_runner.py then runs CKPTKIT_FUZZ_CASES
whole mutated checkpoints per format (index, data) in a guarded child. ``make fuzz`` runs 50,000.
"""

from __future__ import annotations

import dataclasses
import functools
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ckptkit.converters.formats.tf1 import TFCheckpointWriter, open_tf_checkpoint, write_tf_checkpoint
from ckptkit.converters.formats.tf1 import snappy
from ckptkit.converters.formats.tf1.messages import (
    BundleEntry, decode_entry, decode_header, encode_entry, encode_header,
)
from ckptkit.converters.formats.tf1.object_graph import readable_names
from ckptkit.converters.formats.tf1.proto import ProtoError
from ckptkit.converters.formats.tf1.slices import SliceKeyError, decode_slice_key
from ckptkit.converters.formats.tf1.table import TableError, build_table, parse_block, read_table
from ckptkit.errors import CkptkitError
from tests.fuzz_runner import CASES, Case, mutate_bytes, run_fuzz

FUZZ = settings(max_examples=max(300, CASES // 20), deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def valid_index(tmp_path_factory) -> tuple[str, bytes]:
    prefix = write_tf_checkpoint(tmp_path_factory.mktemp("fuzz") / "m", [
        ("a", np.arange(6, dtype=np.float32).reshape(2, 3)), ("s", np.array([b"x", b"yz"], object)),
        ("global_step", np.int64(3))], write_state=False)
    return prefix, open(f"{prefix}.index", "rb").read()


def mutate(data: bytes, edits: list[tuple[int, int]], cut: int) -> bytes:
    raw = bytearray(data)
    for position, value in edits:
        raw[position % len(raw)] = value
    return bytes(raw[:max(0, len(raw) - cut)])


EDITS = st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=6)


@FUZZ
@given(st.binary(max_size=400))
def test_arbitrary_bytes_as_table(data):
    with pytest.raises(TableError):
        read_table(data + b"\x57\xfb\x80\x8b\x24\x75\x47\xdb" if len(data) % 2 else data)


@FUZZ
@given(st.binary(max_size=300))
def test_arbitrary_block(data):
    try:
        entries = parse_block(data)
    except (TableError, ProtoError):
        return
    assert sum(len(k) + len(v) for k, v in entries) <= len(data) * len(data) + 1


@FUZZ
@given(st.binary(max_size=200))
def test_arbitrary_messages(data):
    for parse, errors in ((decode_entry, ProtoError), (decode_header, ProtoError), (readable_names, ProtoError),
                          (snappy.decompress, snappy.SnappyError), (decode_slice_key, SliceKeyError)):
        try:
            parse(data)
        except errors:
            pass


@FUZZ
@given(EDITS, st.integers(0, 3))
def test_mutated_index_file(valid_index, tmp_path_factory, edits, cut):
    prefix, original = valid_index
    damaged = mutate(original, edits, cut)
    target = tmp_path_factory.mktemp("m") / "m"
    target.with_suffix(".index").write_bytes(damaged)
    (target.parent / "m.data-00000-of-00001").write_bytes(open(f"{prefix}.data-00000-of-00001", "rb").read())
    _open_and_read(target)


@FUZZ
@given(st.lists(st.tuples(st.integers(0, 2), st.binary(max_size=40)), min_size=1, max_size=4))
def test_valid_table_with_hostile_entries(valid_index, tmp_path_factory, hostile):
    """Checksums intact, entry values garbage: the entry and slice checks must catch it."""
    prefix, original = valid_index
    entries = dict(read_table(original))
    keys = sorted(entries)
    for which, value in hostile:
        entries[keys[which % len(keys)]] = value
    target = tmp_path_factory.mktemp("h") / "m"
    target.with_suffix(".index").write_bytes(build_table(sorted(entries.items())))
    (target.parent / "m.data-00000-of-00001").write_bytes(open(f"{prefix}.data-00000-of-00001", "rb").read())
    _open_and_read(target)


def _open_and_read(prefix) -> None:
    try:
        with open_tf_checkpoint(prefix) as ckpt:
            for tensor in ckpt.values():
                tensor.read()
    except CkptkitError:
        pass


def test_huge_declared_lengths_fail_fast():
    from ckptkit.converters.formats.tf1.proto import encode_varint

    with pytest.raises(ProtoError):
        decode_entry(b"\x12" + encode_varint(1 << 62))
    with pytest.raises(snappy.SnappyError):
        snappy.decompress(encode_varint(1 << 40) + b"\x00a")
    block = b"\x00" + encode_varint(1 << 40) + b"\x00" + b"\x00\x00\x00\x00" + b"\x01\x00\x00\x00"
    with pytest.raises(TableError):
        parse_block(block)
    with pytest.raises(TableError):
        parse_block(b"\xff\xff\xff\x7f")  # claims 2**31 restart points


# ------------------------------------------------------------ thousands of mutated files, in a guarded child
# tests/fuzz_runner.py runs each target in a child process: only CkptkitError may come out, no case
# over 5 s, address space capped. CKPTKIT_FUZZ_CASES sets the count (2,000 here; `make fuzz`: 50,000).

def _base_checkpoint(folder: str) -> str:
    """Two shards: plain tensors of several dtypes, strings, a big-ish tensor, a partitioned variable."""
    import ml_dtypes

    full = np.arange(40, dtype=np.float32).reshape(10, 4)
    with TFCheckpointWriter(os.path.join(folder, "base", "m"), num_shards=2, write_state=False) as w:
        w.add("a", np.arange(6, dtype=np.float32).reshape(2, 3), shard=0)
        w.add("b16", np.ones((3, 2), ml_dtypes.bfloat16), shard=1)
        w.add("s", np.array([b"x", b"yz", b""], object), shard=1)
        w.add("big", np.linspace(0, 1, 700, dtype=np.float64), shard=0)
        w.add("global_step", np.int64(3), shard=1)
        w.add_slice("emb", full[:6], full_shape=(10, 4), extents=((0, 6), None), shard=0)
        w.add_slice("emb", full[6:], full_shape=(10, 4), extents=((6, 4), None), shard=1)
    return w.prefix


def _write_case(prefix: str, index: bytes, shards: list[bytes]) -> None:
    with open(f"{prefix}.index", "wb") as f:
        f.write(index)
    for number, data in enumerate(shards):
        with open(f"{prefix}.data-{number:05d}-of-{len(shards):05d}", "wb") as f:
            f.write(data)


def _read_everything(prefix: str) -> None:
    with open_tf_checkpoint(prefix) as ckpt:
        _ = ckpt.extras, ckpt.entries
        for tensor in ckpt.values():
            tensor.read()


_WILD_INTS = (0, 1, 2, 3, 7, 64, 65, 255, 4096, 850_000, 1_000_000, 2**31 - 1, 2**31, 2**32, 2**53, 2**62, 2**63 - 1,
              -1, -2, -(2**63))


def _wild_int(rng) -> int:
    return rng.choice(_WILD_INTS) if rng.random() < 0.7 else rng.randrange(-(2**63), 2**63)


def _mutate_entry(entry: BundleEntry, rng) -> BundleEntry:
    field = rng.choice(["dtype", "shape", "shard_id", "offset", "size", "crc32c", "slices", "unknown_rank"])
    if field == "shape":
        rank = rng.choice([0, 1, 2, 3, 63, 64, 65, 70, 255])
        value = tuple(rng.choice([0, 1, 2, 3, 4, 10, 2**31, 2**62, -1]) for _ in range(rank))
    elif field == "slices":
        value = tuple(tuple(None if rng.random() < 0.3 else (_wild_int(rng), _wild_int(rng))
                            for _ in range(rng.randint(0, 3))) for _ in range(rng.randint(0, 3)))
    elif field == "unknown_rank":
        value = not entry.unknown_rank
    elif field == "crc32c":
        value = rng.randrange(2**32)
    else:
        value = _wild_int(rng) if field != "dtype" else rng.randrange(0, 30)
    return dataclasses.replace(entry, **{field: value})


def _mutate_index_entries(entries: dict[bytes, bytes], rng) -> dict[bytes, bytes]:
    entries = dict(entries)
    key = rng.choice(sorted(entries))
    kind = rng.randrange(5)
    try:
        if key == b"" or kind == 0:
            header = decode_header(entries.get(b"", b""))
            field = rng.choice(["num_shards", "endianness", "producer", "min_consumer", "bad_consumers"])
            value = (_wild_int(rng),) if field == "bad_consumers" else _wild_int(rng)
            entries[b""] = encode_header(dataclasses.replace(header, **{field: value}))
            return entries
        if kind == 1:
            entries[key] = encode_entry(_mutate_entry(decode_entry(entries[key]), rng))
            return entries
    except ProtoError:  # an earlier mutation left bytes that no longer decode
        kind = 2
    if kind == 2:
        entries[key] = mutate_bytes(entries[key], rng)
    elif kind == 3:
        del entries[key]
    else:
        entries[mutate_bytes(key, rng) or b"k"] = entries[key]
    return entries


def tf_index_cases(workdir: str, rng):
    """Mutated .index files over intact data: raw bytes (checksums mostly fail) and, more often, valid
    tables whose header or entries are damaged (wild shard counts, ranks, offsets, slices)."""
    base = _base_checkpoint(workdir)
    index = open(f"{base}.index", "rb").read()
    shards = [open(f"{base}.data-0000{i}-of-00002", "rb").read() for i in range(2)]
    entries = dict(read_table(index))
    prefix = os.path.join(workdir, "case", "m")
    os.makedirs(os.path.dirname(prefix))
    _write_case(prefix, index, shards)
    while True:
        if rng.random() < 0.3:
            damaged, how = mutate_bytes(index, rng), "raw bytes"
        else:
            mutated = entries
            for _ in range(rng.randint(1, 3)):
                mutated = _mutate_index_entries(mutated, rng)
            damaged, how = build_table(sorted(mutated.items())), "entries"
        yield Case(functools.partial(_index_case, prefix, damaged), f"index mutated ({how}): {damaged.hex()}")


def _index_case(prefix: str, index: bytes) -> None:
    with open(f"{prefix}.index", "wb") as f:
        f.write(index)
    _read_everything(prefix)


def tf_data_cases(workdir: str, rng):
    """Intact index, mutated data shards: flipped, cut, grown, spliced bytes."""
    base = _base_checkpoint(workdir)
    index = open(f"{base}.index", "rb").read()
    shards = [open(f"{base}.data-0000{i}-of-00002", "rb").read() for i in range(2)]
    prefix = os.path.join(workdir, "case", "m")
    os.makedirs(os.path.dirname(prefix))
    while True:
        which = rng.randrange(2)
        damaged = list(shards)
        damaged[which] = mutate_bytes(shards[which], rng)
        yield Case(functools.partial(_data_case, prefix, index, damaged),
                   f"shard {which} mutated: {damaged[which].hex()}")


def _data_case(prefix: str, index: bytes, shards: list[bytes]) -> None:
    _write_case(prefix, index, shards)
    _read_everything(prefix)


@pytest.mark.parametrize("target", ["tf_index_cases", "tf_data_cases"])
def test_thousands_of_mutated_files_give_only_our_errors(target):
    summary = run_fuzz(f"tests.test_tf1_fuzz:{target}")
    assert summary["rejected"] > summary["cases"] // 4  # the mutations do reach the checks
