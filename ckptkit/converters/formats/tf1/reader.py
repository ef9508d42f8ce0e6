"""Read a TensorFlow checkpoint (V2 bundle, TF1 or TF2) without TensorFlow.

Opening reads the ``.index`` (and, for TF2, the small object graph); a tensor's bytes are
read on ``read()``: one positional read into a buffer of its own (a read-only NumPy array),
after which its CRC32C is checked. Nothing is memory-mapped, so a data file truncated while it
is read ends in a one-line error, never SIGBUS. Partitioned variables are assembled from their slices.
Opening and the metadata (the global step and a TF2 object graph included) import no NumPy; reading a
tensor's values does.

Example:
    >>> import numpy as np, tempfile, os
    >>> from ckptkit.converters.formats.tf1 import write_tf_checkpoint
    >>> d = tempfile.mkdtemp()
    >>> _ = write_tf_checkpoint(os.path.join(d, "model.ckpt-7"), [("w", np.eye(2, dtype=np.float32)),
    ...                                                           ("global_step", np.int64(7))])
    >>> with open_tf_checkpoint(d) as ckpt:
    ...     print(sorted(ckpt), ckpt["w"].read().tolist(), ckpt.global_step, ckpt.extras["kind"])
    ['global_step', 'w'] [[1.0, 0.0], [0.0, 1.0]] 7 tf1
"""

from __future__ import annotations

import functools
import math
import os
import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ckptkit.converters.formats.tf1.checksum import crc32c, crc32c_extend, mask, unmask
from ckptkit.converters.formats.tf1.index import DAMAGED as _DAMAGED
from ckptkit.converters.formats.tf1.index import read_index, shard_sizes
from ckptkit.converters.formats.tf1.messages import ENDIAN_BIG, OBJECT_GRAPH_KEY, BundleEntry, BundleHeader
from ckptkit.converters.formats.tf1.paths import data_file, resolve_prefix
from ckptkit.converters.formats.tf1.proto import ProtoError, decode_varint
from ckptkit.converters.formats.tf1.slices import slice_key
from ckptkit.converters.memory import numpy_shape_problem, read_bytes, read_exact
from ckptkit.converters.tensors import (
    ROLE_METADATA, ROLE_OPTIMIZER, Checkpoint, DType, LazyTensor, classify_role, dtype_by_tf_enum,
)
from ckptkit.errors import CorruptCheckpointError, UnsupportedFormatError

if TYPE_CHECKING:
    import numpy as np

__all__ = ["TFCheckpoint", "TFTensor", "open_tf_checkpoint", "read_index"]

_COUNTER_NAMES = ("global_step", "step", "optimizer/iter", "optimizer/iterations", "optimizer/_iterations")


@dataclass
class TFTensor(LazyTensor):
    """A :class:`LazyTensor` of a TF bundle. ``key`` is the raw checkpoint key (differs from
    ``name`` in TF2 checkpoints); ``entry`` says where the bytes are."""

    key: str = ""
    entry: BundleEntry | None = field(default=None, repr=False)


def _short(shape: tuple[int, ...]) -> str:
    """A shape for messages: at most 8 dimensions shown."""
    return str(list(shape)) if len(shape) <= 8 else f"[{', '.join(map(str, shape[:8]))}, ... ({len(shape)} dims)]"


def _numeric_dtype(dtype: DType, endianness: int) -> np.dtype:
    """The stored byte order's NumPy dtype (big-endian bundles exist, if rarely)."""
    return dtype.numpy.newbyteorder(">") if endianness == ENDIAN_BIG and dtype.itemsize > 1 else dtype.numpy


def _expected_size(entry: BundleEntry, dtype: DType) -> int | None:
    if dtype.name == "object":
        return None
    return math.prod(entry.shape) * dtype.itemsize


def string_values(data: bytes, count: int, stored_crc: int) -> list[bytes]:
    """A DT_STRING tensor's stored bytes -> its ``count`` strings (CRCs of lengths and data checked).

    Raises:
        ValueError: with a short reason, when the bytes contradict themselves.
    """
    if count > len(data):
        raise ValueError(f"{count} strings cannot fit in {len(data)} bytes")
    lengths, pos = [], 0
    for _ in range(count):
        length, pos = decode_varint(data, pos)
        lengths.append(length)
    length_bytes = b"".join(struct.pack("<I" if n <= 0xFFFFFFFF else "<Q", n) for n in lengths)
    crc = crc32c(length_bytes)
    if pos + 4 > len(data) or struct.unpack_from("<I", data, pos)[0] != mask(crc):
        raise ValueError("checksum of the string lengths does not match")
    crc = crc32c_extend(crc, data[pos:pos + 4])
    pos += 4
    if sum(lengths) != len(data) - pos:
        raise ValueError("string lengths do not add up to the stored bytes")
    if crc32c_extend(crc, data[pos:]) != unmask(stored_crc):
        raise ValueError("CRC mismatch")
    values = []
    for length in lengths:
        values.append(data[pos:pos + length])
        pos += length
    return values


