"""Transposing copies through NumPy's bundled OpenBLAS (converters/blas_transpose.py): the same bytes as NumPy's
own transpose for every band a conversion cuts, nothing done for layouts it does not handle, a library that
transposes wrongly is never used, and the NumPy tiles still work without it."""

from __future__ import annotations

import os
import tempfile

import numpy as np
import pytest

from ckptkit.converters import blas_transpose, stream_write


def test_numpys_wheel_bundles_the_library_and_it_passes_its_check():
    # the PyPI numpy wheel CI installs ships libscipy_openblas64_: if a new numpy renames it, this says so
    assert blas_transpose.available()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(768, 3072), (3072, 768), (1000, 37), (1, 64), (64, 1)])
def test_every_band_equals_numpys_transpose(shape, dtype):
    matrix = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    for start, end in ((0, shape[1]), (1, shape[1]), (shape[1] // 3, 2 * shape[1] // 3 + 1)):
        view = matrix[:, start:end].T
        out = np.full(view.shape, np.nan, dtype)
        assert blas_transpose.transpose_into(out, view) is (view.size > 0)
        assert np.array_equal(out, np.ascontiguousarray(view))


@pytest.mark.parametrize("case", ["float16", "contiguous", "reversed", "strided-out", "cast", "three-d"])
def test_other_layouts_are_left_to_numpy(case):
    m = np.arange(64 * 80, dtype=np.float32).reshape(64, 80)
    view, out = {
        "float16": (m.astype(np.float16).T, np.zeros((80, 64), np.float16)),
        "contiguous": (m, np.zeros((64, 80), np.float32)),
        "reversed": (m[::-1].T, np.zeros((80, 64), np.float32)),
        "strided-out": (m.T, np.zeros((80, 128), np.float32)[:, ::2]),
        "cast": (m.T, np.zeros((80, 64), np.float64)),
        "three-d": (m.reshape(8, 8, 80).transpose(2, 1, 0), np.zeros((80, 8, 8), np.float32)),
    }[case]
    before = out.copy()
    assert blas_transpose.transpose_into(out, view) is False
    assert np.array_equal(out, before)


def test_a_library_that_transposes_wrongly_fails_the_check():
    def wrong(order, trans, rows, cols, alpha, a, lda, b, ldb):  # copies without transposing
        np.ctypeslib.as_array((np.ctypeslib.ctypes.c_float * (rows * cols)).from_address(b))[:] = 0

    assert blas_transpose._passes_check(wrong, np.dtype(np.float32)) is False


@pytest.mark.parametrize("blas", [True, False])
def test_a_written_transposed_kernel_is_the_same_with_and_without_the_library(blas, monkeypatch):
    if not blas:
        monkeypatch.setattr(blas_transpose, "_functions", {})
    matrix = np.random.default_rng(1).standard_normal((1024, 3072)).astype(np.float32)  # a TF [in, out] kernel
    with tempfile.TemporaryFile() as f:
        stream_write.write_array(f.fileno(), 16, matrix.T, np.dtype(np.float32))
        written = np.frombuffer(os.pread(f.fileno(), matrix.nbytes, 16), np.float32).reshape(3072, 1024)
    assert np.array_equal(written, matrix.T)


def test_the_environment_switch_turns_it_off(monkeypatch):
    monkeypatch.setenv("CKPTKIT_NUMPY_TRANSPOSE", "1")
    assert blas_transpose._load() == {}
