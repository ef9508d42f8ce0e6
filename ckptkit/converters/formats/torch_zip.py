"""The layout of a PyTorch zip checkpoint (``torch.save`` since 1.6), read without torch and without a map.

A ``.bin`` is a zip archive of stored (uncompressed) entries: ``<archive>/data.pkl`` pickles the state
dict, each tensor a call to one of torch's rebuild functions over a storage named ``data/<key>``.
:func:`read_layout` lists the entries (the central directory through :mod:`zipfile`; each entry's data
offset from its local header) and unpickles ``data.pkl`` with :class:`_StateUnpickler`, which runs no
code: every global is looked up in :data:`GLOBALS`, a table of inert stand-ins that only record what
torch would have built (:class:`TensorRecord`); anything else is refused in one line. The tensor bytes
are then read with positioned reads (:func:`ckptkit.converters.memory.read_exact`) by ``torch_bin``.

Example:
    >>> import numpy as np, tempfile, os
    >>> from ckptkit.converters.formats.torch_bin import save_torch_bin
    >>> path = os.path.join(tempfile.mkdtemp(), "m.bin")
    >>> save_torch_bin(path, {"w": np.zeros((2, 3), np.float32)})
    >>> with open(path, "rb", buffering=0) as f:
    ...     layout = read_layout(f.fileno(), path)
    >>> record = layout.tensors["w"]
    >>> record.shape, record.stride, record.dtype.name
    ((2, 3), (3, 1), 'float32')
"""

from __future__ import annotations

import _compat_pickle
import collections
import io
import os
import pickle
import re
import struct
import zipfile
from dataclasses import dataclass
from typing import Any

from ckptkit.converters.memory import BYTE_SOURCES, read_bytes
from ckptkit.converters.tensors import DTYPES, DType, dtype_by_name
from ckptkit.errors import CkptkitError, CorruptCheckpointError, UnsafeCheckpointError, UnsupportedFormatError

__all__ = ["TensorRecord", "ZipEntry", "ZipLayout", "read_layout", "data_offset", "GLOBALS"]

_LOCAL_HEADER = struct.Struct("<4s22xHH")  # signature, (version .. sizes), name length, extra length
_LOCAL_SIGNATURE = b"PK\x03\x04"
_WINDOW = 64 << 10  # bytes fetched around a metadata read of a remote file (end record, directory, data.pkl)
_MAX_PICKLE = 1 << 30  # bytes of data.pkl at most (a state dict's pickle is a few hundred KB)
_RESAVE = "re-save it with torch.save, or convert it in a trusted environment"
_TORCH_TYPE = re.compile(r"^(float\d|bfloat\d|complex\d|u?int\d|qu?int\d|bits\d|\w+Storage$)")  # dtypes, storages


@dataclass(frozen=True)
class _Storage:
    """A storage named by a persistent id: its record key, element type (None: untyped bytes), count."""

    key: str
    dtype: DType | None
    numel: int

    @property
    def nbytes(self) -> int:
        return self.numel * (self.dtype.itemsize if self.dtype is not None else 1)


@dataclass(frozen=True)
class TensorRecord:
    """One tensor as torch would rebuild it: a view (offset, shape, stride in elements) of a storage."""

    storage: _Storage
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]
    dtype: DType

    @property
    def span(self) -> int:
        """Elements of the storage the view reaches, from ``offset`` (0 for an empty tensor)."""
        if any(size == 0 for size in self.shape):
            return 0
        return 1 + sum((size - 1) * step for size, step in zip(self.shape, self.stride))

    @property
    def contiguous(self) -> bool:
        """Whether the view is the storage's bytes in C order (dimensions of size 1 ignored)."""
        expected = 1
        for size, step in zip(reversed(self.shape), reversed(self.stride)):
            if size != 1 and step != expected:
                return False
            expected *= size
        return True


@dataclass(frozen=True)
class ZipEntry:
    """A stored storage entry: where its local header starts, its data size, where the next entry starts
    (header and data lie in ``[header, end)``: a remote reader fetches that span at once)."""

    name: str
    header: int
    size: int
    end: int


