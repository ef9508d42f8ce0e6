"""safetensors: a validating lazy reader (single file or sharded index) and a streaming writer.

The reader accepts a file exactly when the safetensors library does (see safetensors_header)
and reads each tensor with one positional read into a buffer of its own: no memory map, so a
file truncated while it is read gives a one-line error, never SIGBUS. The writer knows every
tensor's dtype and shape up front (from a Plan), so it sizes the file, writes the header, and
writes each tensor (a view: transposed or cast on the way) with positional writes, never a map.

Example:
    >>> import numpy as np, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "w.safetensors")
    >>> save_safetensors(path, {"a": np.arange(4, dtype=np.float32)})
    >>> with open_safetensors(path) as ckpt:
    ...     ckpt["a"].read().tolist()
    [0.0, 1.0, 2.0, 3.0]
"""

from __future__ import annotations

import errno
import json
import math
import os
import struct
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Mapping

from ckptkit.converters.formats.safetensors_header import HEADER_HINT, check_header_length, parse_header
from ckptkit.converters.memory import numpy_shape_problem, read_bytes, read_exact
from ckptkit.converters.tensors import Checkpoint, DType, LazyTensor, dtype_by_safetensors, dtype_of
if TYPE_CHECKING:
    import numpy as np

from ckptkit.errors import (
    CheckpointNotFoundError, CorruptCheckpointError, UnsafeCheckpointError, UnsupportedFormatError,
)

__all__ = ["open_safetensors", "save_safetensors", "SafetensorsWriter", "read_weight_index", "TensorSpec"]

_DAMAGED = "the file shrank or is incomplete; copy it again"


class TensorSpec(tuple):
    """(name, dtype, shape) of a tensor to be written."""

    __slots__ = ()

    def __new__(cls, name: str, dtype: DType, shape: tuple[int, ...]):
        return super().__new__(cls, (name, dtype, tuple(int(s) for s in shape)))

    name = property(lambda self: self[0])
    dtype = property(lambda self: self[1])
    shape = property(lambda self: self[2])

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize


class SafetensorsCheckpoint(Checkpoint):
    format = "safetensors"

    def __init__(self, path: str, tensors: Mapping[str, LazyTensor], *, files: list[str], sources: list,
                 extras: dict):
        super().__init__(path, tensors, files=files, extras=extras)
        self._sources = sources

    def close(self) -> None:
        """Close the files; arrays already read stay valid (each owns its bytes)."""
        for source in self._sources:
            source.close()


class _SourceFile:
    """One safetensors file, read with positional reads through the descriptor its header came from
    (a file replaced by rename keeps being read as it was; one truncated gives a short read)."""

    def __init__(self, path: str):
        self.path = path
        self._file = open(path, "rb", buffering=0)

    @property
    def size(self) -> int:
        return os.fstat(self._fd()).st_size

    def _fd(self) -> int:
        if self._file.closed:  # read again after close(): reopen
            self._file = open(self.path, "rb", buffering=0)
        return self._file.fileno()

    def read(self, offset: int, nbytes: int) -> np.ndarray:
        return read_exact(self._fd(), offset, nbytes, path=self.path, hint=_DAMAGED)

    def read_bytes(self, offset: int, nbytes: int) -> bytes:
        """Header bytes, without NumPy."""
        return read_bytes(self._fd(), offset, nbytes, path=self.path, hint=_DAMAGED)

    def close(self) -> None:
        self._file.close()


def _read_header(source: _SourceFile) -> tuple[dict | None, dict, int]:
    """(metadata, {name: (code, shape, offsets)}, data start) of a file, validated as the library does."""
    size = source.size
    if size < 8:
        raise CorruptCheckpointError(f"file of {size} bytes is too short to be safetensors", path=source.path)
    (header_len,) = struct.unpack("<Q", source.read_bytes(0, 8))
    check_header_length(header_len, size, source.path)
    metadata, entries = parse_header(source.read_bytes(8, header_len), data_len=size - 8 - header_len,
                                     path=source.path)
    return metadata, entries, 8 + header_len


