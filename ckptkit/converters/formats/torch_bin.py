"""PyTorch ``.bin`` checkpoints (single or sharded): read with ``weights_only=True``, never executing code.

torch is imported only when a ``.bin`` file is actually opened or written. torch maps the file;
each read first checks that the file has not shrunk since it was opened and then copies the
tensor out at once, so a source truncated mid-run gives a one-line error instead of SIGBUS.

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
import zipfile
from typing import Mapping

import numpy as np

from ckptkit.converters.formats.safetensors_io import read_weight_index, weights_file_in
from ckptkit.converters.tensors import Checkpoint, LazyTensor, dtype_by_name
from ckptkit.errors import CheckpointNotFoundError, CorruptCheckpointError, UnsafeCheckpointError

__all__ = ["open_torch_bin", "save_torch_bin", "tensor_to_numpy", "numpy_to_tensor"]


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
    import torch

    name = np.dtype(array.dtype).name
    carriers = {"bfloat16": (np.int16, torch.bfloat16), "float8_e5m2": (np.uint8, torch.float8_e5m2),
                "float8_e4m3fn": (np.uint8, torch.float8_e4m3fn)}
    array = np.ascontiguousarray(array)
    if name in carriers:
        carrier, torch_dtype = carriers[name]
        return torch.from_numpy(array.view(carrier).copy() if not array.flags.writeable else array.view(carrier)
                                ).view(torch_dtype)
    if not array.flags.writeable:
        array = array.copy()
    return torch.from_numpy(array)


class _SizeGuard:
    """Holds the file torch mapped, to notice it shrinking before a mapped page is touched."""

    def __init__(self, path: str):
        self.path = path
        self._file = open(path, "rb", buffering=0)
        self.size = os.fstat(self._file.fileno()).st_size

    def same_file_as_path(self) -> bool:
        opened, now = os.fstat(self._file.fileno()), os.stat(self.path)
        return (opened.st_dev, opened.st_ino) == (now.st_dev, now.st_ino)

    def check(self) -> None:
        if self._file.closed:
            return
        size = os.fstat(self._file.fileno()).st_size
        if size < self.size:
            raise CorruptCheckpointError(f"truncated while being read: {size} bytes left of {self.size}",
                                         path=self.path, hint="the file shrank or is incomplete; copy it again")

    def close(self) -> None:
        self._file.close()


def _load_state_dict(path: str, guard: _SizeGuard) -> dict:
    import torch

    use_mmap = zipfile.is_zipfile(path)  # the legacy (pre-1.6) format cannot be memory-mapped
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=use_mmap)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UnsafeCheckpointError(f"refused to unpickle: it needs code execution beyond tensors ({first})",
                                    path=path, hint="convert it in a trusted environment first") from e
    except (RuntimeError, EOFError, ValueError, zipfile.BadZipFile) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CorruptCheckpointError(f"not a readable PyTorch checkpoint ({first})", path=path) from e
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise CorruptCheckpointError(f"holds a {type(state).__name__}, not a state dict", path=path)
    if not guard.same_file_as_path():
        raise CorruptCheckpointError("was replaced while being opened", path=path, hint="run the command again")
    return {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}


def _lazy(name: str, tensor, path: str, guard: _SizeGuard) -> LazyTensor:
    dtype = dtype_by_name(str(tensor.dtype).removeprefix("torch."))

    def load() -> np.ndarray:
        guard.check()
        return np.array(tensor_to_numpy(tensor), copy=True)  # off the mapping before the file can shrink again

    return LazyTensor(name, dtype, tuple(tensor.shape), loader=load, location=path)


class _TorchCheckpoint(Checkpoint):
    format = "pytorch"

    def __init__(self, *args, guards: list[_SizeGuard], **kwargs):
        super().__init__(*args, **kwargs)
        self._guards = guards

    def close(self) -> None:
        """Stop watching the files; arrays already read stay valid (each owns its bytes)."""
        for guard in self._guards:
            guard.close()


def _open_shard(path: str) -> tuple[dict, _SizeGuard]:
    if not os.path.isfile(path):
        raise CheckpointNotFoundError("file not found", path=path)
    guard = _SizeGuard(path)
    try:
        return _load_state_dict(path, guard), guard
    except BaseException:
        guard.close()
        raise


def open_torch_bin(path: str) -> Checkpoint:
    """Open ``pytorch_model.bin`` (or a ``.bin.index.json`` of shards) without running pickled code.

    Tensors are memory-mapped (``torch.load(..., weights_only=True, mmap=True)``), so opening
    reads no tensor data. Tensors sharing storage (tied weights) are reported in
    ``extras["shared"]`` as groups of names.

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
    tensors, storages, guards = {}, {}, []
    for shard_path in shard_paths:
        state, guard = _open_shard(shard_path)
        guards.append(guard)
        for name, tensor in state.items():
            if weight_map is not None and os.path.join(folder, weight_map.get(name, "")) != shard_path:
                continue
            tensors[name] = _lazy(name, tensor, shard_path, guard)
            key = (shard_path, tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape))
            storages.setdefault(key, []).append(name)
    shared = [names for names in storages.values() if len(names) > 1]
    return _TorchCheckpoint(path, tensors, files=shard_paths, guards=guards,
                            extras={"shared": shared, "sharded": weight_map is not None})


def save_torch_bin(path: str, tensors: Mapping[str, np.ndarray]) -> None:
    """Write NumPy arrays as a PyTorch state dict (zip format), atomically.

    Example:
        >>> import tempfile, os
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
