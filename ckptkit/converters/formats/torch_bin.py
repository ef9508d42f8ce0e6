"""PyTorch ``.bin`` checkpoints (single or sharded), read without executing pickled code.

Zip checkpoints (every ``torch.save`` since PyTorch 1.6) are read without torch and without a memory
map: the layout comes from :mod:`~ckptkit.converters.formats.torch_zip`, the bytes from positioned
reads, so a source truncated or replaced mid-run gives a one-line error instead of SIGBUS. torch is
imported only to write, or to read a legacy (pre-1.6) file, which it loads whole.

Example:
    >>> import numpy as np, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "pytorch_model.bin")
    >>> save_torch_bin(path, {"w": np.eye(2, dtype=np.float32)})
    >>> open_torch_bin(path)["w"].read().tolist()
    [[1.0, 0.0], [0.0, 1.0]]
"""

from __future__ import annotations

import os
import pickle
from typing import TYPE_CHECKING, Mapping

from ckptkit.converters.formats.safetensors_io import read_weight_index, weights_file_in
from ckptkit.converters.formats.torch_zip import TensorRecord, ZipEntry, ZipLayout, data_offset, read_layout
from ckptkit.converters.memory import BYTE_SOURCES, numpy_shape_problem, read_bytes, read_exact
from ckptkit.converters.tensors import Checkpoint, LazyTensor, dtype_by_name
if TYPE_CHECKING:
    import numpy as np

from ckptkit.errors import (CheckpointNotFoundError, CorruptCheckpointError, UnsafeCheckpointError,
                            UnsupportedFormatError)

__all__ = ["open_torch_bin", "save_torch_bin", "tensor_to_numpy", "numpy_to_tensor"]

_DAMAGED = "the file shrank or is incomplete; copy it again"


def tensor_to_numpy(tensor) -> np.ndarray:
    """A torch tensor as a NumPy array (bfloat16/float8 through ml_dtypes; zero-copy when contiguous)."""
    import torch

    tensor = tensor.detach().cpu()
    name = str(tensor.dtype).removeprefix("torch.")
    dtype = dtype_by_name(name)
    if tensor.dtype in (torch.bfloat16, torch.float8_e5m2, torch.float8_e4m3fn):
        carrier = torch.int16 if tensor.dtype == torch.bfloat16 else torch.uint8
        return tensor.contiguous().view(carrier).numpy().view(dtype.numpy)
    return tensor.numpy() if tensor.is_contiguous() else tensor.contiguous().numpy()


def numpy_to_tensor(array: np.ndarray):
    """A NumPy array as a torch tensor sharing memory where torch allows it."""
    import numpy as np
    import torch

    name = np.dtype(array.dtype).name
    carriers = {"bfloat16": (np.int16, torch.bfloat16), "float8_e5m2": (np.uint8, torch.float8_e5m2),
                "float8_e4m3fn": (np.uint8, torch.float8_e4m3fn)}
    array = np.require(array, requirements="C")  # C order; unlike ascontiguousarray, a 0-d stays 0-d
    if name in carriers:
        carrier, torch_dtype = carriers[name]
        return torch.from_numpy(array.view(carrier).copy() if not array.flags.writeable else array.view(carrier)
                                ).view(torch_dtype)
    if not array.flags.writeable:
        array = array.copy()
    return torch.from_numpy(array)


class _ZipFile:
    """One ``.bin`` zip, read with positioned reads through the descriptor its layout came from (a file
    replaced by rename keeps being read as it was; one truncated gives a short read, never SIGBUS)."""

    def __init__(self, path: str):
        self.path = path
        self._file = open(path, "rb", buffering=0)
        self._starts: dict[str, int] = {}

    def _fd(self) -> int:
        if self._file.closed:  # read again after close(): reopen
            self._file = open(self.path, "rb", buffering=0)
        return self._file.fileno()

    def layout(self) -> ZipLayout:
        return read_layout(self._fd(), self.path)

    def data_start(self, entry: ZipEntry) -> int:
        """Where ``entry``'s data starts (its local header read once)."""
        if entry.name not in self._starts:
            self._starts[entry.name] = data_offset(self._fd(), entry, self.path)
        return self._starts[entry.name]

    def read(self, offset: int, nbytes: int) -> np.ndarray:
        return read_exact(self._fd(), offset, nbytes, path=self.path, hint=_DAMAGED)

    def read_bytes(self, offset: int, nbytes: int) -> bytes:
        return read_bytes(self._fd(), offset, nbytes, path=self.path, hint=_DAMAGED)

    def close(self) -> None:
        self._file.close()


