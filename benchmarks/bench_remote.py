"""Remote conversion: ckptkit reading only the kept tensors' byte ranges over HTTP vs downloading the
whole checkpoint first and converting it locally, in the same run, against the same server.

    python benchmarks/bench_remote.py                    # BERT-base with Adam slots (~1.3 GB), 100 MB/s
    python benchmarks/bench_remote.py --rate 50 --connections 16
    python benchmarks/bench_remote.py --layers 2         # a quick check: BERT-base shapes, 2 layers (~370 MB)

The checkpoint is bench_convert.py's ``base-adam`` case (tensors in sorted key order, as TF writes them,
so each weight sits between its own Adam slots). It is served by the tests' range-capable HTTP server
on 127.0.0.1 (tests/support/range_server.py) with its bandwidth limited by a token bucket shared by
all connections. Paths:
- remote:     `ckptkit convert http://127.0.0.1:PORT/.../model.ckpt-1000 OUT` (empty cache)
- download:   GET every file of the folder to disk, then `ckptkit convert LOCAL OUT`
Bytes are what the server sent (listing and HEAD requests included); wall is the whole path. Peak RSS is
that of the `ckptkit convert` process alone (os.wait4), remote vs the same convert of the downloaded copy.
The remote convert fetches a bounded window (ckptkit/remote/stream.py, 16 MiB) ahead of the conversion,
overlapping both, and hands the bytes straight to the tensor being read: it should peak within about the
window plus the remote libraries' import (~23 MB: fsspec, aiohttp) of the local convert.
"""

from __future__ import annotations

import argparse
import filecmp
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))  # support: the range server
from _measure import machine_line, measure  # noqa: E402
from _results import markdown_table, publish, spread  # noqa: E402
from bench_convert import make_case  # noqa: E402
from support.range_server import RangeServer  # noqa: E402

CKPTKIT = [sys.executable, "-m", "ckptkit"]


def _remote(server: RangeServer, folder: str, work: str, connections: int) -> tuple[float, int, float]:
    server.reset()
    start = time.perf_counter()
    run = measure([*CKPTKIT, "convert", f"{server.url}/{folder}/model.ckpt-1000", os.path.join(work, "remote"),
                   "--cache-dir", os.path.join(work, "cache"), "--connections", str(connections), "--quiet"])
    return time.perf_counter() - start, server.bytes_served, run["peak_rss_mb"]


def _download(server: RangeServer, folder: str, root: str, work: str) -> tuple[float, int, float]:
    server.reset()
    start = time.perf_counter()
    local = os.path.join(work, "download")
    os.makedirs(local)
    for name in sorted(os.listdir(os.path.join(root, folder))):
        with urllib.request.urlopen(f"{server.url}/{folder}/{name}") as answer, \
                open(os.path.join(local, name), "wb") as out:
            shutil.copyfileobj(answer, out, 1 << 20)
    run = measure([*CKPTKIT, "convert", os.path.join(local, "model.ckpt-1000"), os.path.join(work, "converted"),
                   "--quiet"])
    return time.perf_counter() - start, server.bytes_served, run["peak_rss_mb"]


def _make_layers(layers: int) -> str:
    """BERT-base shapes with ``layers`` layers and Adam slots, built in a child process (a child starts
    with its parent's peak RSS on Linux: the measuring parent never holds a model)."""
    prefix = os.path.join(HERE, "_work", f"remote-base-adam-{layers}l", "model.ckpt-1000")
    if not os.path.exists(prefix + ".index"):
        subprocess.run([sys.executable, os.path.abspath(__file__), "--make-layers", str(layers)], check=True)
    return prefix


