"""The plan's ops and its copy into output buffers, against plain NumPy."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

from ckptkit.converters import plan as plan_module
from ckptkit.converters.plan import OPS, PlannedTensor, Step, copy_into, materialize, output_shape
from ckptkit.converters.tensors import dtype_by_name


@pytest.mark.parametrize("shape", [(1000, 1300), (4096, 1024), (257, 9000), (300, 300)])
@pytest.mark.parametrize("dtype", [np.float32, np.float16, ml_dtypes.bfloat16])
def test_transposing_copy_equals_numpy(shape, dtype):
    """Row bands on every core (large tensors), one band (small ones), with and without a cast."""
    value = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    out = np.empty(shape[::-1], dtype=dtype)
    copy_into(out, value.T)
    np.testing.assert_array_equal(out, np.ascontiguousarray(value.T).astype(dtype))


def test_bands_cover_every_row_with_more_threads_than_bands(monkeypatch):
    monkeypatch.setattr(plan_module, "_threads", lambda: 4)
    value = np.arange(600 * 3000, dtype=np.float32).reshape(600, 3000)  # 600 rows: 3 bands of 256 for 4 threads
    out = np.zeros((3000, 600), np.float32)
    copy_into(out, value.T)
    np.testing.assert_array_equal(out, value.T)


def test_signed_pair_head_computes_one_dense_through_gelu():
    """The ELECTRA task-head ops: dense -> exact gelu -> dense equals the original single dense."""
    from math import erf

    rng = np.random.default_rng(1)
    hidden, labels = 10, 3
    kernel, bias = rng.standard_normal((hidden, labels)) * 3, rng.standard_normal(labels)
    f64 = dtype_by_name("float64")

    def run(steps, source):
        return materialize(PlannedTensor("t", ("s",), steps, f64, output_shape([source.shape], steps)), [source])

    w1 = run((Step("transpose", (1, 0)), Step("signed_pair", (hidden,))), kernel)
    b1 = run((Step("signed_pair", (hidden,)),), bias)
    w2 = run((Step("pair_difference", (hidden,)),), kernel)
    b2 = run((Step("zeros"),), bias)
    x = rng.standard_normal((5, hidden))
    gelu = np.vectorize(lambda z: 0.5 * z * (1 + erf(z / np.sqrt(2))))
    np.testing.assert_allclose(gelu(x @ w1.T + b1) @ w2.T + b2, x @ kernel + bias, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="do not fit in 5 rows"):
        OPS["signed_pair"].shape([(3, 10)], 5)
