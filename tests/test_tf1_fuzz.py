"""Fuzzing the index parsers: any bytes end in our error, never another exception or a hang."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ckptkit.converters.formats.tf1 import open_tf_checkpoint, write_tf_checkpoint
from ckptkit.converters.formats.tf1 import snappy
from ckptkit.converters.formats.tf1.messages import decode_entry, decode_header
from ckptkit.converters.formats.tf1.object_graph import readable_names
from ckptkit.converters.formats.tf1.proto import ProtoError
from ckptkit.converters.formats.tf1.slices import SliceKeyError, decode_slice_key
from ckptkit.converters.formats.tf1.table import TableError, build_table, parse_block, read_table
from ckptkit.errors import CkptkitError

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


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
