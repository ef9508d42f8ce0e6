"""Write TensorFlow checkpoints (``.index`` + ``.data-*`` + ``checkpoint``) that TensorFlow reads.

The streaming :class:`TFCheckpointWriter` holds one tensor at a time: bytes go straight to
temporary files in the target directory (non-contiguous arrays in bounded chunks, CRC computed
as they stream) and everything is renamed into place by :meth:`~TFCheckpointWriter.close`.

Example:
    >>> import numpy as np, tempfile, os
    >>> prefix = os.path.join(tempfile.mkdtemp(), "model.ckpt-1")
    >>> with TFCheckpointWriter(prefix) as writer:
    ...     writer.add("bert/pooler/dense/bias", np.zeros(4, np.float32))
    ...     writer.add("global_step", np.int64(1))
    >>> sorted(os.listdir(os.path.dirname(prefix)))
    ['checkpoint', 'model.ckpt-1.data-00000-of-00001', 'model.ckpt-1.index']
"""

from __future__ import annotations

import os
import secrets
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from ckptkit.converters.formats.tf1.checksum import crc32c, crc32c_extend, mask
from ckptkit.converters.formats.tf1.messages import BundleEntry, BundleHeader, Extent, encode_entry, encode_header
from ckptkit.converters.formats.tf1.paths import data_file
from ckptkit.converters.formats.tf1.proto import encode_varint
from ckptkit.converters.formats.tf1.slices import decode_slice_key, slice_key
from ckptkit.converters.formats.tf1.state import STATE_FILE, format_state, parse_state
from ckptkit.converters.formats.tf1.table import build_table
from ckptkit.converters.stream_write import iter_bands
from ckptkit.converters.tensors import DType, dtype_of
from ckptkit.errors import UsageError

__all__ = ["TFCheckpointWriter", "write_tf_checkpoint", "rewrite_tf_checkpoint"]

_OPEN, _CLOSED, _ABORTED = "open", "closed", "aborted"


@dataclass
class _Shard:
    path: str
    handle: object = None
    size: int = 0


@dataclass
class _Partitioned:
    dtype: DType
    shape: tuple[int, ...]
    slices: list[tuple[Extent, ...]] = field(default_factory=list)
    shard_id: int = 0  # TensorFlow's MergeBundles records the shard the full entry came from


def _key(name: str | bytes) -> bytes:
    if isinstance(name, bytes):
        key = name
    elif isinstance(name, str):
        key = name.encode("utf-8")
    else:
        raise UsageError(f"tensor name {name!r} is not a string")
    if not key or key.startswith(b"\0"):
        raise UsageError(f"tensor name {name!r} is empty or starts with NUL (reserved by the format)")
    return key


def _as_array(name, array) -> tuple[np.ndarray, DType]:
    arr = np.asarray(array)
    dtype = dtype_of(arr.dtype)
    if dtype.name == "object":
        arr = _string_array(name, arr)
    return arr, dtype


def _string_array(name, arr: np.ndarray) -> np.ndarray:
    out = np.empty(arr.shape, dtype=object)
    flat = out.reshape(-1)
    for i, item in enumerate(arr.reshape(-1)):
        if isinstance(item, str):
            item = item.encode("utf-8")
        if not isinstance(item, bytes):
            raise UsageError(f"tensor {name!r}: element {i} is {type(item).__name__}; string tensors hold bytes or str")
        flat[i] = item
    return out


def _chunks(a: np.ndarray, target: np.dtype) -> Iterable[np.ndarray]:
    """C-order pieces of ``a`` as contiguous little-endian arrays: ``a`` itself when it already is one,
    else bands of ~8 MiB copied (transposed views tile by tile) into one reused buffer."""
    if a.dtype == target and a.flags.c_contiguous:
        yield a
        return
    for _, band in iter_bands(a, target):
        yield band


def encode_strings(values: np.ndarray) -> tuple[bytes, int]:
    """A DT_STRING tensor's bytes and their running CRC (lengths, length checksum, data)."""
    items = list(values.reshape(-1))
    lengths = b"".join(encode_varint(len(s)) for s in items)
    crc = crc32c(b"".join(struct.pack("<I" if len(s) <= 0xFFFFFFFF else "<Q", len(s)) for s in items))
    length_crc = struct.pack("<I", mask(crc))
    data = b"".join(items)
    return lengths + length_crc + data, crc32c_extend(crc32c_extend(crc, length_crc), data)