@dataclass(frozen=True)
class ZipLayout:
    """The state dict's tensors (in file order) and, per storage key, its zip entry."""

    tensors: dict[str, TensorRecord]
    entries: dict[str, ZipEntry]
    unstored: dict[str, str]  # storage key -> compression method name, for entries that are not stored


class _Positioned(io.RawIOBase):
    """The file under ``fd`` for :mod:`zipfile`, every read a positioned :func:`read_bytes` (no shared
    offset, a short read is a one-line error, and a remote mirror fetches the bytes first)."""

    def __init__(self, fd: int, path: str):
        super().__init__()
        self.fd, self.path, self.pos = fd, path, 0
        self.size = os.fstat(fd).st_size

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        self.pos = max(0, {0: 0, 1: self.pos, 2: self.size}[whence] + offset)
        return self.pos

    def tell(self) -> int:
        return self.pos

    def readinto(self, buffer) -> int:
        count = min(len(buffer), self.size - self.pos)
        if count <= 0:
            return 0
        remote = BYTE_SOURCES.get(os.path.abspath(self.path))
        if remote is not None:  # zipfile reads a few bytes at a time: fetch a window around them at once
            low = max(0, min(self.pos, self.size - _WINDOW))
            remote.ensure(low, max(count, min(_WINDOW, self.size - low)))
        memoryview(buffer).cast("B")[:count] = read_bytes(self.fd, self.pos, count, path=self.path)
        self.pos += count
        return count


class _Marker:
    """A torch type or dtype named by a global, standing for itself (never called)."""

    def __init__(self, name: str, dtype: DType | None = None, untyped: bool = False):
        self.name, self.dtype, self.untyped = name, dtype, untyped

    def __repr__(self) -> str:
        return self.name


def _int(value: Any, what: str) -> int:
    if type(value) is not int or value < 0:
        raise ValueError(f"{what} is {value!r}, not a non-negative integer")
    return value


def _ints(values: Any, what: str) -> tuple[int, ...]:
    if not isinstance(values, tuple):
        raise ValueError(f"{what} is a {type(values).__name__}, not a tuple")
    return tuple(_int(v, what) for v in values)


def _record(storage: Any, offset: Any, size: Any, stride: Any, dtype: DType | None,
            metadata: Any = None) -> TensorRecord:
    if not isinstance(storage, _Storage):
        raise ValueError(f"a tensor's storage is a {type(storage).__name__}")
    dtype = dtype or storage.dtype or dtype_by_name("uint8")
    shape, steps = _ints(size, "a tensor's size"), _ints(stride, "a tensor's stride")
    if len(shape) != len(steps):
        raise ValueError(f"a tensor of {len(shape)} dimensions has {len(steps)} strides")
    if metadata:  # conj/neg bits: a lazily conjugated or negated view
        raise UnsupportedFormatError(f"a tensor carries view flags {metadata!r} (conjugate/negative bits)",
                                     hint="save tensor.resolve_conj().resolve_neg() instead")
    return TensorRecord(storage, _int(offset, "a tensor's storage offset"), shape, steps, dtype)


def _rebuild_v2(storage, offset, size, stride, requires_grad=False, hooks=None, metadata=None) -> TensorRecord:
    return _record(storage, offset, size, stride, None, metadata)


def _rebuild_v3(storage, offset, size, stride, requires_grad, hooks, dtype, metadata=None) -> TensorRecord:
    if not isinstance(dtype, _Marker) or dtype.dtype is None:
        raise ValueError(f"a tensor's dtype is {dtype!r}")
    return _record(storage, offset, size, stride, dtype.dtype, metadata)


def _rebuild_legacy(storage, offset, size, stride) -> TensorRecord:
    return _record(storage, offset, size, stride, None)


def _parameter(data, requires_grad=False, hooks=None, state=None) -> Any:
    return data  # an nn.Parameter is its tensor here


def _from_type(func, new_type, args, state) -> Any:
    if func not in (_rebuild_v2, _rebuild_v3, _rebuild_legacy, _parameter) or \
            not (isinstance(new_type, _Marker) and new_type.name in ("torch.Tensor", "torch.nn.Parameter")):
        raise UnsafeCheckpointError(f"refused to unpickle: a tensor of type {new_type!r} needs code execution",
                                    hint=_RESAVE)
    if state:
        raise UnsupportedFormatError(f"a tensor carries Python attributes {sorted(state)[:3]!r}",
                                     hint="save plain tensors (a state_dict())")
    return func(*args)


