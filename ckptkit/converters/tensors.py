"""What every format shares: the dtype table, tensor roles and lazy tensor references.

A *source* (any checkpoint format) is a read-only mapping of name -> :class:`LazyTensor`.
Metadata (dtype, shape, role) is known without reading bytes; ``read()`` returns the
NumPy array, a zero-copy view of the file where alignment allows.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Callable

import ml_dtypes
import numpy as np

from ckptkit.errors import UnsupportedFormatError

__all__ = [
    "DType", "DTYPES", "dtype_by_name", "dtype_by_tf_enum", "dtype_by_safetensors", "dtype_of",
    "ROLE_WEIGHT", "ROLE_OPTIMIZER", "ROLE_COUNTER", "ROLE_METADATA", "classify_role",
    "LazyTensor", "Checkpoint",
]


@dataclass(frozen=True)
class DType:
    """One element type under the names each format gives it.

    ``name`` is the NumPy name (``bfloat16`` through ml_dtypes), used in every report and JSON.
    """

    name: str
    numpy: np.dtype
    tf_enum: int | None
    safetensors: str | None
    torch: str | None

    @property
    def itemsize(self) -> int:
        return self.numpy.itemsize

    @property
    def is_float(self) -> bool:
        return self.name.startswith(("float", "bfloat"))


def _d(name: str, np_type, tf_enum, st, torch_name) -> DType:
    return DType(name, np.dtype(np_type), tf_enum, st, torch_name)


# TF enums: tensorflow/core/framework/types.proto. Safetensors codes: safetensors' Dtype enum.
DTYPES: tuple[DType, ...] = (
    _d("float32", np.float32, 1, "F32", "float32"),
    _d("float64", np.float64, 2, "F64", "float64"),
    _d("int32", np.int32, 3, "I32", "int32"),
    _d("uint8", np.uint8, 4, "U8", "uint8"),
    _d("int16", np.int16, 5, "I16", "int16"),
    _d("int8", np.int8, 6, "I8", "int8"),
    _d("object", np.object_, 7, None, None),  # DT_STRING: arrays of bytes objects
    _d("complex64", np.complex64, 8, "C64", "complex64"),
    _d("int64", np.int64, 9, "I64", "int64"),
    _d("bool", np.bool_, 10, "BOOL", "bool"),
    _d("bfloat16", ml_dtypes.bfloat16, 14, "BF16", "bfloat16"),
    _d("uint16", np.uint16, 17, "U16", "uint16"),
    _d("complex128", np.complex128, 18, None, "complex128"),
    _d("float16", np.float16, 19, "F16", "float16"),
    _d("uint32", np.uint32, 22, "U32", "uint32"),
    _d("uint64", np.uint64, 23, "U64", "uint64"),
    _d("float8_e5m2", ml_dtypes.float8_e5m2, 24, "F8_E5M2", "float8_e5m2"),
    _d("float8_e4m3fn", ml_dtypes.float8_e4m3fn, 25, "F8_E4M3", "float8_e4m3fn"),
)

_BY_NAME = {d.name: d for d in DTYPES}
_BY_TF = {d.tf_enum: d for d in DTYPES if d.tf_enum is not None}
_BY_ST = {d.safetensors: d for d in DTYPES if d.safetensors is not None}
_TF_ENUM_NAMES = {0: "DT_INVALID", 11: "DT_QINT8", 12: "DT_QUINT8", 13: "DT_QINT32", 15: "DT_QINT16",
                  16: "DT_QUINT16", 20: "DT_RESOURCE", 21: "DT_VARIANT"}


def _lookup(table: Mapping, key, what: str) -> DType:
    try:
        return table[key]
    except KeyError:
        raise UnsupportedFormatError(f"unsupported {what} {key!r}",
                                     hint="supported: " + ", ".join(str(k) for k in table)) from None


def dtype_by_name(name: str) -> DType:
    """The dtype called ``name`` by NumPy (``"float32"``, ``"bfloat16"``).

    Example:
        >>> dtype_by_name("bfloat16").safetensors
        'BF16'
    """
    return _lookup(_BY_NAME, name, "dtype")


def dtype_by_tf_enum(value: int) -> DType:
    """The dtype of a TensorFlow ``DataType`` enum value (``*_REF`` values are folded).

    Example:
        >>> dtype_by_tf_enum(101).name
        'float32'
    """
    base = value - 100 if value > 100 else value
    if base not in _BY_TF:
        label = _TF_ENUM_NAMES.get(base, f"enum {value}")
        raise UnsupportedFormatError(f"unsupported TensorFlow dtype {label}",
                                     hint="ckptkit reads numeric, bool and string tensors")
    return _BY_TF[base]


def dtype_by_safetensors(code: str) -> DType:
    """The dtype of a safetensors header code (``"F32"``).

    Example:
        >>> dtype_by_safetensors("F16").name
        'float16'
    """
    return _lookup(_BY_ST, code, "safetensors dtype")


def dtype_of(array_dtype: np.dtype) -> DType:
    """The table entry for a NumPy dtype (byte order ignored).

    Example:
        >>> dtype_of(np.dtype("<f4")).tf_enum
        1
    """
    dt = np.dtype(array_dtype)
    if dt.kind in "SUO":
        return _BY_NAME["object"]
    return _lookup(_BY_NAME, dt.newbyteorder("=").name if dt.byteorder not in "=|" else dt.name, "dtype")


ROLE_WEIGHT = "weight"
ROLE_OPTIMIZER = "optimizer"
ROLE_COUNTER = "counter"
ROLE_METADATA = "metadata"

# (pattern, role), first match wins. Optimizer slots sit next to the variable they belong to.
_ROLE_RULES: tuple[tuple[re.Pattern, str], ...] = tuple((re.compile(p), r) for p, r in (
    (r"^_CHECKPOINTABLE_OBJECT_GRAPH$", ROLE_METADATA),
    (r"(^|/)\.OPTIMIZER_SLOT/", ROLE_OPTIMIZER),
    (r"/(adam_m|adam_v|Adam|Adam_1|AdamWeightDecayOptimizer|AdamWeightDecayOptimizer_1|LAMB|LAMB_1"
     r"|Momentum|RMSProp|RMSProp_1|Adagrad|Adadelta|Adadelta_1|Ftrl|Ftrl_1|ExponentialMovingAverage)$",
     ROLE_OPTIMIZER),
    (r"/Adafactor(_\d+)?(_[a-z]+)?$|/(vr|vc|v)_?Adafactor|/Adafactor", ROLE_OPTIMIZER),
    (r"(^|/)(beta1_power|beta2_power)$", ROLE_OPTIMIZER),  # tf.compat.v1.train.AdamOptimizer's accumulators
    (r"^(optimizer|keras_opt|opt)/", ROLE_OPTIMIZER),
    (r"(^|/)(global_step|beta1_power|beta2_power|save_counter|iterations|iter|step|"
     r"good_steps|current_loss_scale|loss_scale)(/\.ATTRIBUTES/VARIABLE_VALUE)?$", ROLE_COUNTER),
))


def classify_role(name: str) -> str:
    """Whether a tensor is a model weight, optimizer state, a counter or checkpoint metadata.

    Example:
        >>> [classify_role(n) for n in ("bert/pooler/dense/kernel", "bert/pooler/dense/kernel/adam_m",
        ...                             "global_step")]
        ['weight', 'optimizer', 'counter']
    """
    for pattern, role in _ROLE_RULES:
        if pattern.search(name):
            return role
    return ROLE_WEIGHT


@dataclass
class LazyTensor:
    """A tensor whose metadata is known and whose bytes are read on ``read()``.

    Example:
        >>> t = LazyTensor("w", dtype_by_name("float32"), (2,), loader=lambda: np.zeros(2, np.float32))
        >>> t.nbytes, t.read().tolist()
        (8, [0.0, 0.0])
    """

    name: str
    dtype: DType
    shape: tuple[int, ...]
    loader: Callable[[], np.ndarray] = field(repr=False)
    role: str = ""
    location: str = ""  # file (and offset) the bytes come from, for messages
    byte_range: tuple[str, int, int] | None = field(default=None, repr=False)  # (file, offset, size) read, if one

    def __post_init__(self) -> None:
        self.shape = tuple(int(s) for s in self.shape)
        if not self.role:
            self.role = classify_role(self.name)

    @property
    def numel(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nbytes(self) -> int:
        return self.numel * self.dtype.itemsize if self.dtype.name != "object" else 0

    def read(self) -> np.ndarray:
        """The tensor as a NumPy array (read-only; copy before modifying)."""
        return self.loader()


class Checkpoint(Mapping[str, LazyTensor]):
    """A read-only mapping name -> :class:`LazyTensor`, usable as a context manager.

    Subclasses fill ``self._tensors`` from metadata alone and release file handles in
    :meth:`close`. ``format`` names the on-disk format (``tf``, ``safetensors``, ``pytorch``,
    ``hub``); ``files`` lists the files it spans; ``extras`` holds format facts for reports.
    """

    format: str = "unknown"

    def __init__(self, path: str, tensors: Mapping[str, LazyTensor], *, files: list[str] | None = None,
                 extras: dict | None = None):
        self.path = path
        self._tensors = dict(tensors)
        self.files = list(files or [path])
        self.extras = dict(extras or {})

    def __getitem__(self, name: str) -> LazyTensor:
        try:
            return self._tensors[name]
        except KeyError:
            raise KeyError(f"no tensor named {name!r} in {self.path}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._tensors)

    def __len__(self) -> int:
        return len(self._tensors)

    def by_role(self, role: str) -> list[LazyTensor]:
        return [t for t in self._tensors.values() if t.role == role]

    @property
    def global_step(self) -> int | None:
        """The value of the ``global_step`` counter, if the checkpoint has one."""
        for name in ("global_step", "step", "optimizer/iter/.ATTRIBUTES/VARIABLE_VALUE",
                     "global_step/.ATTRIBUTES/VARIABLE_VALUE"):
            if name in self._tensors and self._tensors[name].dtype.name.startswith("int"):
                return int(np.asarray(self._tensors[name].read()).reshape(-1)[0])
        return None

    def close(self) -> None:
        """Release open files and maps. Arrays already returned stay valid only if copied."""

    def __enter__(self) -> "Checkpoint":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.format} {self.path!r}: {len(self)} tensors>"