class TFCheckpoint(Checkpoint):
    """A TensorFlow V2-format checkpoint: a read-only mapping name -> :class:`TFTensor`.

    For TF2 (object-based) checkpoints the names are object paths (``model/dense/kernel``) and
    ``tensor.key`` keeps the raw key (``model/dense/kernel/.ATTRIBUTES/VARIABLE_VALUE``).
    """

    format = "tf"

    def __init__(self, prefix: str):
        self.prefix = prefix
        self.index_path = prefix + ".index"
        self._index = read_index(self.index_path)
        header = self._index.header
        self._sizes = shard_sizes(prefix, header.num_shards)
        self._files = [data_file(prefix, s, header.num_shards) for s in range(header.num_shards)]
        self._fds: dict[int, int] = {}
        self._verified: set[bytes] = set()
        self._global_step: int | None | bool = False
        plain = {k: e for k, e in self._index.entries.items() if not k.startswith(b"\0")}
        tensors = {key.decode("utf-8", "replace"): self._make_tensor(key, entry) for key, entry in plain.items()}
        names = self._tf2_names(tensors)
        renamed = {}
        for key, tensor in tensors.items():
            tf2 = names.get(key)
            if tf2 is not None and tf2.name not in tensors and tf2.name not in renamed:
                tensor.name = tf2.name
                tensor.role = ROLE_OPTIMIZER if tf2.is_optimizer else classify_role(tf2.name)
            renamed[tensor.name] = tensor
        super().__init__(prefix, renamed, files=[self.index_path, *self._files],
                         extras={"prefix": prefix, "num_shards": header.num_shards,
                                 "kind": "tf2" if names else "tf1",
                                 "partitioned": sum(1 for e in plain.values() if e.slices),
                                 "endianness": "big" if header.endianness == ENDIAN_BIG else "little"})

    # ------------------------------------------------------------ metadata

    @property
    def extras(self) -> dict:
        """Format facts: prefix, num_shards, kind (tf1/tf2), partitioned, endianness, global_step, files."""
        if self._global_step is False:
            self._global_step = self._find_global_step()
        return {**self._extras, "global_step": self._global_step, "files": list(self.files)}

    @extras.setter
    def extras(self, value: dict) -> None:
        self._extras = value

    @property
    def global_step(self) -> int | None:
        return self.extras["global_step"]

    def _find_global_step(self) -> int | None:
        for name in _COUNTER_NAMES:
            tensor = self._tensors.get(name)
            if tensor is not None and tensor.dtype.name.startswith(("int", "uint")) and tensor.numel == 1:
                return self._counter_value(tensor)
        return None

    def _counter_value(self, tensor: TFTensor) -> int:
        """A one-element integer tensor's value from its stored bytes, CRC checked, without NumPy."""
        entry = tensor.entry
        if entry.slices:  # a partitioned counter: assembled like any tensor
            return int(tensor.read().reshape(-1)[0])
        data = self._stored_bytes(entry)
        self._verify(tensor.key.encode("utf-8"), entry, data)
        order = "big" if self._index.header.endianness == ENDIAN_BIG else "little"
        return int.from_bytes(data, order, signed=tensor.dtype.name.startswith("int"))

    @property
    def entries(self) -> dict[bytes, BundleEntry]:
        """Every index entry by raw key, slice entries included (a copy)."""
        return dict(self._index.entries)

    @property
    def header(self) -> BundleHeader:
        return self._index.header

    def read_entry(self, key: bytes) -> np.ndarray:
        """The array stored under one raw index key (a slice key reads just that slice)."""
        entry = self._index.entries[key]
        return self._read(key, entry, dtype_by_tf_enum(entry.dtype))

    def by_key(self, key: str) -> TFTensor:
        """The tensor stored under the raw checkpoint ``key``."""
        for tensor in self._tensors.values():
            if tensor.key == key:
                return tensor
        raise KeyError(f"no tensor with key {key!r} in {self.path}")

    def _make_tensor(self, key: bytes, entry: BundleEntry) -> TFTensor:
        name = key.decode("utf-8", "replace")
        try:
            dtype = dtype_by_tf_enum(entry.dtype)
        except UnsupportedFormatError as e:
            raise UnsupportedFormatError(f"tensor {name!r}: {e.message}", path=self.index_path, hint=e.hint) from e
        if any(d < 0 for d in entry.shape) or entry.unknown_rank:
            raise CorruptCheckpointError(f"tensor {name!r} has an unknown shape {entry.shape}", path=self.index_path)
        problem = numpy_shape_problem(entry.shape, dtype.itemsize)
        if problem:
            raise UnsupportedFormatError(f"tensor {name!r} of shape {_short(entry.shape)}: {problem}",
                                         path=self.index_path, hint="the index is damaged, or the tensor needs "
                                         "reshaping in TensorFlow")
        if entry.slices:
            self._check_slices(name, key, entry, dtype)
            location = f"{len(entry.slices)} slices"
        else:
            self._check_extent(name, entry, dtype)
            location = f"{os.path.basename(self._files[entry.shard_id])}@{entry.offset}"
        role = ROLE_METADATA if name == OBJECT_GRAPH_KEY else ""
        extent = None if entry.slices else (self._files[entry.shard_id], entry.offset, entry.size)
        return TFTensor(name, dtype, entry.shape, functools.partial(self._read, key, entry, dtype), role=role,
                        location=location, key=name, entry=entry, byte_range=extent)

    def _check_extent(self, name: str, entry: BundleEntry, dtype: DType) -> None:
        if not 0 <= entry.shard_id < len(self._files):
            raise CorruptCheckpointError(f"tensor {name!r} names shard {entry.shard_id} of {len(self._files)}",
                                         path=self.index_path, hint=_DAMAGED)
        expected = _expected_size(entry, dtype)
        if entry.offset < 0 or entry.size < 0 or expected is not None and entry.size != expected:
            raise CorruptCheckpointError(f"tensor {name!r} claims {entry.size} bytes for shape {list(entry.shape)}",
                                         path=self.index_path, hint=_DAMAGED)
        file_size = self._sizes[entry.shard_id]
        if entry.offset + entry.size > file_size:
            raise CorruptCheckpointError(
                f"truncated: tensor {name!r} needs bytes {entry.offset}..{entry.offset + entry.size}, "
                f"the file has {file_size}", path=self._files[entry.shard_id], hint=_DAMAGED)

    def _check_slices(self, name: str, raw_key: bytes, entry: BundleEntry, dtype: DType) -> None:
        covered = 0
        for extents in entry.slices:
            part = self._index.entries.get(slice_key(raw_key, extents))
            lengths = _slice_lengths(entry.shape, extents)
            if part is None or lengths is None or part.shape != lengths or part.dtype != entry.dtype:
                raise CorruptCheckpointError(f"partitioned tensor {name!r}: slice {list(extents)} is missing or "
                                             "does not fit", path=self.index_path, hint=_DAMAGED)
            self._check_extent(name, part, dtype)
            covered += math.prod(lengths)
        if covered != math.prod(entry.shape):
            raise CorruptCheckpointError(f"partitioned tensor {name!r}: slices cover {covered} of "
                                         f"{math.prod(entry.shape)} elements",
                                         path=self.index_path, hint=_DAMAGED)

    def _tf2_names(self, tensors: dict[str, TFTensor]) -> dict:
        graph = tensors.get(OBJECT_GRAPH_KEY)
        if graph is None:
            return {}
        from ckptkit.converters.formats.tf1.object_graph import readable_names  # TF2 only

        try:
            return readable_names(self._graph_bytes(graph))
        except (ProtoError, IndexError) as e:
            raise CorruptCheckpointError(f"unreadable {OBJECT_GRAPH_KEY}: {e}", path=self.index_path,
                                         hint=_DAMAGED) from e

    # ------------------------------------------------------------ bytes

    def _fd(self, shard: int) -> int:
        if shard not in self._fds:
            self._fds[shard] = os.open(self._files[shard], os.O_RDONLY | getattr(os, "O_BINARY", 0))
        return self._fds[shard]

    def _graph_bytes(self, graph: TFTensor) -> bytes:
        """The serialized object graph (a scalar string), read without NumPy."""
        entry = graph.entry
        if entry.slices:
            return graph.read().reshape(-1)[0]
        return self._strings(graph.key.encode("utf-8"), entry, self._stored_bytes(entry))[0]

    def _stored_bytes(self, entry: BundleEntry) -> bytes:
        """One entry's stored bytes as ``bytes``: for the few small values metadata needs."""
        if entry.size == 0:
            return b""
        return read_bytes(self._fd(entry.shard_id), entry.offset, entry.size, path=self._files[entry.shard_id],
                          hint=_DAMAGED)

    def _verify(self, key: bytes, entry: BundleEntry, raw) -> None:
        """Check stored bytes against the entry's CRC32C (once per key)."""
        if key not in self._verified:
            if crc32c(raw) != unmask(entry.crc32c):
                raise CorruptCheckpointError(f"CRC mismatch in tensor {key.decode('utf-8', 'replace')!r}",
                                             path=self._files[entry.shard_id], hint=_DAMAGED)
            self._verified.add(key)

    def _strings(self, key: bytes, entry: BundleEntry, data: bytes) -> list[bytes]:
        """A string tensor's values from its stored bytes; a contradiction is a one-line error."""
        try:
            return string_values(data, math.prod(entry.shape), entry.crc32c)
        except (ValueError, ProtoError) as e:
            raise CorruptCheckpointError(f"string tensor {key.decode('utf-8', 'replace')!r}: {e}",
                                         path=self._files[entry.shard_id], hint=_DAMAGED) from e

    def _raw(self, entry: BundleEntry) -> np.ndarray:
        """The stored bytes of one entry, read into a buffer of their own (freed with the array, so
        memory stays ~ one tensor). A file that shrank since it was opened gives a clean error."""
        if entry.size == 0:
            import numpy as np

            return np.empty(0, np.uint8)
        return read_exact(self._fd(entry.shard_id), entry.offset, entry.size, path=self._files[entry.shard_id],
                          hint=_DAMAGED)

    def _read(self, key: bytes, entry: BundleEntry, dtype: DType) -> np.ndarray:
        if entry.slices:
            return self._assemble(key, entry, dtype)
        return self._read_plain(key, entry, dtype)

    def _read_plain(self, key: bytes, entry: BundleEntry, dtype: DType) -> np.ndarray:
        import numpy as np

        raw = self._raw(entry)
        if dtype.name == "object":
            out = np.empty(math.prod(entry.shape), dtype=object)
            for i, value in enumerate(self._strings(key, entry, raw.tobytes())):
                out[i] = value
            return out.reshape(entry.shape)
        self._verify(key, entry, raw)
        np_dtype = _numeric_dtype(dtype, self._index.header.endianness)
        if raw.ctypes.data % np_dtype.itemsize:
            array = raw.copy().view(np_dtype)  # misaligned: one aligned copy
        else:
            array = np.frombuffer(raw, np_dtype)
        array = array.reshape(entry.shape)
        return array.astype(dtype.numpy) if np_dtype != dtype.numpy else array

    def _assemble(self, full_key: bytes, entry: BundleEntry, dtype: DType) -> np.ndarray:
        import numpy as np

        out = np.empty(entry.shape, dtype.numpy)
        for extents in entry.slices:
            key = slice_key(full_key, extents)
            part = self._read_plain(key, self._index.entries[key], dtype)
            out[_slice_index(extents)] = part
        out.flags.writeable = False
        return out

    def close(self) -> None:
        """Close the data files. Arrays already returned stay valid (each owns its bytes)."""
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()


