"""How long `make demo` takes on a fresh clone: venv, `pip install -e '.[verify]'`, then the demo.

    python benchmarks/bench_install.py [--repeat 1] [--publish]

Clones this repository's HEAD into a temporary folder and runs `make demo` there with pip's cache
turned off (PIP_NO_CACHE_DIR=1), so every package is fetched from the configured index again (on a
machine with a local PyPI mirror that is fast; a slow network adds the downloads: the finished venv
holds about 1.2 GB, torch's CPU wheel alone is about 190 MB). Prints wall time split into install
and demo, and the venv's size.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from _measure import machine_line  # noqa: E402
from _results import markdown_table, publish, spread  # noqa: E402


def folder_mb(path: str) -> float:
    total = 0
    for parent, _, files in os.walk(path):
        total += sum(os.lstat(os.path.join(parent, name)).st_size for name in files)
    return total / 2**20


def one_round(scratch: str) -> dict:
    """Clone, then time `make .venv/.installed-verify` (the install) and `make demo` (the demo alone)."""
    clone = os.path.join(scratch, "clone")
    subprocess.run(["git", "clone", "-q", ROOT, clone], check=True)
    env = {**os.environ, "PIP_NO_CACHE_DIR": "1", "HF_HUB_OFFLINE": "1"}
    env.pop("VIRTUAL_ENV", None)
    times = {}
    for step, target in (("install", ".venv/.installed-verify"), ("demo", "demo")):
        start = time.perf_counter()
        done = subprocess.run(["make", target], cwd=clone, env=env, capture_output=True, text=True)
        times[step] = time.perf_counter() - start
        if done.returncode:
            raise SystemExit(f"make {target} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    times["venv_mb"] = folder_mb(os.path.join(clone, ".venv"))
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--publish", action="store_true", help="also write benchmarks/results/bench_install.md")
    args = parser.parse_args()
    started = machine_line()
    rounds = []
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as scratch:
            rounds.append(one_round(scratch))
            print(f"install {rounds[-1]['install']:.0f} s, demo {rounds[-1]['demo']:.0f} s", file=sys.stderr)
    ended = machine_line()
    totals = [r["install"] + r["demo"] for r in rounds]
    rows = [["`make demo` on a fresh clone", spread([r["install"] for r in rounds], "{:.0f}"),
             spread([r["demo"] for r in rounds], "{:.0f}"), spread(totals, "{:.0f}"),
             f"{rounds[-1]['venv_mb'] / 1024:.1f} GB"]]
    body = markdown_table(["what", "install s", "demo s", "total s", "venv size"], rows)
    print(f"start: {started}\nend:   {ended}\n{body}")
    if args.publish:
        method = (f"`make demo` in a fresh clone with pip's cache off (`PIP_NO_CACHE_DIR=1`), packages from this "
                  f"machine's configured index; {args.repeat} round(s).")
        print("wrote", publish("bench_install", machine_start=started, machine_end=ended, method=method, body=body))


if __name__ == "__main__":
    main()