def _zip_tensor(name: str, record: TensorRecord, layout: ZipLayout, source: _ZipFile) -> LazyTensor:
    """A lazy tensor over its storage's bytes: read at once when contiguous, else its span then strided."""
    key, itemsize, path = record.storage.key, record.dtype.itemsize, source.path
    if key in layout.unstored:
        raise UnsupportedFormatError(f"tensor {name!r}: its storage is {layout.unstored[key]}-compressed in "
                                     "the zip; ckptkit reads stored (uncompressed) entries only", path=path,
                                     hint="re-save it with torch.save")
    if key not in layout.entries:
        raise CorruptCheckpointError(f"tensor {name!r}: its storage data/{key} is missing", path=path)
    problem = numpy_shape_problem(record.shape, itemsize)
    if problem:
        raise UnsupportedFormatError(f"tensor {name!r}: {problem}", path=path)
    entry = layout.entries[key]
    span = record.span * itemsize
    if record.storage.nbytes > entry.size or (record.offset * itemsize + span if span else 0) > record.storage.nbytes:
        raise CorruptCheckpointError(f"tensor {name!r} of shape {list(record.shape)} reaches past its storage "
                                     f"data/{key} ({entry.size} bytes)", path=path)
    shape, strides = record.shape, tuple(step * itemsize for step in record.stride)

    def load() -> np.ndarray:
        import numpy as np

        dtype = record.dtype.numpy
        if not span:
            return np.zeros(shape, dtype)
        data = source.read(source.data_start(entry) + record.offset * itemsize, span).view(dtype)
        if record.contiguous:
            return data.reshape(shape)
        out = np.ascontiguousarray(np.lib.stride_tricks.as_strided(data, shape, strides, writeable=False))
        out.flags.writeable = False
        return out

    def stored() -> bytes:
        return source.read_bytes(source.data_start(entry) + record.offset * itemsize, span)

    # prefetched by a remote mirror: the entry's local header and data, one span
    return LazyTensor(name, record.dtype, shape, loader=load, location=f"{path}:{entry.name}",
                      byte_range=(path, entry.header, entry.end - entry.header),
                      stored=stored if record.contiguous else None)


def _open_zip(path: str) -> tuple[dict[str, LazyTensor], dict, _ZipFile]:
    """The lazy tensors of one zip ``.bin`` and the groups of names viewing the same bytes."""
    source = _ZipFile(path)
    try:
        layout = source.layout()
        tensors = {name: _zip_tensor(name, record, layout, source) for name, record in layout.tensors.items()}
    except BaseException:
        source.close()
        raise
    views = {name: (record.storage.key, record.offset, record.shape, record.stride)
             for name, record in layout.tensors.items()}
    return tensors, views, source


def _load_legacy(path: str) -> dict:
    """A legacy (pre-1.6, not zip) file: loaded whole by torch (``weights_only``), so nothing is mapped."""
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UnsafeCheckpointError(f"refused to unpickle: it needs code execution beyond tensors ({first})",
                                    path=path, hint="convert it in a trusted environment first") from e
    except Exception as e:  # noqa: BLE001 - torch.load raises many kinds on a damaged legacy file
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CorruptCheckpointError(f"not a readable PyTorch checkpoint ({first})", path=path) from e
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise CorruptCheckpointError(f"holds a {type(state).__name__}, not a state dict", path=path)
    return {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}


def _open_legacy(path: str) -> tuple[dict[str, LazyTensor], dict, None]:
    tensors, views = {}, {}
    for name, tensor in _load_legacy(path).items():
        array = tensor_to_numpy(tensor)
        dtype = dtype_by_name(str(tensor.dtype).removeprefix("torch."))
        array.flags.writeable = False
        tensors[name] = LazyTensor(name, dtype, tuple(tensor.shape), loader=lambda a=array: a, location=path)
        views[name] = (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape),
                       tuple(tensor.stride()))
    return tensors, views, None


