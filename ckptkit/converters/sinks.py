"""Sinks: where a plan's tensors are written (safetensors, PyTorch ``.bin``, TF bundle).

Each sink learns every output's dtype and shape in ``begin``, so shard splits and headers
are fixed before the first byte is written. Sharded files and index json follow the names
transformers writes (``model-00001-of-00002.safetensors``, ``model.safetensors.index.json``).
"""

from __future__ import annotations

import os
import re
from typing import Sequence

import numpy as np

from ckptkit.converters.formats.safetensors_io import SafetensorsWriter, TensorSpec
from ckptkit.converters.plan import PlannedTensor
from ckptkit.output.atomic import check_free_space, write_json
from ckptkit.errors import UsageError

__all__ = ["SafetensorsSink", "TorchBinSink", "TFSink", "parse_size", "shard_split", "SINKS"]


_SIZE_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
               "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}


def parse_size(text: str | int | None) -> int | None:
    """``"2GB"`` -> 2_000_000_000 (as transformers reads sizes: GB = 10^9, GiB = 2^30).

    Example:
        >>> parse_size("500MB"), parse_size("1GiB"), parse_size(None)
        (500000000, 1073741824, None)
    """
    if text is None or isinstance(text, int):
        return text
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", text)
    unit = match.group(2).upper() if match else None
    if unit not in _SIZE_UNITS:
        raise UsageError(f"bad size {text!r}", hint="write it like 2GB, 500MB or 10GiB")
    return int(float(match.group(1)) * _SIZE_UNITS[unit])


def _shard_size(value: int | None) -> int | None:
    """A sink's shard size: bytes, parsed by the caller (the options) before the output folder exists."""
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
        raise TypeError(f"max_shard_size is {value!r}: a sink takes a positive number of bytes (see parse_size)")
    return value


def shard_split(outputs: Sequence[PlannedTensor], *, pattern: str, max_shard_size: int | None
                ) -> dict[str, list[PlannedTensor]]:
    """Group outputs into shard files exactly as ``save_pretrained`` would name and fill them.

    Example:
        >>> shard_split([], pattern="model{suffix}.safetensors", max_shard_size=None)
        {'model.safetensors': []}
    """
    if max_shard_size is None or sum(t.nbytes for t in outputs) <= max_shard_size:
        return {pattern.format(suffix=""): list(outputs)}  # one file: no need to import the Hub's splitter
    from huggingface_hub import split_state_dict_into_shards_factory

    by_name = {t.name: t for t in outputs}
    split = split_state_dict_into_shards_factory(
        by_name, get_storage_size=lambda t: t.nbytes, filename_pattern=pattern,
        max_shard_size=max_shard_size if max_shard_size is not None else 2**62)
    return {filename: [by_name[n] for n in names] for filename, names in split.filename_to_tensors.items()}


def _write_index(folder: str, index_name: str, shards: dict[str, list[PlannedTensor]]) -> None:
    total_size = sum(t.nbytes for ts in shards.values() for t in ts)
    total_params = sum(int(np.prod(t.shape, dtype=np.int64)) for ts in shards.values() for t in ts)
    index = {"metadata": {"total_parameters": total_params, "total_size": total_size},
             "weight_map": {t.name: f for f, ts in shards.items() for t in ts}}
    write_json(os.path.join(folder, index_name), index, sort_keys=True)


def _reserve_space(folder: str, outputs: Sequence[PlannedTensor]) -> None:
    """Fail before the first byte when the disk cannot hold the weights (each file is also reserved
    or written in full before it appears, so a later shortage still ends cleanly)."""
    check_free_space(folder, sum(t.nbytes for t in outputs))


def _save_bin(path: str, tensors: dict[str, np.ndarray]) -> None:
    """``save_torch_bin``, with torch's write failures (a ``RuntimeError`` from its zip writer, which
    keeps no errno) told as what they almost always are: the disk ran out."""
    import errno

    from ckptkit.converters.formats.torch_bin import save_torch_bin

    try:
        save_torch_bin(path, tensors)
    except RuntimeError as e:
        if "inline_container" not in str(e) and "PytorchStreamWriter" not in str(e):
            raise
        raise OSError(errno.ENOSPC, f"torch could not write {os.path.basename(path)}: "
                                    f"{' '.join(str(e).split())}") from e


