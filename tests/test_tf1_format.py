"""The TF checkpoint reader and writer without TensorFlow: round trips, laziness, paths, pieces."""

from __future__ import annotations

import doctest
import importlib
import os
import struct

import ml_dtypes
import numpy as np
import pytest

from ckptkit.converters.formats import open_checkpoint
from ckptkit.converters.formats.tf1 import TFCheckpointWriter, open_tf_checkpoint, write_tf_checkpoint
from ckptkit.converters.formats.tf1 import snappy
from ckptkit.converters.formats.tf1.messages import BundleEntry, decode_entry, encode_entry
from ckptkit.converters.formats.tf1.table import build_table, read_table
from ckptkit.errors import CheckpointNotFoundError, UsageError

MODULES = ["proto", "messages", "snappy", "checksum", "table", "slices", "state", "paths", "object_graph",
           "index", "reader", "writer"]
NUMERIC = ["float32", "float64", "float16", "bfloat16", "int8", "int16", "int32", "int64", "uint8", "uint16",
           "uint32", "uint64", "bool"]


@pytest.mark.parametrize("module", [f"ckptkit.converters.formats.tf1.{m}" for m in MODULES] +
                         ["ckptkit.cli.inspect_cmd"])
def test_doctests(module):
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


def sample(dtype: str, shape=(3, 5), seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if dtype == "bool":
        return rng.random(shape) > 0.5
    values = rng.standard_normal(shape) * 100
    return values.astype(ml_dtypes.bfloat16 if dtype == "bfloat16" else dtype)


def strings() -> np.ndarray:
    return np.array([[b"", b"a"], ["héllo".encode(), b"\x00\xff" * 200]], dtype=object)


@pytest.fixture
def every_dtype(tmp_path):
    tensors = {f"v/{d}": sample(d, seed=i) for i, d in enumerate(NUMERIC)}
    tensors.update({"strs": strings(), "scalar": np.float32(2.5), "empty": np.zeros((0, 4), np.float32),
                    "global_step": np.int64(20000)})
    prefix = write_tf_checkpoint(tmp_path / "model.ckpt-20000", tensors)
    return prefix, tensors


def test_round_trip_every_dtype(every_dtype):
    prefix, tensors = every_dtype
    with open_checkpoint(prefix) as ckpt:
        assert sorted(ckpt) == sorted(tensors)
        for name, expected in tensors.items():
            got = ckpt[name].read()
            assert got.dtype == np.asarray(expected).dtype or ckpt[name].dtype.name == "object"
            assert got.shape == np.shape(expected)
            assert np.array_equal(got, expected), name
        assert ckpt.global_step == 20000
        assert ckpt.extras["num_shards"] == 1 and ckpt.extras["kind"] == "tf1"
        assert ckpt["global_step"].role == "counter"


def test_views_are_zero_copy_and_read_only(every_dtype):
    prefix, _ = every_dtype
    with open_tf_checkpoint(prefix) as ckpt:
        array = ckpt["v/float32"].read()
        assert not array.flags.owndata and not array.flags.writeable
        assert ckpt["v/float32"].location.startswith("model.ckpt-20000.data-00000-of-00001@")


def test_misaligned_tensor_is_copied_correctly(tmp_path):
    values = np.arange(7, dtype=np.float64) / 3
    prefix = write_tf_checkpoint(tmp_path / "m", [("a", np.ones(3, np.uint8)), ("b", values)])
    with open_tf_checkpoint(prefix) as ckpt:
        assert ckpt["b"].entry.offset == 3
        assert np.array_equal(ckpt["b"].read(), values)


def test_writer_accepts_views_big_endian_and_chunks(tmp_path, monkeypatch):
    from ckptkit.converters import stream_write

    monkeypatch.setattr(stream_write, "BAND_BYTES", 64)  # force the banded path on small arrays
    base = np.arange(4 * 6 * 5, dtype=np.float32).reshape(4, 6, 5)
    arrays = {"t": base.transpose(2, 0, 1), "strided": base[:, ::2, 1], "be": base.astype(">f4"),
              "row": np.arange(100, dtype=np.int64)[::3]}
    prefix = write_tf_checkpoint(tmp_path / "m", arrays)
    with open_tf_checkpoint(prefix) as ckpt:
        for name, expected in arrays.items():
            assert np.array_equal(ckpt[name].read(), expected), name
            assert ckpt[name].read().dtype.isnative


@pytest.mark.parametrize("options,expected_shards", [({"num_shards": 3}, 3), ({"max_shard_size": 170}, 3)])
def test_shards(tmp_path, options, expected_shards):
    tensors = {f"w{i}": np.full(20, i, np.float32) for i in range(5)}  # 80 bytes each
    prefix = write_tf_checkpoint(tmp_path / "m", tensors, **options)
    with open_tf_checkpoint(prefix) as ckpt:
        assert ckpt.extras["num_shards"] == expected_shards
        assert len(ckpt.files) == expected_shards + 1
        assert {name: ckpt[name].read().tolist() for name in ckpt} == {k: v.tolist() for k, v in tensors.items()}


def test_partitioned_variable_is_assembled(tmp_path):
    full = np.arange(10 * 4, dtype=np.float32).reshape(10, 4)
    with TFCheckpointWriter(tmp_path / "m", num_shards=2) as w:
        w.add_slice("emb", full[4:7], full_shape=(10, 4), extents=((4, 3), None), shard=1)
        w.add_slice("emb", full[:4], full_shape=(10, 4), extents=((0, 4), None), shard=0)
        w.add_slice("emb", full[7:], full_shape=(10, 4), extents=((7, 3), None), shard=0)
    with open_tf_checkpoint(tmp_path / "m") as ckpt:
        assert list(ckpt) == ["emb"]
        assert np.array_equal(ckpt["emb"].read(), full)
        assert ckpt.extras["partitioned"] == 1


def test_incomplete_partition_is_refused(tmp_path):
    w = TFCheckpointWriter(tmp_path / "m")
    w.add_slice("emb", np.zeros((2, 4)), full_shape=(10, 4), extents=((0, 2), None))
    with pytest.raises(UsageError, match="cover 8 of 40"):
        w.close()
    assert os.listdir(tmp_path) == []


def test_writer_stages_and_abort(tmp_path):
    w = TFCheckpointWriter(tmp_path / "m")
    w.add("a", np.zeros(3))
    assert any(n.endswith(".data-0") for n in os.listdir(tmp_path))  # streaming to a temporary name
    w.close()
    with pytest.raises(UsageError, match="closed"):
        w.add("b", np.zeros(1))
    with pytest.raises(UsageError, match="closed"):
        w.close()
    w2 = TFCheckpointWriter(tmp_path / "n")
    w2.add("a", np.zeros(3))
    w2.abort()
    with pytest.raises(UsageError, match="aborted"):
        w2.add("b", np.zeros(1))
    assert sorted(os.listdir(tmp_path)) == ["checkpoint", "m.data-00000-of-00001", "m.index"]


def test_context_manager_aborts_on_error(tmp_path):
    with pytest.raises(RuntimeError):
        with TFCheckpointWriter(tmp_path / "m") as w:
            w.add("a", np.zeros(3))
            raise RuntimeError("boom")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("name,value,message", [
    ("", np.zeros(1), "empty"), ("\0x", np.zeros(1), "NUL"), ("s", np.array([b"a", 3], object), "element 1"),
    ("c", np.zeros(2, np.complex64).astype("M8[s]"), "unsupported"),
])
def test_writer_validates_before_writing(tmp_path, name, value, message):
    with TFCheckpointWriter(tmp_path / "m") as w:
        with pytest.raises(Exception, match=message):
            w.add(name, value)
        w.add("ok", np.ones(1))
    with open_tf_checkpoint(tmp_path / "m") as ckpt:
        assert list(ckpt) == ["ok"]


def test_state_file_keeps_earlier_checkpoints(tmp_path):
    write_tf_checkpoint(tmp_path / "model.ckpt-1", [("a", np.zeros(1))])
    write_tf_checkpoint(tmp_path / "model.ckpt-2", [("a", np.ones(1))])
    text = (tmp_path / "checkpoint").read_text()
    assert text.splitlines() == ['model_checkpoint_path: "model.ckpt-2"', 'all_model_checkpoint_paths: "model.ckpt-1"',
                                 'all_model_checkpoint_paths: "model.ckpt-2"']
    with open_tf_checkpoint(tmp_path) as ckpt:
        assert ckpt["a"].read().tolist() == [1.0]


def test_paths_accepted(tmp_path):
    prefix = write_tf_checkpoint(tmp_path / "run" / "model.ckpt-5", [("a", np.arange(2))])
    (tmp_path / "run" / "checkpoint").write_text(
        'model_checkpoint_path: "/home/someone/training/out/model.ckpt-5"\n'
        'all_model_checkpoint_paths: "/home/someone/training/out/model.ckpt-5"\n')
    for given in (tmp_path / "run", tmp_path / "run" / "checkpoint", prefix, f"{prefix}.index",
                  f"{prefix}.data-00000-of-00001"):
        with open_checkpoint(given) as ckpt:
            assert ckpt.path == str(prefix) and ckpt["a"].read().tolist() == [0, 1], given


def test_directory_without_state_file_and_two_checkpoints(tmp_path):
    write_tf_checkpoint(tmp_path / "a", [("x", np.zeros(1))], write_state=False)
    with open_tf_checkpoint(tmp_path) as ckpt:
        assert ckpt.path.endswith("a")
    write_tf_checkpoint(tmp_path / "b", [("x", np.zeros(1))], write_state=False)
    with pytest.raises(CheckpointNotFoundError, match="several checkpoints"):
        open_tf_checkpoint(tmp_path)


def test_open_reads_no_data_and_unread_damage_is_harmless(every_dtype):
    prefix, _ = every_dtype
    data = f"{prefix}.data-00000-of-00001"
    with open_tf_checkpoint(prefix) as ckpt:
        entry = ckpt["v/float64"].entry
    with open(data, "r+b") as f:  # damage one tensor only
        f.seek(entry.offset + 3)
        byte = f.read(1)
        f.seek(entry.offset + 3)
        f.write(bytes([byte[0] ^ 0xFF]))
    with open_tf_checkpoint(prefix) as ckpt:
        assert ckpt["v/int32"].read().shape == (3, 5)
        with pytest.raises(ValueError, match="CRC mismatch in tensor 'v/float64'"):
            ckpt["v/float64"].read()


def test_snappy_compressed_index_is_read(every_dtype):
    prefix, tensors = every_dtype
    index = f"{prefix}.index"
    entries = read_table(open(index, "rb").read())
    with open(index, "wb") as f:
        f.write(build_table(entries, snappy_blocks=True))
    with open_tf_checkpoint(prefix) as ckpt:
        assert np.array_equal(ckpt["v/int64"].read(), tensors["v/int64"])


@pytest.mark.parametrize("compressed,expected", [
    (bytes([5, 0x10]) + b"abcde", b"abcde"),                                  # literal
    (bytes([10, 0x00]) + b"a" + bytes([0x15, 1]), b"a" * 10),                    # copy-1, overlapping
    (bytes([70, 0x0C]) + b"xyzw" + bytes([0xF6, 4, 0]) + bytes([0x01, 4]), (b"xyzw" * 18)[:70]),  # copy-2
    (bytes([8, 0x0C]) + b"abcd" + bytes([0x0F, 4, 0, 0, 0]), b"abcdabcd"),       # copy-4
    (bytes([61, 0xF0, 60]) + b"q" * 61, b"q" * 61),                             # long literal
])
def test_snappy_vectors(compressed, expected):
    assert snappy.decompress(compressed) == expected


@pytest.mark.parametrize("bad", [b"", bytes([5, 0x10]) + b"abc", bytes([4, 0x05, 9]), bytes([200, 1]) + b"\0" * 3,
                                 bytes([3, 0x08]) + b"abc" + bytes([0x01, 0])])
def test_snappy_rejects(bad):
    with pytest.raises(snappy.SnappyError):
        snappy.decompress(bad)


def test_entry_encoding_matches_tensorflow_bytes():
    # From an index TensorFlow wrote: float32 [3, 5] at offset 64, 60 bytes.
    entry = BundleEntry(dtype=1, shape=(3, 5), offset=64, size=60, crc32c=0x12345678)
    assert encode_entry(entry).hex() == "0801120812020803120208052040283c3578563412"
    assert decode_entry(encode_entry(entry)) == entry
    scalar = BundleEntry(dtype=9, shape=(), size=8, crc32c=1)
    assert encode_entry(scalar)[2:4] == b"\x12\x00"  # shape is always present


def test_big_endian_header_is_byte_swapped(tmp_path):
    prefix = write_tf_checkpoint(tmp_path / "m", [("a", np.arange(4, dtype=">i4"))], write_state=False)
    with open_tf_checkpoint(prefix) as ckpt:
        entry = ckpt["a"].entry
    # Store the bytes big-endian and mark the header BIG, as a big-endian machine would.
    data = f"{prefix}.data-00000-of-00001"
    raw = np.arange(4, dtype=">i4").tobytes()
    open(data, "wb").write(raw)
    from ckptkit.converters.formats.tf1.checksum import crc32c, mask
    from ckptkit.converters.formats.tf1.messages import BundleHeader, encode_header
    entries = dict(read_table(open(f"{prefix}.index", "rb").read()))
    entries[b""] = encode_header(BundleHeader(num_shards=1, endianness=1))
    entries[b"a"] = encode_entry(BundleEntry(dtype=3, shape=(4,), size=16, crc32c=mask(crc32c(raw))))
    open(f"{prefix}.index", "wb").write(build_table(sorted(entries.items())))
    with open_tf_checkpoint(prefix) as ckpt:
        got = ckpt["a"].read()
        assert got.dtype == np.int32 and got.tolist() == [0, 1, 2, 3] and ckpt.extras["endianness"] == "big"
    assert entry.size == 16


def test_string_crc_covers_lengths(tmp_path):
    prefix = write_tf_checkpoint(tmp_path / "m", [("s", np.array([b"ab", b"c"], object))], write_state=False)
    data = f"{prefix}.data-00000-of-00001"
    raw = bytearray(open(data, "rb").read())
    assert raw[:2] == b"\x02\x01" and struct.unpack("<I", raw[2:6])[0] != 0 and raw[6:] == b"abc"
    raw[6] ^= 1
    open(data, "wb").write(raw)
    with open_tf_checkpoint(prefix) as ckpt, pytest.raises(ValueError, match="CRC mismatch"):
        ckpt["s"].read()


def test_large_tensor_owns_its_bytes_not_a_memory_map(tmp_path):
    """Tensors are read into buffers of their own: a mapping would SIGBUS if the file shrank."""
    import mmap

    values = np.arange(600_000, dtype=np.float32).reshape(1000, 600)
    prefix = write_tf_checkpoint(tmp_path / "m", [("pad", np.ones(4, np.int8)), ("big", values)])
    with open_tf_checkpoint(prefix) as ckpt:
        array = ckpt["big"].read()
    base = array
    while base is not None and not isinstance(base, mmap.mmap):
        base = base.obj if isinstance(base, memoryview) else base.base
    assert base is None and not array.flags.writeable
    os.truncate(f"{prefix}.data-00000-of-00001", 0)
    assert np.array_equal(array, values)  # still valid after close() and after the file is gone
