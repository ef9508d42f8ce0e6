"""Remote conversion: ckptkit reading only the kept tensors' byte ranges over HTTP vs downloading the
whole checkpoint first and converting it locally, in the same run, against the same server.

    python benchmarks/bench_remote.py                    # BERT-base with Adam slots (~1.3 GB), 100 MB/s
    python benchmarks/bench_remote.py --rate 50 --connections 16

The checkpoint is bench_convert.py's ``base-adam`` case (tensors in sorted key order, as TF writes them,
so each weight sits between its own Adam slots). It is served by the tests' range-capable HTTP server
on 127.0.0.1 (tests/support/range_server.py) with its bandwidth limited by a token bucket shared by
all connections. Paths:
- remote:     `ckptkit convert http://127.0.0.1:PORT/.../model.ckpt-1000 OUT` (empty cache)
- download:   GET every file of the folder to disk, then `ckptkit convert LOCAL OUT`
Bytes are what the server sent (listing and HEAD requests included); wall is the whole path.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))  # support: the range server
from _measure import machine_line  # noqa: E402
from bench_convert import make_case  # noqa: E402
from support.range_server import RangeServer  # noqa: E402

CKPTKIT = [sys.executable, "-m", "ckptkit"]


def _remote(server: RangeServer, folder: str, work: str, connections: int) -> tuple[float, int]:
    server.reset()
    start = time.perf_counter()
    subprocess.run([*CKPTKIT, "convert", f"{server.url}/{folder}/model.ckpt-1000", os.path.join(work, "remote"),
                    "--cache-dir", os.path.join(work, "cache"), "--connections", str(connections), "--quiet"],
                   check=True)
    return time.perf_counter() - start, server.bytes_served


def _download(server: RangeServer, folder: str, root: str, work: str) -> tuple[float, int]:
    server.reset()
    start = time.perf_counter()
    local = os.path.join(work, "download")
    os.makedirs(local)
    for name in sorted(os.listdir(os.path.join(root, folder))):
        with urllib.request.urlopen(f"{server.url}/{folder}/{name}") as answer, \
                open(os.path.join(local, name), "wb") as out:
            shutil.copyfileobj(answer, out, 1 << 20)
    subprocess.run([*CKPTKIT, "convert", os.path.join(local, "model.ckpt-1000"), os.path.join(work, "converted"),
                    "--quiet"], check=True)
    return time.perf_counter() - start, server.bytes_served


def main() -> None:
    """Run both paths and print wall time and bytes served, with the ratios."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--case", default="base-adam", help="a case of bench_convert.py (default base-adam)")
    parser.add_argument("--rate", type=float, default=100.0, help="server bandwidth in MB/s (default 100)")
    parser.add_argument("--connections", type=int, default=8, help="ckptkit --connections (default 8)")
    args = parser.parse_args()
    prefix = make_case(args.case)
    folder_path = os.path.dirname(prefix)
    root, folder = os.path.dirname(folder_path), os.path.basename(folder_path)
    total = sum(os.path.getsize(os.path.join(folder_path, n)) for n in os.listdir(folder_path))
    print(machine_line())
    print(f"case {args.case}: {total / 1e6:.0f} MB in {folder_path}; server limited to {args.rate:.0f} MB/s")
    with tempfile.TemporaryDirectory(dir=os.path.join(HERE, "_work")) as work, \
            RangeServer(root, rate=args.rate * 1e6) as server:
        remote_s, remote_b = _remote(server, folder, work, args.connections)
        download_s, download_b = _download(server, folder, root, work)
        same = all(open(os.path.join(work, "remote", n), "rb").read() ==
                   open(os.path.join(work, "converted", n), "rb").read()
                   for n in ("model.safetensors", "config.json"))
    print(f"{'path':<10} {'wall s':>8} {'MB served':>10}")
    print(f"{'remote':<10} {remote_s:>8.1f} {remote_b / 1e6:>10.1f}")
    print(f"{'download':<10} {download_s:>8.1f} {download_b / 1e6:>10.1f}")
    print(f"remote reads {download_b / max(remote_b, 1):.2f}x less data and is {download_s / remote_s:.2f}x faster; "
          f"outputs identical: {same}")


if __name__ == "__main__":
    main()