def _slice_lengths(shape: tuple[int, ...], extents) -> tuple[int, ...] | None:
    if len(extents) != len(shape):
        return None
    lengths = []
    for dim, extent in zip(shape, extents):
        start, length = extent if extent is not None else (0, dim)
        if start < 0 or length < 0 or start + length > dim:
            return None
        lengths.append(length)
    return tuple(lengths)


def _slice_index(extents) -> tuple[slice, ...]:
    return tuple(slice(None) if e is None else slice(e[0], e[0] + e[1]) for e in extents)


def open_tf_checkpoint(path: str | os.PathLike) -> TFCheckpoint:
    """Open a TensorFlow checkpoint lazily, without TensorFlow.

    Args:
        path: a checkpoint directory (with its ``checkpoint`` state file), a prefix such as
            ``run/model.ckpt-20000``, its ``.index`` file, or a data shard.

    Returns:
        A :class:`TFCheckpoint` (a read-only mapping name -> :class:`TFTensor`; a context manager).

    Raises:
        CheckpointNotFoundError, CorruptCheckpointError, UnsupportedFormatError.

    Example:
        >>> open_tf_checkpoint("no/such/model.ckpt")
        Traceback (most recent call last):
        ...
        ckptkit.errors.CheckpointNotFoundError: no/such/model.ckpt: no such checkpoint (give a checkpoint directory, a prefix such as model.ckpt-20000, or its .index)
    """
    return TFCheckpoint(resolve_prefix(path))
