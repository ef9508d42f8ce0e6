"""What every format shares: the dtype table, tensor roles and lazy tensor references.

A *source* (any checkpoint format) is a read-only mapping of name -> :class:`LazyTensor`.
Metadata (dtype, shape, role) is known without reading bytes; ``read()`` returns the
NumPy array, a zero-copy view of the file where alignment allows.

Importing this module imports neither NumPy nor ml_dtypes: a dtype's NumPy type is resolved
the first time it is asked for, so listing a checkpoint (``ckptkit inspect``) never pays for them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Callable

from ckptkit.errors import UnsupportedFormatError

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "DType", "DTYPES", "dtype_by_name", "dtype_by_tf_enum", "dtype_by_safetensors", "dtype_of",
    "ROLE_WEIGHT", "ROLE_OPTIMIZER", "ROLE_COUNTER", "ROLE_METADATA", "classify_role",
    "LazyTensor", "Checkpoint",
]


@dataclass(frozen=True)
class DType:
    """One element type under the names each format gives it.

    ``name`` is the NumPy name (``bfloat16`` through ml_dtypes), used in every report and JSON;
    ``itemsize`` its width in bytes; ``library`` the module holding its NumPy scalar type.
    """

    name: str
    itemsize: int
    tf_enum: int | None
    safetensors: str | None
    torch: str | None
    library: str = "numpy"

    @cached_property
    def numpy(self) -> np.dtype:
        """The NumPy dtype (NumPy, and ml_dtypes for bfloat16 and float8, imported on first use)."""
        import numpy as np

        if self.library == "ml_dtypes":
            import ml_dtypes

            return np.dtype(getattr(ml_dtypes, self.name))
        return np.dtype(self.name)

    @property
    def is_float(self) -> bool:
        return self.name.startswith(("float", "bfloat"))


# name, itemsize, TF enum (tensorflow/core/framework/types.proto), safetensors code (safetensors' Dtype
# enum), torch name; bfloat16 and float8 take their NumPy types from ml_dtypes.
DTYPES: tuple[DType, ...] = (
    DType("float32", 4, 1, "F32", "float32"),
    DType("float64", 8, 2, "F64", "float64"),
    DType("int32", 4, 3, "I32", "int32"),
    DType("uint8", 1, 4, "U8", "uint8"),
    DType("int16", 2, 5, "I16", "int16"),
    DType("int8", 1, 6, "I8", "int8"),
    DType("object", 8, 7, None, None),  # DT_STRING: arrays of bytes objects
    DType("complex64", 8, 8, "C64", "complex64"),
    DType("int64", 8, 9, "I64", "int64"),
    DType("bool", 1, 10, "BOOL", "bool"),
    DType("bfloat16", 2, 14, "BF16", "bfloat16", "ml_dtypes"),
    DType("uint16", 2, 17, "U16", "uint16"),
    DType("complex128", 16, 18, None, "complex128"),
    DType("float16", 2, 19, "F16", "float16"),
    DType("uint32", 4, 22, "U32", "uint32"),
    DType("uint64", 8, 23, "U64", "uint64"),
    DType("float8_e5m2", 1, 24, "F8_E5M2", "float8_e5m2", "ml_dtypes"),
    DType("float8_e4m3fn", 1, 25, "F8_E4M3", "float8_e4m3fn", "ml_dtypes"),
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
        >>> import numpy as np
        >>> dtype_of(np.dtype("<f4")).tf_enum
        1
    """
    import numpy as np

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
        >>> import numpy as np
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
    # the elements' bytes as stored, when the format keeps them little-endian and in order (a counter's value
    # is then read without NumPy)
    stored: Callable[[], bytes] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.shape = tuple(int(s) for s in self.shape)
        if not self.role:
            self.role = classify_role(self.name)

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

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
            tensor = self._tensors.get(name)
            if tensor is not None and tensor.dtype.name.startswith("int"):
                if tensor.stored is not None and tensor.numel == 1:
                    return int.from_bytes(tensor.stored(), "little", signed=True)
                return int(tensor.read().reshape(-1)[0])
        return None

    def close(self) -> None:
        """Release open files and maps. Arrays already returned stay valid only if copied."""

    def __enter__(self) -> "Checkpoint":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.format} {self.path!r}: {len(self)} tensors>"