class TFCheckpointWriter:
    """Stream tensors into a TF checkpoint: ``add()`` any number of times, in any order, then ``close()``.

    Stages: *open* (``add``/``add_slice`` allowed) -> *closed* (files renamed into place) or
    *aborted* (temporary files removed). As a context manager it closes on success and aborts
    on an exception.

    Args:
        prefix: output prefix, e.g. ``out/model.ckpt-20000`` (the directory is created).
        num_shards: spread tensors over this many data files (each to the emptiest shard).
        max_shard_size: instead, start a new data file when the current one would exceed this.
        write_state: also write/update the directory's ``checkpoint`` state file.
    """

    def __init__(self, prefix: str | os.PathLike, *, num_shards: int = 1, max_shard_size: int | None = None,
                 write_state: bool = True):
        if not isinstance(num_shards, int) or num_shards < 1:
            raise UsageError(f"num_shards must be a positive integer, got {num_shards!r}")
        if max_shard_size is not None and (num_shards != 1 or max_shard_size <= 0):
            raise UsageError("give either num_shards or a positive max_shard_size, not both")
        self.prefix = os.fspath(prefix)
        directory, base = os.path.split(os.path.abspath(self.prefix))
        os.makedirs(directory, exist_ok=True)
        self._tmp = os.path.join(directory, f".{base}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
        self._max_shard_size = max_shard_size
        self._write_state = write_state
        self._shards = [_Shard(f"{self._tmp}.data-{i}") for i in range(num_shards)]
        self._entries: dict[bytes, BundleEntry] = {}
        self._partitioned: dict[bytes, _Partitioned] = {}
        self._stage = _OPEN

    # ------------------------------------------------------------ stages

    def _require_open(self, action: str) -> None:
        if self._stage != _OPEN:
            raise UsageError(f"{action} needs an open writer, but this one is {self._stage} ({self.prefix})")

    def __enter__(self) -> "TFCheckpointWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()
        elif self._stage == _OPEN:
            self.close()

    # ------------------------------------------------------------ adding

    def add(self, name: str | bytes, array, *, shard: int | None = None) -> None:
        """Write one tensor now (numeric, bool, or strings as an object array of bytes/str).

        Example:
            >>> import tempfile, os
            >>> w = TFCheckpointWriter(os.path.join(tempfile.mkdtemp(), "m"))
            >>> w.add("x", np.arange(6, dtype=np.int32).reshape(2, 3).T)  # a non-contiguous view
            >>> w.add("x", np.zeros(1))
            Traceback (most recent call last):
            ...
            ckptkit.errors.UsageError: tensor 'x' was already added
            >>> w.abort()
        """
        self._require_open("add()")
        key = _key(name)
        if key in self._entries or key in self._partitioned:
            raise UsageError(f"tensor {name!r} was already added")
        arr, dtype = _as_array(name, array)
        self._entries[key] = self._write(arr, dtype, shard)

    def add_slice(self, name: str | bytes, array, *, full_shape: tuple[int, ...],
                  extents: tuple[Extent, ...], shard: int | None = None) -> None:
        """Write one slice of a partitioned variable; each extent is (start, length) or None (whole dim).

        Example:
            >>> import tempfile, os
            >>> w = TFCheckpointWriter(os.path.join(tempfile.mkdtemp(), "m"))
            >>> w.add_slice("emb", np.ones((2, 3)), full_shape=(4, 3), extents=((0, 2), None))
            >>> w.add_slice("emb", np.zeros((2, 3)), full_shape=(4, 3), extents=((2, 2), None))
            >>> w.close().endswith("m")
            True
        """
        self._require_open("add_slice()")
        key = _key(name)
        arr, dtype = _as_array(name, array)
        full_shape = tuple(int(d) for d in full_shape)
        extents = tuple(None if e is None else (int(e[0]), int(e[1])) for e in extents)
        expected = tuple(d if e is None else e[1] for d, e in zip(full_shape, extents))
        if key in self._entries:
            raise UsageError(f"tensor {name!r} was already added whole")
        part = self._partitioned.setdefault(key, _Partitioned(dtype, full_shape))
        if (part.dtype, part.shape) != (dtype, full_shape) or len(extents) != len(full_shape) or \
                arr.shape != expected or extents in part.slices or \
                any(e is not None and (e[0] < 0 or e[1] < 0 or e[0] + e[1] > d) for d, e in zip(full_shape, extents)):
            raise UsageError(f"slice {list(extents)} of {name!r} does not fit a {part.dtype.name} tensor of shape "
                             f"{list(part.shape)} (array {arr.dtype} {list(arr.shape)}), or was already added")
        self._entries[slice_key(key, extents)] = self._write(arr, dtype, shard)
        part.slices.append(extents)

    def order_slices(self, name: str | bytes, order: Iterable[tuple[Extent, ...]], *, shard_id: int = 0) -> None:
        """List the slices of ``name`` in this order and record ``shard_id`` in its full entry
        (what TensorFlow's sharded saves do; for byte-identical rewrites)."""
        part = self._partitioned[_key(name)]
        order = [tuple(e) for e in order]
        if sorted(map(repr, order)) != sorted(map(repr, part.slices)):
            raise UsageError(f"slice order for {name!r} does not name the slices that were added")
        part.slices, part.shard_id = order, shard_id

    def _pick_shard(self, nbytes: int, shard: int | None) -> int:
        if shard is not None:
            if not 0 <= shard < len(self._shards) or self._max_shard_size is not None:
                raise UsageError(f"shard {shard} is not one of the writer's {len(self._shards)} shards")
            return shard
        if self._max_shard_size is None:
            return min(range(len(self._shards)), key=lambda i: self._shards[i].size)
        last = len(self._shards) - 1
        if self._shards[last].size and self._shards[last].size + nbytes > self._max_shard_size:
            self._shards.append(_Shard(f"{self._tmp}.data-{last + 1}"))
            last += 1
        return last

    def _write(self, arr: np.ndarray, dtype: DType, shard: int | None) -> BundleEntry:
        if dtype.name == "object":
            data, crc = encode_strings(arr)
            pieces: Iterable = [np.frombuffer(data, np.uint8)] if data else []
            nbytes = len(data)
        else:
            nbytes = arr.size * dtype.itemsize
            pieces = _chunks(arr, dtype.numpy.newbyteorder("<")) if nbytes else []
            crc = None
        index = self._pick_shard(nbytes, shard)
        target = self._shards[index]
        if target.handle is None:
            target.handle = open(target.path, "wb")
        offset, running = target.size, 0
        for piece in pieces:
            flat = piece.reshape(-1).view(np.uint8)
            target.handle.write(flat)
            running = crc32c_extend(running, flat)
        target.size += nbytes
        return BundleEntry(dtype=dtype.tf_enum, shape=tuple(arr.shape), shard_id=index, offset=offset, size=nbytes,
                           crc32c=mask(crc if crc is not None else running))

    # ------------------------------------------------------------ finishing

    def _index_bytes(self) -> bytes:
        entries = dict(self._entries)
        for key, part in self._partitioned.items():
            covered = sum(int(np.prod([d if e is None else e[1] for d, e in zip(part.shape, s)], dtype=object))
                          for s in part.slices)
            if covered != int(np.prod(part.shape, dtype=object)):
                raise UsageError(f"slices of {key.decode('utf-8', 'replace')!r} cover {covered} of "
                                 f"{int(np.prod(part.shape, dtype=object))} elements")
            entries[key] = BundleEntry(dtype=part.dtype.tf_enum, shape=part.shape, shard_id=part.shard_id,
                                       slices=tuple(part.slices))
        header = encode_header(BundleHeader(num_shards=len(self._shards)))
        return build_table([(b"", header), *((k, encode_entry(entries[k])) for k in sorted(entries))])

    def close(self) -> str:
        """Finish: write the index, rename every file into place, update the state file.

        Returns:
            The checkpoint prefix.
        """
        self._require_open("close()")
        try:
            index = self._index_bytes()
            for shard in self._shards:
                if shard.handle is None:
                    shard.handle = open(shard.path, "wb")
                shard.handle.close()
            with open(f"{self._tmp}.index", "wb") as f:
                f.write(index)
            count = len(self._shards)
            for i, shard in enumerate(self._shards):
                os.replace(shard.path, data_file(self.prefix, i, count))
            os.replace(f"{self._tmp}.index", f"{self.prefix}.index")
            if self._write_state:
                _update_state(self.prefix)
        except BaseException:
            self.abort()
            raise
        self._stage = _CLOSED
        return self.prefix

    def abort(self) -> None:
        """Stop and remove every temporary file; nothing of this checkpoint is left behind."""
        if self._stage == _CLOSED:
            return
        for shard in self._shards:
            if shard.handle is not None:
                shard.handle.close()
        for path in [s.path for s in self._shards] + [f"{self._tmp}.index", f"{self._tmp}.state"]:
            try:
                os.remove(path)
            except FileNotFoundError:
                pass
        self._stage = _ABORTED


def _update_state(prefix: str) -> None:
    directory, base = os.path.split(os.path.abspath(prefix))
    state_path = os.path.join(directory, STATE_FILE)
    previous: list[str] = []
    if os.path.isfile(state_path):
        with open(state_path, encoding="utf-8", errors="replace") as f:
            previous = parse_state(f.read()).get("all_model_checkpoint_paths", [])
    kept = [p for p in previous if p != base and os.path.isfile(os.path.join(directory, p) + ".index")]
    tmp = os.path.join(directory, f".{STATE_FILE}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(format_state(base, [*kept, base]))
    os.replace(tmp, state_path)


def write_tf_checkpoint(prefix: str | os.PathLike, items: Iterable[tuple[str, np.ndarray]] | Mapping,
                        *, num_shards: int = 1, max_shard_size: int | None = None, write_state: bool = True) -> str:
    """Write ``(name, array)`` pairs as a TensorFlow checkpoint; returns the prefix.

    Example:
        >>> import tempfile, os
        >>> prefix = write_tf_checkpoint(os.path.join(tempfile.mkdtemp(), "model.ckpt"),
        ...                              {"w": np.ones((2, 2), np.float16), "tag": np.array([b"a", b"bc"], object)})
        >>> os.path.basename(prefix)
        'model.ckpt'
    """
    pairs = items.items() if isinstance(items, Mapping) else items
    with TFCheckpointWriter(prefix, num_shards=num_shards, max_shard_size=max_shard_size,
                            write_state=write_state) as writer:
        for name, array in pairs:
            writer.add(name, array)
    return writer.prefix


def rewrite_tf_checkpoint(src: str | os.PathLike, dst_prefix: str | os.PathLike, *, write_state: bool = True) -> str:
    """Copy a checkpoint through our reader and writer, keeping shard layout and data order.

    For a checkpoint TensorFlow wrote, the ``.index`` and ``.data`` files come out byte-identical.
    Every tensor's CRC is checked on the way.

    Example:
        >>> import tempfile, os
        >>> d = tempfile.mkdtemp()
        >>> src = write_tf_checkpoint(os.path.join(d, "a"), [("w", np.arange(3.0))], write_state=False)
        >>> dst = rewrite_tf_checkpoint(src, os.path.join(d, "b"), write_state=False)
        >>> open(src + ".index", "rb").read() == open(dst + ".index", "rb").read()
        True
    """
    from ckptkit.converters.formats.tf1.reader import open_tf_checkpoint

    with open_tf_checkpoint(src) as ckpt:
        entries = ckpt.entries
        order = sorted((e.shard_id, e.offset, k) for k, e in entries.items() if not e.slices)
        with TFCheckpointWriter(dst_prefix, num_shards=ckpt.header.num_shards, write_state=write_state) as writer:
            for shard, _, key in order:
                array = ckpt.read_entry(key)
                if key.startswith(b"\0"):
                    name, extents = _slice_of(key, entries)
                    writer.add_slice(name, array, full_shape=entries[name].shape, extents=extents, shard=shard)
                else:
                    writer.add(key, array, shard=shard)
                del array
            for key, entry in entries.items():
                if entry.slices:
                    writer.order_slices(key, entry.slices, shard_id=entry.shard_id)
    return writer.prefix


def _slice_of(key: bytes, entries: Mapping[bytes, BundleEntry]) -> tuple[bytes, tuple[Extent, ...]]:
    raw, extents = decode_slice_key(key, raw=True)
    if raw not in entries or slice_key(raw, extents) != key:
        raise UsageError(f"slice key {key!r} belongs to no partitioned tensor")
    return raw, extents