def _file_tensors(path: str) -> tuple[dict[str, LazyTensor], _SourceFile, dict]:
    if not os.path.isfile(path):
        raise CheckpointNotFoundError("file not found", path=path)
    source = _SourceFile(path)
    try:
        metadata, entries, data_start = _read_header(source)
        tensors = {name: _lazy(source, name, entry, data_start) for name, entry in entries.items()}
    except BaseException:
        source.close()
        raise
    return tensors, source, metadata or {}


def _lazy(source: _SourceFile, name: str, entry: tuple, data_start: int) -> LazyTensor:
    code, shape, (begin, end) = entry
    try:
        dtype = dtype_by_safetensors(code)
    except UnsupportedFormatError as e:
        raise UnsupportedFormatError(f"tensor {name!r}: {e.message}", path=source.path, hint=e.hint) from None
    problem = numpy_shape_problem(shape, dtype.itemsize)
    if problem:
        raise UnsupportedFormatError(f"tensor {name!r}: {problem}", path=source.path)
    offset = data_start + begin

    def load() -> np.ndarray:
        return source.read(offset, end - begin).view(dtype.numpy).reshape(shape)

    return LazyTensor(name, dtype, shape, loader=load, location=f"{source.path}@{offset}",
                      byte_range=(source.path, offset, end - begin),
                      stored=lambda: source.read_bytes(offset, end - begin))


def weights_file_in(path: str, candidates: tuple[str, ...]) -> str:
    """``path`` itself, or for a folder the first of ``candidates`` inside it (else the folder)."""
    if os.path.isdir(path):
        for candidate in candidates:
            if os.path.isfile(os.path.join(path, candidate)):
                return os.path.join(path, candidate)
    return path


def _load_weight_map(index_path: str) -> dict:
    try:
        with open(index_path, "rb") as f:
            document = json.loads(f.read().decode("utf-8"))
        weight_map = document["weight_map"]
        if not isinstance(weight_map, dict):
            raise TypeError("weight_map is not an object")
    except (KeyError, TypeError, ValueError, RecursionError) as e:  # ValueError: bad JSON or UTF-8
        reason = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
        raise CorruptCheckpointError(f"not a valid weight index ({reason})", path=index_path,
                                     hint="expected {\"weight_map\": {tensor name: shard file}}") from None
    return weight_map


def _check_shard_name(shard: object, name: str, index_path: str) -> None:
    """A shard name must be a plain, encodable file name: no NUL, no unpaired surrogate."""
    if not isinstance(shard, str) or not shard or "\0" in shard:
        raise CorruptCheckpointError(f"tensor {name[:200]!r} names the shard {str(shard)[:200]!r}, not a file name",
                                     path=index_path, hint="fix the index's weight_map")
    try:
        os.fsencode(shard)
    except UnicodeError:
        raise CorruptCheckpointError(f"tensor {name[:200]!r} names a shard that is not a valid file name",
                                     path=index_path, hint="fix the index's weight_map") from None


def read_weight_index(index_path: str) -> dict[str, str]:
    """Read a ``*.index.json`` and return its weight_map with paths checked to stay in the folder.

    Example:
        >>> read_weight_index("missing.index.json")
        Traceback (most recent call last):
        ...
        ckptkit.errors.CheckpointNotFoundError: missing.index.json: index file not found
    """
    if not os.path.isfile(index_path):
        raise CheckpointNotFoundError("index file not found", path=index_path)
    weight_map = _load_weight_map(index_path)
    folder = Path(index_path).resolve().parent
    checked: set[str] = set()
    for name, shard in weight_map.items():
        _check_shard_name(shard, name, index_path)
        if shard in checked:
            continue
        target = Path(os.path.realpath(folder / shard))
        if os.path.isabs(shard) or folder not in target.parents:
            raise UnsafeCheckpointError(f"tensor {name[:200]!r} points to {shard[:200]!r}, outside the checkpoint "
                                        "folder", path=index_path,
                                        hint="fix the index; ckptkit reads only files beside it")
        if not os.path.isfile(target):
            raise CheckpointNotFoundError(f"shard {shard[:200]!r} named in the index is missing", path=index_path,
                                          hint="copy every shard next to the index")
        checked.add(shard)
    return weight_map