class _TorchCheckpoint(Checkpoint):
    format = "pytorch"

    def __init__(self, *args, sources: list[_ZipFile], **kwargs):
        super().__init__(*args, **kwargs)
        self._sources = sources

    def close(self) -> None:
        """Close the files; arrays already read stay valid (each owns its bytes)."""
        for source in self._sources:
            source.close()


_ZIP_MAGIC = b"PK\x03\x04"
_LEGACY_MAGIC = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19"  # pickled 0x1950a86a20f9469cfc6c, torch < 1.6


def _open_shard(path: str) -> tuple[dict[str, LazyTensor], dict, _ZipFile | None]:
    """A zip checkpoint read by ckptkit, a legacy one by torch; anything else is refused in one line."""
    if not os.path.isfile(path):
        raise CheckpointNotFoundError("file not found", path=path)
    with open(path, "rb", buffering=0) as f:
        size = os.fstat(f.fileno()).st_size
        magic = read_bytes(f.fileno(), 0, min(size, len(_LEGACY_MAGIC)), path=path)
    if magic.startswith(_ZIP_MAGIC):
        return _open_zip(path)
    if magic == _LEGACY_MAGIC:
        remote = BYTE_SOURCES.get(os.path.abspath(path))
        if remote is not None:  # torch reads it whole, not through read_exact: fetch it all first
            remote.ensure(0, size)
        return _open_legacy(path)
    raise CorruptCheckpointError("not a PyTorch checkpoint (neither a torch.save zip nor a legacy torch.save "
                                 "file)", path=path, hint="the file is damaged or of another format")


def open_torch_bin(path: str) -> Checkpoint:
    """Open ``pytorch_model.bin`` (or a ``.bin.index.json`` of shards) without running pickled code.

    A zip checkpoint (``torch.save`` since PyTorch 1.6) is read without torch: its ``data.pkl`` is
    unpickled from a table of inert stand-ins (:mod:`~ckptkit.converters.formats.torch_zip`), so opening
    reads no tensor data and runs no code, and each tensor's bytes are read with positioned reads when
    it is read (never through a memory map: a file truncated meanwhile is a one-line error, not SIGBUS).
    A legacy (pre-1.6) file is loaded whole by ``torch.load(weights_only=True)``. Tensors viewing the
    same bytes (tied weights) are reported in ``extras["shared"]`` as groups of names.

    Example:
        >>> open_torch_bin("missing.bin")
        Traceback (most recent call last):
        ...
        ckptkit.errors.CheckpointNotFoundError: missing.bin: file not found
    """
    path = weights_file_in(path, ("pytorch_model.bin.index.json", "pytorch_model.bin"))
    if path.endswith(".index.json"):
        weight_map = read_weight_index(path)
        folder = os.path.dirname(path)
        shard_paths = [os.path.join(folder, s) for s in dict.fromkeys(weight_map.values())]
    else:
        weight_map, shard_paths = None, [path]
    tensors, storages, sources = {}, {}, []
    try:
        for shard_path in shard_paths:
            shard, views, source = _open_shard(shard_path)
            sources += [source] if source is not None else []
            for name, tensor in shard.items():
                if weight_map is not None and os.path.join(folder, weight_map.get(name, "")) != shard_path:
                    continue
                tensors[name] = tensor
                storages.setdefault((shard_path, *views[name]), []).append(name)
    except BaseException:
        for source in sources:
            source.close()
        raise
    shared = [names for names in storages.values() if len(names) > 1]
    return _TorchCheckpoint(path, tensors, files=shard_paths, sources=sources,
                            extras={"shared": shared, "sharded": weight_map is not None})


def save_torch_bin(path: str, tensors: Mapping[str, np.ndarray]) -> None:
    """Write NumPy arrays as a PyTorch state dict (zip format), atomically.

    Example:
        >>> import numpy as np, tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "m.bin")
        >>> save_torch_bin(p, {"x": np.zeros(3, np.int64)})
        >>> open_torch_bin(p)["x"].shape
        (3,)
    """
    import torch

    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        torch.save({name: numpy_to_tensor(a) for name, a in tensors.items()}, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
