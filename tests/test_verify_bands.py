"""verify compares a safetensors output with its source in bands, without copying either tensor whole
(compare.tensor_holds): a changed element anywhere (first band, last band, any tensor) is still found and
measured exactly, through the whole-array comparison it falls back to."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

from ckptkit.converters import compare, stream_write
from ckptkit.converters.convert import convert_checkpoint
from ckptkit.converters.formats import open_checkpoint
from ckptkit.converters.verify import verify_conversion
from conftest import REPO

TINY = str(REPO / "examples" / "tiny-bert")
KERNEL = "bert.encoder.layer.1.intermediate.dense.weight"  # a transposed TF kernel


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> str:
    out = str(tmp_path_factory.mktemp("bands") / "hf")
    convert_checkpoint(TINY, out)
    return out


def _changed(converted: str, tmp_path, name: str, index: int, delta: float) -> tuple[str, float]:
    """A copy of the output with element ``index`` (flat, C order) of tensor ``name`` moved by ``delta``."""
    copy = str(tmp_path / "hf")
    shutil.copytree(converted, copy)
    with open_checkpoint(copy) as ckpt:
        path, offset, _ = ckpt[name].byte_range
        value = ckpt[name].read().reshape(-1)[index]
    with open(path, "r+b") as f:
        f.seek(offset + 4 * index)
        f.write(np.float32(value + delta).tobytes())
    return copy, abs(float(np.float32(value + delta)) - float(value))


@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_one_changed_element_is_found_and_measured(converted, tmp_path, monkeypatch, where):
    monkeypatch.setattr(stream_write, "BAND_BYTES", 256)  # many bands even in a tiny model
    with open_checkpoint(converted) as ckpt:
        size = int(np.prod(ckpt[KERNEL].shape))
    index = {"first": 0, "middle": size // 2 + 3, "last": size - 1}[where]
    changed, moved = _changed(converted, tmp_path, KERNEL, index, 0.25)
    report = verify_conversion(TINY, changed, forward=False)
    rows = {r["name"]: r for r in report.tensors}
    assert not report.passed and not rows[KERNEL]["ok"]
    assert rows[KERNEL]["max_abs_diff"] == pytest.approx(moved)
    assert all(r["ok"] and r["max_abs_diff"] == 0.0 for n, r in rows.items() if n != KERNEL)


def test_the_unchanged_output_compares_in_bands_without_whole_copies(converted, monkeypatch):
    """Every tensor of a plain conversion is settled by the banded comparison: the whole-array path never runs."""
    def whole(*args, **kwargs):
        raise AssertionError("compared whole arrays")

    import ckptkit.converters.verify as verify

    monkeypatch.setattr(verify, "_compare", whole)
    report = verify_conversion(TINY, converted, forward=False)
    assert report.passed and len(report.tensors) > 10


def test_tensor_holds_only_for_the_same_bytes_in_a_local_safetensors_file(converted):
    with open_checkpoint(converted) as ckpt:
        tensor = ckpt[KERNEL]
        value = tensor.read()
        assert compare.tensor_holds(tensor, value)
        assert compare.tensor_holds(tensor, np.asfortranarray(value))  # any layout of the same values
        assert not compare.tensor_holds(tensor, value.astype(np.float16))
        assert not compare.tensor_holds(tensor, value.T)
        bumped = value.copy()
        bumped.reshape(-1)[-1] += 1
        assert not compare.tensor_holds(tensor, bumped)


def test_the_reference_and_the_engine_run_side_by_side(converted, monkeypatch):
    """The two float64 forward passes run at the same time, each on one core: verify of BERT-large takes about
    the time of the slower one instead of the sum."""
    import threading
    import time

    import ckptkit.converters.verify as verify
    import ckptkit.converters.verify_engine as engine

    spans: dict[str, tuple[str, float, float]] = {}

    def timed(key, function):
        def run(*args, **kwargs):
            start = time.perf_counter()
            time.sleep(0.3)  # long enough that sequential runs cannot overlap by chance
            result = function(*args, **kwargs)
            spans[key] = (threading.current_thread().name, start, time.perf_counter())
            return result
        return run

    monkeypatch.setattr(verify, "_reference_outputs", timed("reference", verify._reference_outputs))
    monkeypatch.setattr(engine, "numpy_outputs", timed("engine", engine.numpy_outputs))
    report = verify_conversion(TINY, converted)
    assert report.passed and report.outputs
    (ref_thread, ref_start, ref_end), (_, eng_start, eng_end) = spans["reference"], spans["engine"]
    assert ref_thread.startswith("ckptkit-reference")
    assert ref_start < eng_end and eng_start < ref_end  # the spans overlap


def test_only_one_whole_vocabulary_table_is_held_at_a_time():
    from ckptkit.converters import reference

    held = []

    def get(name):
        raise AssertionError("the tables are read as stored, in chunks")

    def stored(name):
        held.append(reference._ONE_TABLE_AT_A_TIME.locked())
        return np.arange(20, dtype=np.float32).reshape(10, 2)

    get.stored = stored
    rows = reference.embedding_rows(get, "words", np.array([[1, 2]]))
    logits = reference.times_transposed(get, "words", np.ones((1, 2)))
    assert held == [True, True] and rows.dtype == np.float64 and logits.shape == (1, 10)
