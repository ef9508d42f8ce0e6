"""The conversion write path (#18 items 1-2): tensors go to the file with positional writes from the plan's
uncopied views, byte-identical to what the safetensors library and TensorFlow write, with one copy of the
largest tensor in memory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import ml_dtypes
import numpy as np
import pytest

from ckptkit.converters import stream_write
from ckptkit.converters.formats.safetensors_io import SafetensorsWriter, TensorSpec
from ckptkit.converters.tensors import dtype_of

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _views(rng) -> dict[str, tuple[np.ndarray, np.dtype]]:
    """name -> (a view as the plan hands it over, the dtype the file stores)."""
    kernel = rng.standard_normal((700, 1300)).astype(np.float32)
    cube = rng.standard_normal((6, 40, 50)).astype(np.float32)
    return {"transposed": (kernel.T, np.dtype(np.float32)),
            "transposed_half": (kernel.T, np.dtype(np.float16)),
            "transposed_bf16": (kernel.T, np.dtype(ml_dtypes.bfloat16)),
            "strided_rows": (kernel[::3], np.dtype(np.float32)),
            "permuted_3d": (cube.transpose(2, 0, 1), np.dtype(np.float32)),
            "contiguous": (kernel, np.dtype(np.float32)),
            "ids": (np.arange(1000, dtype=np.int32)[::2], np.dtype(np.int64)),
            "scalar": (np.asarray(7, np.int64), np.dtype(np.int64))}


@pytest.mark.parametrize("band_bytes", [64 << 10, 8 << 20])  # many bands on several threads; one band
def test_banded_writes_equal_the_safetensors_library(tmp_path, monkeypatch, band_bytes):
    """Every kind of view, cast on the way, in bands small enough that each tensor spans many of them, on 4
    threads: the file is byte for byte what ``safetensors.numpy.save_file`` writes for the materialized arrays."""
    from safetensors.numpy import save_file

    monkeypatch.setattr(stream_write, "BAND_BYTES", band_bytes)
    monkeypatch.setattr(stream_write, "_THREADED_BYTES", 0)
    monkeypatch.setattr(stream_write, "_threads", lambda: 4)
    views = _views(np.random.default_rng(0))
    expected = {name: np.array(view, dtype=dtype, order="C") for name, (view, dtype) in views.items()}
    writer = SafetensorsWriter(tmp_path / "ours.safetensors",
                               [TensorSpec(n, dtype_of(a.dtype), a.shape) for n, a in expected.items()],
                               metadata={"format": "pt"})
    for name, (view, _) in views.items():
        writer.write(name, view)
    writer.close()
    save_file(expected, str(tmp_path / "library.safetensors"), metadata={"format": "pt"})
    assert (tmp_path / "ours.safetensors").read_bytes() == (tmp_path / "library.safetensors").read_bytes()


def test_writer_refuses_a_wrong_shape_or_a_string_array(tmp_path):
    from ckptkit.converters.tensors import dtype_by_name

    writer = SafetensorsWriter(tmp_path / "x.safetensors", [TensorSpec("x", dtype_by_name("float32"), (2, 3))])
    with pytest.raises(ValueError, match="declared float32"):
        writer.write("x", np.zeros((3, 2), np.float32))
    with pytest.raises(ValueError, match="declared float32"):
        writer.write("x", np.array([["a"] * 3] * 2))
    writer.abort()
    assert os.listdir(tmp_path) == []


PEAK = textwrap.dedent("""
    import json, sys
    from ckptkit.converters.convert import convert_checkpoint
    import numpy, ckptkit.converters.formats.tf1, ckptkit.converters.sinks  # imports count in the baseline
    def status(key):  # this process's own figures (ru_maxrss would include the parent's peak from before exec)
        return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith(key + ":")) / 1024
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # the peak starts again from the current resident set
    before = status("VmRSS")
    convert_checkpoint(sys.argv[1], sys.argv[2], **json.loads(sys.argv[3]))
    print(json.dumps({"before_mb": before, "after_mb": status("VmHWM")}))
""")


@pytest.fixture(scope="module")
def big_embedding_checkpoint(tmp_path_factory):
    """A 1-layer BERT whose word embeddings (96 MiB) are the largest tensor by far."""
    from support.bert import bert_tf_config, bert_tf_variables
    from ckptkit.converters.formats.tf1 import write_tf_checkpoint

    folder = tmp_path_factory.mktemp("big-embeddings")
    shape = dict(vocab_size=32768, hidden=768, layers=1, heads=12, intermediate=3072, max_positions=64)
    write_tf_checkpoint(folder / "model.ckpt", bert_tf_variables(**shape))
    (folder / "bert_config.json").write_text(json.dumps(bert_tf_config(**shape)))
    return folder


@pytest.mark.parametrize("options", [{}, {"dtype": "float16"}], ids=["float32", "cast-to-float16"])
def test_peak_memory_is_one_copy_of_the_largest_tensor(big_embedding_checkpoint, tmp_path, options):
    """TF -> safetensors grows the process by the largest tensor and a few bands, never by two copies of it."""
    largest_mb = 32768 * 768 * 4 / 2**20  # 96 MiB
    done = subprocess.run([sys.executable, "-c", PEAK, str(big_embedding_checkpoint / "model.ckpt"),
                           str(tmp_path / "out"), json.dumps({"no_tokenizer": True, **options})],
                          capture_output=True, text=True, timeout=120, cwd=REPO)
    assert done.returncode == 0, done.stderr
    rss = json.loads(done.stdout.splitlines()[-1])
    grown = rss["after_mb"] - rss["before_mb"]
    assert grown < largest_mb + 40, (grown, rss)  # before #18: ~2x the largest tensor (the read + the mapping)