def _build_layers(layers: int) -> None:
    import json

    from ckptkit.converters.formats.tf1 import TFCheckpointWriter
    from support.bert import bert_tf_config, bert_tf_variables, with_adam_slots

    shape = dict(vocab_size=30522, hidden=768, layers=layers, heads=12, intermediate=3072, max_positions=512)
    folder = os.path.join(HERE, "_work", f"remote-base-adam-{layers}l")
    os.makedirs(folder, exist_ok=True)
    variables = with_adam_slots(bert_tf_variables(**shape, seed=0))
    with TFCheckpointWriter(os.path.join(folder, "model.ckpt-1000")) as writer:
        for key in sorted(variables):
            writer.add(key, variables.pop(key))
    with open(os.path.join(folder, "bert_config.json"), "w") as f:
        json.dump(bert_tf_config(**shape), f)


def main() -> None:
    """Run both paths and print wall time and bytes served, with the ratios."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--case", default="base-adam", help="a case of bench_convert.py (default base-adam)")
    parser.add_argument("--rate", type=float, default=100.0, help="server bandwidth in MB/s (default 100)")
    parser.add_argument("--connections", type=int, default=8, help="ckptkit --connections (default 8)")
    parser.add_argument("--layers", type=int, help="instead of --case: BERT-base shapes with this many layers")
    parser.add_argument("--repeat", type=int, default=3, help="rounds per path; the median is reported")
    parser.add_argument("--publish", action="store_true", help="also write benchmarks/results/bench_remote.md")
    parser.add_argument("--make-layers", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.make_layers:
        return _build_layers(args.make_layers)
    prefix = _make_layers(args.layers) if args.layers else make_case(args.case)
    folder_path = os.path.dirname(prefix)
    root, folder = os.path.dirname(folder_path), os.path.basename(folder_path)
    total = sum(os.path.getsize(os.path.join(folder_path, n)) for n in os.listdir(folder_path))
    started = machine_line()
    print(started)
    print(f"case {os.path.basename(folder_path)}: {total / 1e6:.0f} MB in {folder_path}; server limited to {args.rate:.0f} MB/s")
    runs: dict[str, list[tuple[float, int, float]]] = {"remote": [], "download": []}
    same = True
    for _ in range(args.repeat):  # interleaved rounds: a busy moment hits both paths alike
        with tempfile.TemporaryDirectory(dir=os.path.join(HERE, "_work")) as work, \
                RangeServer(root, rate=args.rate * 1e6) as server:
            runs["remote"].append(_remote(server, folder, work, args.connections))
            runs["download"].append(_download(server, folder, root, work))
            # compared in chunks: reading whole files here would raise this process's peak RSS, which the
            # next round's children inherit and report as theirs
            same = same and all(filecmp.cmp(os.path.join(work, "remote", n), os.path.join(work, "converted", n),
                                            shallow=False) for n in ("model.safetensors", "config.json"))
    ended = machine_line()
    rows = [[path, spread([r[0] for r in each]), f"{each[0][1] / 1e6:.1f}", f"{max(r[2] for r in each):.0f}"]
            for path, each in runs.items()]
    remote_s, download_s = (statistics.median(r[0] for r in runs[p]) for p in ("remote", "download"))
    remote_b, download_b = runs["remote"][0][1], runs["download"][0][1]
    body = (markdown_table(["path", "wall s, median (range)", "MB served", "convert peak RSS MB"], rows)
            + f"\n\nThe remote convert reads {download_b / max(remote_b, 1):.2f}× less data and is "
              f"{download_s / remote_s:.2f}× faster; outputs identical: {same}.")
    print(body)
    if args.publish:
        method = (f"`ckptkit convert` of `{os.path.basename(folder_path)}` ({total / 1e6:.0f} MB with Adam slots) "
                  f"served over HTTP at {args.rate:.0f} MB/s (token bucket, 127.0.0.1) vs downloading every file "
                  f"and converting locally, `--connections {args.connections}`, {args.repeat} interleaved rounds.")
        print("wrote", publish("bench_remote", machine_start=started, machine_end=ended, method=method, body=body))

if __name__ == "__main__":
    main()