def _latin1(text, encoding="latin1") -> bytes:
    """``_codecs.encode`` as protocol 2 uses it for bytes: (str, "latin1") only."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise ValueError("_codecs.encode of something other than (str, 'latin1')")
    return text.encode("latin1")


def _bytearray(data=b"") -> bytearray:
    if not isinstance(data, (bytes, bytearray)):
        raise ValueError("bytearray() of something other than bytes")  # bytearray(10**12) would allocate
    return bytearray(data)


def _storage_types() -> dict[tuple[str, str], _Marker]:
    legacy = {"Double": "float64", "Float": "float32", "Half": "float16", "Long": "int64", "Int": "int32",
              "Short": "int16", "Char": "int8", "Byte": "uint8", "Bool": "bool", "BFloat16": "bfloat16",
              "ComplexDouble": "complex128", "ComplexFloat": "complex64"}
    table = {("torch", f"{k}Storage"): _Marker(f"torch.{k}Storage", dtype_by_name(v)) for k, v in legacy.items()}
    for module in ("torch", "torch.storage"):
        table[(module, "UntypedStorage")] = _Marker("torch.UntypedStorage", untyped=True)
    return table


# (module, name) -> the inert stand-in the unpickler gets for that global; nothing else can be loaded.
GLOBALS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_v2,
    ("torch._utils", "_rebuild_tensor_v3"): _rebuild_v3,
    ("torch._utils", "_rebuild_tensor"): _rebuild_legacy,
    ("torch._utils", "_rebuild_parameter"): _parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _parameter,
    ("torch._tensor", "_rebuild_from_type_v2"): _from_type,
    ("torch", "Tensor"): _Marker("torch.Tensor"),
    ("torch.nn.parameter", "Parameter"): _Marker("torch.nn.Parameter"),
    ("torch", "Size"): tuple,
    ("torch", "device"): str,
    ("_codecs", "encode"): _latin1,
    ("builtins", "bytearray"): _bytearray,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "complex"): complex,
    **_storage_types(),
    **{("torch", d.torch): _Marker(f"torch.{d.torch}", d) for d in DTYPES if d.torch},
}


class _StateUnpickler(pickle.Unpickler):
    """Unpickles a state dict from :data:`GLOBALS` alone; storages come back as :class:`_Storage`."""

    def __init__(self, data: bytes, path: str):
        super().__init__(io.BytesIO(data))
        self.path = path
        self.storages: dict[str, _Storage] = {}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _compat_pickle.NAME_MAPPING:  # protocol 2 names from Python 2
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        found = GLOBALS.get((module, name))
        if found is None:
            hint = "convert it in a trusted environment first"
            if module in ("torch", "torch.storage") and _TORCH_TYPE.match(name):
                raise UnsupportedFormatError(f"unsupported tensor type {module}.{name}", path=self.path,
                                             hint="save float, integer or bool tensors")
            raise UnsafeCheckpointError(f"refused to unpickle: it needs code execution beyond tensors "
                                        f"(global {module}.{name})", path=self.path, hint=hint)
        return found

    def persistent_load(self, pid: Any) -> _Storage:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] in ("storage", b"storage")):
            raise ValueError(f"unknown persistent id {str(pid)[:60]}")
        _, kind, key, _location, numel = pid
        key = key.decode("ascii") if isinstance(key, bytes) else key
        if not isinstance(kind, _Marker) or not (kind.dtype or kind.untyped) or not isinstance(key, str):
            raise ValueError(f"persistent id names storage type {kind!r}")
        storage = _Storage(key, kind.dtype, _int(numel, "a storage's size"))
        known = self.storages.setdefault(key, storage)
        if known != storage:
            raise ValueError(f"storage {key!r} is named with two types or sizes")
        return known


def _unpickle(data: bytes, path: str) -> Any:
    try:
        return _StateUnpickler(data, path).load()
    except CkptkitError as e:
        e.path = e.path or path
        raise
    except (pickle.UnpicklingError, ValueError, TypeError, EOFError, AttributeError, IndexError, KeyError,
            OverflowError, RecursionError, MemoryError, UnicodeDecodeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CorruptCheckpointError(f"data.pkl is not a readable state dict ({first})", path=path,
                                     hint=_RESAVE) from None


def _state_dict(state: Any, path: str) -> dict[str, TensorRecord]:
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise CorruptCheckpointError(f"holds a {type(state).__name__}, not a state dict", path=path)
    return {k: v for k, v in state.items() if isinstance(k, str) and isinstance(v, TensorRecord)}


def data_offset(fd: int, entry: ZipEntry, path: str) -> int:
    """Where ``entry``'s data starts: after its local header (whose extra field may differ from the
    central directory's), read with one positioned read."""
    header = read_bytes(fd, entry.header, _LOCAL_HEADER.size, path=path)
    signature, name_length, extra_length = _LOCAL_HEADER.unpack(header)
    if signature != _LOCAL_SIGNATURE:
        raise CorruptCheckpointError(f"zip entry {entry.name!r} has no local header", path=path)
    start = entry.header + _LOCAL_HEADER.size + name_length + extra_length
    if start + entry.size > entry.end:
        raise CorruptCheckpointError(f"zip entry {entry.name!r} overlaps the next one or passes the end of the "
                                     f"file (bytes {start}..{start + entry.size}, next at {entry.end})", path=path,
                                     hint="the file is damaged or incomplete; copy it again")
    return start


