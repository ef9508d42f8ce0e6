"""Read a BERT-large-shaped TF checkpoint with ckptkit and with TensorFlow, side by side.

Writes the checkpoint once with our writer into benchmarks/_work/ (24 layers, hidden 1024,
intermediate 4096, vocab 30522: ~1.34 GB), then in a fresh subprocess each, reads every tensor
and sums it (one tensor alive at a time): ckptkit's open_checkpoint, then TensorFlow's
tf.train.load_checkpoint + get_tensor. Wall time includes the interpreter start and imports;
peak RSS is the child's ru_maxrss.

Usage:  python benchmarks/bench_tf_read.py [--layers 24] [--repeat 3] [--publish]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

WORK = Path(__file__).resolve().parent / "_work"
sys.path.insert(0, str(WORK.parent))
from _measure import machine_line  # noqa: E402
from _results import markdown_table, publish, spread  # noqa: E402

READERS = {
    "ckptkit": """
import numpy as np
from ckptkit.converters.formats import open_checkpoint
total = 0.0
with open_checkpoint(PREFIX) as ckpt:
    for name in ckpt:
        total += float(np.sum(ckpt[name].read(), dtype=np.float64))
print(f"{total:.6e}")
""",
    "tensorflow": """
import os
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import numpy as np
import tensorflow as tf
reader = tf.train.load_checkpoint(PREFIX)
total = 0.0
for name in sorted(reader.get_variable_to_shape_map()):
    total += float(np.sum(reader.get_tensor(name), dtype=np.float64))
print(f"{total:.6e}")
""",
}


def bert_shapes(layers: int, hidden: int = 1024, intermediate: int = 4096, vocab: int = 30522):
    """(name, shape) of a google-research/bert checkpoint's weights."""
    yield "bert/embeddings/word_embeddings", (vocab, hidden)
    yield "bert/embeddings/position_embeddings", (512, hidden)
    yield "bert/embeddings/token_type_embeddings", (2, hidden)
    yield "bert/embeddings/LayerNorm/gamma", (hidden,)
    yield "bert/embeddings/LayerNorm/beta", (hidden,)
    for i in range(layers):
        p = f"bert/encoder/layer_{i}"
        for part in ("attention/self/query", "attention/self/key", "attention/self/value", "attention/output/dense"):
            yield f"{p}/{part}/kernel", (hidden, hidden)
            yield f"{p}/{part}/bias", (hidden,)
        for norm in ("attention/output/LayerNorm", "output/LayerNorm"):
            yield f"{p}/{norm}/gamma", (hidden,)
            yield f"{p}/{norm}/beta", (hidden,)
        yield f"{p}/intermediate/dense/kernel", (hidden, intermediate)
        yield f"{p}/intermediate/dense/bias", (intermediate,)
        yield f"{p}/output/dense/kernel", (intermediate, hidden)
        yield f"{p}/output/dense/bias", (hidden,)
    yield "bert/pooler/dense/kernel", (hidden, hidden)
    yield "bert/pooler/dense/bias", (hidden,)
    yield "cls/predictions/transform/dense/kernel", (hidden, hidden)
    yield "cls/predictions/output_bias", (vocab,)


def make_checkpoint(prefix: Path, layers: int) -> int:
    from ckptkit.converters.formats.tf1 import TFCheckpointWriter

    rng = np.random.default_rng(0)
    total = 0
    with TFCheckpointWriter(prefix) as writer:
        for name, shape in bert_shapes(layers):
            array = rng.standard_normal(shape, dtype=np.float32) * 0.02
            writer.add(name, array)
            total += array.nbytes
        writer.add("global_step", np.int64(1_000_000))
    return total


def run_reader(name: str, prefix: Path) -> tuple[float, float, str]:
    """(wall seconds, peak RSS MiB, stdout) of one reader in a fresh interpreter."""
    code = f"PREFIX = {str(prefix)!r}\n" + READERS[name]
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    out, err = proc.stdout.read().decode(), proc.stderr.read().decode()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"{name} reader failed:\n{err[-2000:]}")
    return wall, usage.ru_maxrss / 1024, out.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layers", type=int, default=24)
    parser.add_argument("--repeat", type=int, default=3, help="rounds per reader; the median is reported")
    parser.add_argument("--publish", action="store_true", help="also write benchmarks/results/bench_tf_read.md")
    args = parser.parse_args()
    prefix = WORK / f"bert-large-{args.layers}l" / "model.ckpt-1000000"
    if not Path(f"{prefix}.index").is_file():
        start = time.perf_counter()
        size = make_checkpoint(prefix, args.layers)
        print(f"wrote {size / 1e9:.2f} GB with TFCheckpointWriter in {time.perf_counter() - start:.1f} s")
    started = machine_line()
    print(f"start: {started}")
    runs: dict[str, list] = {name: [] for name in READERS}
    for _ in range(args.repeat):  # interleaved rounds: a slow disk moment hits both readers alike
        for name in READERS:
            runs[name].append(run_reader(name, prefix))
    ended = machine_line()
    print(f"end:   {ended}")
    sums = {out for each in runs.values() for _, _, out in each}
    print(f"{'reader':<12}{'median s':>9}{'range s':>13}{'peak RSS MiB':>15}   ({args.repeat} rounds)")
    medians = {}
    for name, each in runs.items():
        walls = sorted(wall for wall, _, _ in each)
        medians[name] = (statistics.median(walls), max(rss for _, rss, _ in each))
        print(f"{name:<12}{medians[name][0]:>9.2f}{walls[0]:>6.2f}-{walls[-1]:<6.2f}{medians[name][1]:>15.0f}")
    (ck_wall, ck_rss), (tf_wall, tf_rss) = medians["ckptkit"], medians["tensorflow"]
    print(f"ckptkit is {tf_wall / ck_wall:.1f}x faster and uses {tf_rss / ck_rss:.1f}x less peak memory"
          f"{'' if len(sums) == 1 else '  (WARNING: the sums differ: ' + ', '.join(sums) + ')'}")
    if args.publish:
        rows = [[name, spread([wall for wall, _, _ in each]), f"{max(rss for _, rss, _ in each):.0f}",
                 f"{medians[name][0] / ck_wall:.1f}×"] for name, each in runs.items()]
        size_gb = sum(p.stat().st_size for p in prefix.parent.iterdir()) / 1e9
        body = (markdown_table(["reader", "wall s, median (range)", "peak RSS MiB", "time vs ckptkit"], rows)
                + f"\n\nckptkit reads every tensor {tf_wall / ck_wall:.1f}× faster than TensorFlow at "
                  f"1/{tf_rss / ck_rss:.1f} of its peak memory; the sums {'agree' if len(sums) == 1 else 'DIFFER'}.")
        method = (f"every tensor of a {args.layers}-layer BERT-large-shaped TF checkpoint ({size_gb:.2f} GB) read "
                  f"and summed, a fresh process per reader (imports included), {args.repeat} interleaved rounds, "
                  f"warm page cache.")
        print("wrote", publish("bench_tf_read", machine_start=started, machine_end=ended, method=method, body=body))

if __name__ == "__main__":
    main()
