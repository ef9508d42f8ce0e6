"""How verify compares: tensors bitwise (or within a cast's tolerance), forward outputs within float32
rounding, and the thin matrix products of the reference on one BLAS thread.

Example:
    >>> import numpy as np

if TYPE_CHECKING:
    from ckptkit.converters.tensors import LazyTensor
    >>> compare_arrays(np.ones(3, np.float32), np.ones(3, np.float32), "float32")
    (0.0, True)
"""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING, ContextManager

import numpy as np

__all__ = ["TOLERANCES", "FORWARD_TOLERANCE", "forward_tolerance", "compare_arrays", "one_blas_thread",
           "file_holds", "tensor_holds"]

# relative tolerance of a tensor compared after a cast to this dtype
TOLERANCES = {"float32": 1e-6, "float16": 1e-3, "bfloat16": 8e-3, "float64": 1e-12}
FORWARD_TOLERANCE = 1e-5  # float32: absolute for outputs within [-1, 1], else relative to the largest magnitude


def forward_tolerance(expected: np.ndarray) -> float:
    """The allowed difference for one output: float32 rounding grows with the values (BERT-base's MLM logits
    reach ~60, and a correct conversion differs there by ~5e-5; a mapping mistake by O(1)).

    Example:
        >>> forward_tolerance(np.array([0.5, -0.2])), forward_tolerance(np.array([-64.0, 3.0]))
        (1e-05, 0.00064)
    """
    return FORWARD_TOLERANCE * max(1.0, float(np.max(np.abs(expected), initial=0.0)))


def _bitwise_equal(expected: np.ndarray, actual: np.ndarray) -> bool:
    """Same bytes, compared in bands of ~8 MiB (no full-size temporaries beside the two tensors)."""
    if expected.dtype != actual.dtype or expected.dtype.hasobject:
        return False
    a = np.ascontiguousarray(expected).reshape(-1).view(np.uint8)
    b = np.ascontiguousarray(actual).reshape(-1).view(np.uint8)
    return all(np.array_equal(a[i:i + _BAND_BYTES], b[i:i + _BAND_BYTES]) for i in range(0, len(a), _BAND_BYTES))


_BAND_BYTES = 8 << 20


def compare_arrays(expected: np.ndarray, actual: np.ndarray, dtype_name: str) -> tuple[float, bool]:
    """(max abs difference, within tolerance): 0.0 for the same bytes; after a cast, relative to the largest value."""
    if expected.shape != actual.shape:
        return float("inf"), False
    if _bitwise_equal(expected, actual) or (
            expected.dtype == actual.dtype and np.array_equal(expected, actual, equal_nan=expected.dtype.kind == "f")):
        return 0.0, True
    if expected.dtype.kind not in "fc" and str(expected.dtype) not in TOLERANCES:
        return float("inf"), False
    e, a = expected.astype(np.float64), actual.astype(np.float64)
    diff = float(np.max(np.abs(e - a), initial=0.0))
    tol = TOLERANCES.get(dtype_name, 1e-3) * max(1.0, float(np.max(np.abs(e), initial=0.0)))
    return diff, diff <= tol


def one_blas_thread() -> ContextManager:
    """The reference's matrices are thin (a 2x16 batch): BLAS threads only wait on each other, badly so on a
    busy machine (5-10x slower on 2 loaded cores)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with the verify extra
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def file_holds(view: np.ndarray, path: str, offset: int) -> bool:
    """Whether ``path`` holds exactly ``view``'s C-order bytes at ``offset``.

    ``view`` may be any view (a transposed kernel): it is copied band by band into a reused buffer (as
    ``convert`` writes it) and each band compared with the same bytes of the file read into another, so
    neither side is ever copied whole. False at the first differing band; the caller then measures the
    difference on whole arrays.

    Example:
        >>> import tempfile
        >>> f = tempfile.NamedTemporaryFile(); _ = f.write(b"xx" + np.arange(6, dtype=np.float32).tobytes()); f.flush()
        >>> a = np.arange(6, dtype=np.float32)
        >>> file_holds(a, f.name, 2), file_holds(a.reshape(2, 3).T, f.name, 2)
        (True, False)
    """
    from ckptkit.converters.stream_write import iter_bands

    fd = os.open(path, os.O_RDONLY)
    try:
        buffer = np.empty(0, np.uint8)
        for start, band in iter_bands(view, view.dtype):
            expected = band.reshape(-1).view(np.uint8)
            if buffer.nbytes < expected.nbytes:
                buffer = np.empty(expected.nbytes, np.uint8)
            stored = buffer[:expected.nbytes]
            if os.preadv(fd, [memoryview(stored)], offset + start) != expected.nbytes \
                    or not np.array_equal(expected, stored):
                return False
        return True
    finally:
        os.close(fd)


def tensor_holds(target: LazyTensor, view: np.ndarray) -> bool:
    """Whether ``target`` is stored plainly in a local safetensors file with exactly ``view``'s bytes (False
    for anything else: another format, a remote file, another dtype or shape)."""
    from ckptkit.converters.memory import BYTE_SOURCES

    where = target.byte_range
    if where is None or not where[0].endswith(".safetensors") or os.path.abspath(where[0]) in BYTE_SOURCES:
        return False
    same_layout = view.dtype == target.dtype.numpy and tuple(view.shape) == tuple(target.shape)
    return same_layout and where[2] == view.nbytes and file_holds(view, where[0], where[1])