def open_safetensors(path: str) -> SafetensorsCheckpoint:
    """Open a ``.safetensors`` file or a sharded ``model.safetensors.index.json`` lazily.

    Args:
        path: the file, the index json, or a folder holding either.

    Returns:
        A checkpoint mapping whose tensors are read on demand, each into a buffer of its own.

    Raises:
        CheckpointNotFoundError, CorruptCheckpointError (whatever ``safetensors.safe_open`` refuses),
        UnsupportedFormatError (a dtype ckptkit has no NumPy type for, or over 64 dimensions).

    Example:
        >>> open_safetensors("nope.safetensors")
        Traceback (most recent call last):
        ...
        ckptkit.errors.CheckpointNotFoundError: nope.safetensors: file not found
    """
    path = weights_file_in(path, ("model.safetensors.index.json", "model.safetensors"))
    if not path.endswith(".index.json"):
        tensors, source, metadata = _file_tensors(path)
        return SafetensorsCheckpoint(path, tensors, files=[path], sources=[source],
                                     extras={"metadata": metadata, "sharded": False})
    weight_map = read_weight_index(path)
    folder = os.path.dirname(path)
    tensors, sources, files, metadata = {}, [], [], {}
    try:
        for shard in dict.fromkeys(weight_map.values()):
            shard_path = os.path.join(folder, shard)
            shard_tensors, source, metadata = _file_tensors(shard_path)
            sources.append(source)
            files.append(shard_path)
            tensors.update({n: t for n, t in shard_tensors.items() if weight_map.get(n) == shard})
        missing = sorted(set(weight_map) - set(tensors))
        if missing:
            raise CorruptCheckpointError(f"{len(missing)} tensors named in the index are not in their shards, "
                                         f"e.g. {missing[0][:200]!r}", path=path)
    except BaseException:
        for source in sources:
            source.close()
        raise
    return SafetensorsCheckpoint(path, tensors, files=files, sources=sources,
                                 extras={"metadata": metadata, "sharded": True})