def _archive(file: io.RawIOBase, path: str) -> tuple[zipfile.ZipFile, dict[str, zipfile.ZipInfo], bytes]:
    """(the archive, the storage entries by key, data.pkl) of the zip ``file``."""
    try:
        archive = zipfile.ZipFile(file)
        names = [i.filename for i in archive.infolist() if i.filename.endswith("data.pkl")]
        if not names:
            raise CorruptCheckpointError("a zip without data.pkl: not a PyTorch checkpoint", path=path)
        prefix = min(names, key=len)[:-len("data.pkl")]
        pickled = archive.getinfo(prefix + "data.pkl")
        if pickled.file_size > _MAX_PICKLE:
            raise CorruptCheckpointError(f"data.pkl of {pickled.file_size} bytes is too large", path=path)
        data = archive.read(pickled)
        order = archive.read(prefix + "byteorder").decode("ascii", "replace") \
            if prefix + "byteorder" in archive.NameToInfo else "little"
    except CkptkitError:
        raise
    except Exception as e:  # noqa: BLE001 - zipfile raises many kinds on a damaged archive; one translation point
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CorruptCheckpointError(f"not a readable PyTorch checkpoint ({first})", path=path) from None
    if order != "little":
        raise UnsupportedFormatError(f"a {order}-endian PyTorch checkpoint", path=path,
                                     hint="load and re-save it on a little-endian machine")
    storages = {i.filename[len(prefix) + 5:]: i for i in archive.infolist()
                if i.filename.startswith(prefix + "data/")}
    return archive, storages, data


def read_layout(fd: int, path: str) -> ZipLayout:
    """The tensors of the PyTorch zip checkpoint open as ``fd`` and where their bytes are (no tensor data
    is read: the end of the file, the central directory and data.pkl only).

    Raises:
        UnsafeCheckpointError: data.pkl names a global outside :data:`GLOBALS` (code would run).
        CorruptCheckpointError: a damaged zip or pickle.
    """
    positioned = _Positioned(fd, path)
    archive, storages, data = _archive(positioned, path)
    tensors = _state_dict(_unpickle(data, path), path)
    starts = sorted({i.header_offset for i in archive.infolist()} | {archive.start_dir, positioned.size})
    wanted = {record.storage.key for record in tensors.values()}
    entries, unstored = {}, {}
    for key in wanted & storages.keys():
        info = storages[key]
        if info.compress_type != zipfile.ZIP_STORED:
            unstored[key] = {zipfile.ZIP_DEFLATED: "deflate", zipfile.ZIP_BZIP2: "bzip2",
                             zipfile.ZIP_LZMA: "lzma"}.get(info.compress_type, f"method {info.compress_type}")
            continue
        end = next((s for s in starts if s > info.header_offset), positioned.size)
        entries[key] = ZipEntry(info.filename, info.header_offset, info.file_size, min(end, positioned.size))
    return ZipLayout(tensors, entries, unstored)