class SafetensorsSink:
    """Write ``model.safetensors`` (or shards + index) into ``folder``, each tensor with positional writes
    straight from the plan's view of its input (transposed and cast in cache-sized bands on the way)."""

    weights_pattern = "model{suffix}.safetensors"
    index_name = "model.safetensors.index.json"
    accepts_views = True  # plan.execute hands write() uncopied views

    def __init__(self, folder: str, *, max_shard_size: int | None = None, metadata: dict | None = None):
        self.folder = folder
        self.max_shard_size = _shard_size(max_shard_size)
        self.metadata = {"format": "pt", **(metadata or {})}
        self._writers: dict[str, SafetensorsWriter] = {}
        self._file_of: dict[str, str] = {}
        self.files: list[str] = []

    def begin(self, outputs: Sequence[PlannedTensor]) -> None:
        _reserve_space(self.folder, outputs)
        self._shards = shard_split(outputs, pattern=self.weights_pattern, max_shard_size=self.max_shard_size)
        self._file_of = {t.name: f for f, ts in self._shards.items() for t in ts}
        self._remaining = {f: len(ts) for f, ts in self._shards.items()}
        self.files = list(self._shards)

    def order(self, outputs: Sequence[PlannedTensor]) -> Sequence[PlannedTensor]:
        return [t for ts in self._shards.values() for t in ts]  # one shard open at a time

    def _writer(self, filename: str) -> SafetensorsWriter:
        if filename not in self._writers:
            specs = [TensorSpec(t.name, t.dtype, t.shape) for t in self._shards[filename]]
            self._writers[filename] = SafetensorsWriter(os.path.join(self.folder, filename), specs,
                                                        metadata=self.metadata)
        return self._writers[filename]

    def buffer(self, planned: PlannedTensor) -> np.ndarray | None:
        return None

    def write(self, planned: PlannedTensor, array: np.ndarray) -> None:
        filename = self._file_of[planned.name]
        self._writer(filename).write(planned.name, array)
        self._remaining[filename] -= 1
        if self._remaining[filename] == 0:
            self._writers.pop(filename).close()

    def finish(self) -> None:
        for filename in list(self._shards):
            if filename in self._writers or self._remaining[filename]:
                self._writer(filename).close()  # empty shards
                self._writers.pop(filename, None)
        if len(self._shards) > 1:
            _write_index(self.folder, self.index_name, self._shards)
            self.files.append(self.index_name)

    def abort(self) -> None:
        for writer in self._writers.values():
            writer.abort()
        self._writers.clear()


class TorchBinSink:
    """Write ``pytorch_model.bin`` (or shards + index); holds one shard's tensors in memory."""

    weights_pattern = "pytorch_model{suffix}.bin"
    index_name = "pytorch_model.bin.index.json"

    def __init__(self, folder: str, *, max_shard_size: int | None = None, metadata: dict | None = None):
        self.folder = folder
        self.max_shard_size = _shard_size(max_shard_size)
        self.files: list[str] = []

    def begin(self, outputs: Sequence[PlannedTensor]) -> None:
        _reserve_space(self.folder, outputs)
        self._shards = shard_split(outputs, pattern=self.weights_pattern, max_shard_size=self.max_shard_size)
        self._file_of = {t.name: f for f, ts in self._shards.items() for t in ts}
        self._pending: dict[str, dict[str, np.ndarray]] = {f: {} for f in self._shards}
        self.files = list(self._shards)

    def order(self, outputs: Sequence[PlannedTensor]) -> Sequence[PlannedTensor]:
        return [t for ts in self._shards.values() for t in ts]

    def buffer(self, planned: PlannedTensor) -> np.ndarray | None:
        return np.empty(planned.shape, planned.dtype.numpy)

    def write(self, planned: PlannedTensor, array: np.ndarray) -> None:
        filename = self._file_of[planned.name]
        self._pending[filename][planned.name] = array
        if len(self._pending[filename]) == len(self._shards[filename]):
            _save_bin(os.path.join(self.folder, filename), self._pending.pop(filename))

    def finish(self) -> None:
        for filename, tensors in self._pending.items():
            _save_bin(os.path.join(self.folder, filename), tensors)
        self._pending = {}
        if len(self._shards) > 1:
            _write_index(self.folder, self.index_name, self._shards)
            self.files.append(self.index_name)

    def abort(self) -> None:
        self._pending = {}


class TFSink:
    """Write a TF bundle ``folder/model.ckpt.*`` plus the ``checkpoint`` state file; tensors arrive as
    uncopied views, which the bundle writer copies band by band as it writes (and checksums)."""

    accepts_views = True

    def __init__(self, folder: str, *, max_shard_size: int | None = None, metadata: dict | None = None,
                 prefix_name: str = "model.ckpt"):
        self.folder = folder
        self.prefix = os.path.join(folder, prefix_name)
        self.max_shard_size = _shard_size(max_shard_size)
        self._writer = None
        self.files: list[str] = []
        self.extra_tensors: dict[str, np.ndarray] = {}  # written after the plan (e.g. global_step)

    def begin(self, outputs: Sequence[PlannedTensor]) -> None:
        from ckptkit.converters.formats.tf1 import TFCheckpointWriter

        _reserve_space(self.folder, outputs)
        self._writer = TFCheckpointWriter(self.prefix, max_shard_size=self.max_shard_size)

    def order(self, outputs: Sequence[PlannedTensor]) -> Sequence[PlannedTensor]:
        return sorted(outputs, key=lambda t: t.name.encode())  # TF's own data order: key order

    def buffer(self, planned: PlannedTensor) -> np.ndarray | None:
        return None

    def write(self, planned: PlannedTensor, array: np.ndarray) -> None:
        if array.dtype != planned.dtype.numpy:  # a planned cast (rare): the bundle stores the array's dtype
            array = array.astype(planned.dtype.numpy)
        self._writer.add(planned.name, array)

    def finish(self) -> None:
        for name, array in self.extra_tensors.items():
            self._writer.add(name, array)
        self._writer.close()
        self.files = sorted(n for n in os.listdir(self.folder) if n.startswith("model.ckpt") or n == "checkpoint")

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.abort()


# --to / --format name -> sink class
SINKS = {"safetensors": SafetensorsSink, "pytorch": TorchBinSink, "tf1": TFSink}