class SafetensorsWriter:
    """Write one safetensors file whose tensors are all declared up front.

    Stages: construction (header written, file sized and its blocks reserved) -> ``write`` for each
    tensor -> ``close`` (atomic rename) or ``abort`` (temporary file removed).

    Example:
        >>> import numpy as np, tempfile, os
        >>> from ckptkit.converters.tensors import dtype_by_name
        >>> path = os.path.join(tempfile.mkdtemp(), "x.safetensors")
        >>> w = SafetensorsWriter(path, [TensorSpec("x", dtype_by_name("int32"), (2,))])
        >>> w.write("x", np.array([7, 8], np.int32)); w.close()
        >>> open_safetensors(path)["x"].read().tolist()
        [7, 8]
    """

    def __init__(self, path: str, specs: Iterable[TensorSpec], *, metadata: Mapping[str, str] | None = None):
        self.path = os.fspath(path)
        specs = list(specs)
        # Largest element size first keeps every tensor aligned to its own itemsize.
        ordered = sorted(specs, key=lambda s: (-s.dtype.itemsize, s.name))
        header: dict = {"__metadata__": dict(metadata)} if metadata else {}
        self._slots: dict[str, tuple[int, TensorSpec]] = {}
        offset = 0
        for spec in ordered:
            header[spec.name] = {"dtype": spec.dtype.safetensors, "shape": list(spec.shape),
                                 "data_offsets": [offset, offset + spec.nbytes]}
            self._slots[spec.name] = (offset, spec)
            offset += spec.nbytes
        blob = json.dumps(header, separators=(",", ":")).encode()
        blob += b" " * (-len(blob) % 8)
        self._data_start = 8 + len(blob)
        total = self._data_start + offset
        self._tmp = f"{self.path}.tmp-{os.getpid()}"
        self._file = open(self._tmp, "w+b")
        try:
            _reserve(self._file.fileno(), total, os.path.basename(self.path))
            self._file.write(struct.pack("<Q", len(blob)) + blob)
            self._file.flush()
        except BaseException:
            self.abort()
            raise
        self._pending = set(self._slots)

    def write(self, name: str, array: np.ndarray) -> None:
        """Store ``array`` (any view of the declared shape: transposed, sliced; another dtype is cast as
        the plan's ``cast`` op casts) as tensor ``name``, with positional writes (see stream_write)."""
        offset, spec = self._slot(name)
        if tuple(array.shape) != spec.shape or not _castable(array.dtype, spec.dtype.numpy):
            raise ValueError(f"tensor {name!r}: got {array.dtype}{list(array.shape)}, declared "
                             f"{spec.dtype.name}{list(spec.shape)}")
        if spec.nbytes:
            from ckptkit.converters.stream_write import write_array

            write_array(self._file.fileno(), self._data_start + offset, array, spec.dtype.numpy)
        self._pending.discard(name)

    def _slot(self, name: str) -> tuple[int, TensorSpec]:
        if self._file is None:
            raise ValueError(f"{self.path}: writer is closed")
        if name not in self._slots:
            raise KeyError(f"tensor {name!r} was not declared for {self.path}")
        return self._slots[name]

    def close(self) -> None:
        """Flush and move the file into place; every declared tensor must have been written."""
        if self._pending:
            missing = sorted(self._pending)
            self.abort()
            raise ValueError(f"{self.path}: {len(missing)} declared tensors never written, e.g. {missing[0]!r}")
        # No fsync: dirty pages reach the disk through the page cache (forcing it costs ~0.4 s/GB);
        # the rename below is what makes the file appear.
        self._file.close()
        self._file = None
        os.replace(self._tmp, self.path)

    def abort(self) -> None:
        """Drop the temporary file; nothing appears at ``path``."""
        if self._file is not None:
            self._file.close()
            self._file = None
        if os.path.exists(self._tmp):
            os.remove(self._tmp)


def _castable(have: np.dtype, want: np.dtype) -> bool:
    """A value of dtype ``have`` may be written as ``want``: the same, or both numeric (a planned cast)."""
    return have == want or (have.kind in "biuf" or have.name == "bfloat16") and (want.kind in "biuf" or
                                                                                  want.name == "bfloat16")


def _reserve(fd: int, size: int, name: str) -> None:
    """Give the file all ``size`` bytes on disk now: writing into a mapping of a sparse file on a full
    disk ends in SIGBUS; here it ends in ``OSError(ENOSPC)`` before anything is written."""
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as e:
        if e.errno in (errno.EINVAL, errno.EOPNOTSUPP):  # no allocation on this file system: size it only
            os.ftruncate(fd, size)
            return
        raise OSError(e.errno, f"{e.strerror}: reserving {size / 2**20:.1f} MiB for {name}") from e


def save_safetensors(path: str, tensors: Mapping[str, np.ndarray], *, metadata: Mapping[str, str] | None = None
                     ) -> None:
    """Write NumPy arrays to one safetensors file (atomically).

    Example:
        >>> import numpy as np, tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "t.safetensors")
        >>> save_safetensors(p, {"b": np.ones((2, 2), np.float16)}, metadata={"format": "pt"})
        >>> open_safetensors(p).extras["metadata"]
        {'format': 'pt'}
    """
    import numpy as np

    writer = SafetensorsWriter(path, [TensorSpec(n, dtype_of(a.dtype), a.shape) for n, a in tensors.items()],
                               metadata=metadata)
    try:
        for name, array in tensors.items():
            writer.write(name, np.asarray(array))
    except BaseException:
        writer.abort()
        raise
    writer.close()
