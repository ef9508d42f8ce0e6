"""Transposing copies through the OpenBLAS that NumPy's wheels bundle (``cblas_?omatcopy``).

Converting a TF kernel ([in, out]) to a PyTorch Linear weight ([out, in]) is a transposing copy of most
of a checkpoint's bytes. NumPy copies a transposed view element by element (about 2.3 GB/s here even
tile by tile); OpenBLAS's ``omatcopy`` kernels move the same bytes at 5–20 GB/s. NumPy's PyPI wheels
ship that library (``numpy.libs/libscipy_openblas64_*``) with the ``scipy_``-prefixed 64-bit-integer
interface; ckptkit calls it through ctypes when it is there and checks it once on a small matrix,
and otherwise (another NumPy build, another platform, or ``CKPTKIT_NUMPY_TRANSPOSE=1`` in the
environment) :func:`transpose_into` returns False and the caller copies tile by tile with NumPy.

Example:
    >>> a = np.arange(6, dtype=np.float32).reshape(2, 3)
    >>> out = np.empty((3, 2), np.float32)
    >>> transpose_into(out, a.T) == available()
    True
    >>> out.tolist() if available() else a.T.tolist()
    [[0.0, 3.0], [1.0, 4.0], [2.0, 5.0]]
"""

from __future__ import annotations

import ctypes
import glob
import os
from typing import Callable

import numpy as np

__all__ = ["transpose_into", "available"]

# the library's file names beside NumPy's package, by platform (NumPy >= 2 wheels)
_LIBRARY_GLOBS = ("numpy.libs/libscipy_openblas64_*.so*", "numpy/.dylibs/libscipy_openblas64_*.dylib",
                  "numpy.libs/libscipy_openblas64_*.dll")
# dtype -> symbol of cblas_?omatcopy in the ILP64 build (blasint is int64)
_SYMBOLS = {np.dtype(np.float32): ("scipy_cblas_somatcopy64_", ctypes.c_float),
            np.dtype(np.float64): ("scipy_cblas_domatcopy64_", ctypes.c_double)}
_ROW_MAJOR, _TRANS = 101, 112  # CBLAS_ORDER.CblasRowMajor, CBLAS_TRANSPOSE.CblasTrans

_functions: dict[np.dtype, Callable] | None = None


def _load() -> dict[np.dtype, Callable]:
    """The omatcopy functions of NumPy's bundled OpenBLAS that pass a check on a small matrix; {} if none."""
    site = os.path.dirname(os.path.dirname(np.__file__))
    paths = [p for pattern in _LIBRARY_GLOBS for p in sorted(glob.glob(os.path.join(site, pattern)))]
    if not paths or os.environ.get("CKPTKIT_NUMPY_TRANSPOSE"):
        return {}
    try:
        library = ctypes.CDLL(paths[0])  # ctypes releases the GIL during the call: the band threads overlap
    except OSError:
        return {}
    found = {}
    for dtype, (symbol, scalar) in _SYMBOLS.items():
        function = getattr(library, symbol, None)
        if function is None:
            continue
        function.restype = None
        function.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64, scalar, ctypes.c_void_p,
                             ctypes.c_int64, ctypes.c_void_p, ctypes.c_int64]
        if _passes_check(function, dtype):
            found[dtype] = function
    return found


def _passes_check(function: Callable, dtype: np.dtype) -> bool:
    """A 5x7 sub-matrix of a wider matrix transposed by ``function`` equals NumPy's transpose."""
    source = np.arange(5 * 9, dtype=dtype).reshape(5, 9)
    out = np.full((7, 5), -1, dtype)
    function(_ROW_MAJOR, _TRANS, 5, 7, 1.0, source.ctypes.data + dtype.itemsize, 9, out.ctypes.data, 5)
    return bool(np.array_equal(out, source[:, 1:8].T))


def available() -> bool:
    """Whether OpenBLAS transposes are used in this process."""
    global _functions
    if _functions is None:
        _functions = _load()
    return bool(_functions)


def transpose_into(out: np.ndarray, view: np.ndarray) -> bool:
    """Copy ``view`` (a 2-D transposed view of a row-major matrix: element stride first, row stride second) into
    the C-contiguous ``out`` of the same shape and dtype with OpenBLAS; False, having done nothing, for any other
    layout, dtype, or when OpenBLAS is not available."""
    global _functions
    if _functions is None:
        _functions = _load()
    function = _functions.get(view.dtype) if view.ndim == 2 and out.dtype == view.dtype else None
    if function is None or not out.flags.c_contiguous or out.shape != view.shape or view.size == 0:
        return False
    size = view.dtype.itemsize
    element, row = view.strides
    if element != size or row % size or row < view.shape[0] * size:
        return False
    # the source is row-major [view.shape[1], view.shape[0]] with leading dimension row/size; out is its transpose
    function(_ROW_MAJOR, _TRANS, view.shape[1], view.shape[0], 1.0, view.ctypes.data, row // size,
             out.ctypes.data, view.shape[1])
    return True
