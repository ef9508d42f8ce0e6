"""Run one command as a child process and print its wall time and peak RSS as JSON.

    python benchmarks/_measure.py -- CMD ARGS...

Peak RSS comes from ``os.wait4`` for that child alone (its ru_maxrss, KiB on Linux), so every
measured path runs in a fresh process and is measured the same way, imports included.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time


def measure(cmd: list[str], *, env: dict | None = None, cwd: str | None = None) -> dict:
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # wait4 reaps the child and returns its own resource usage; read pipes in the meantime
    out, err = proc.stdout.read(), proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[:3]}... failed ({proc.returncode}): {err.decode()[-2000:]}")
    return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime, "peak_rss_mb": usage.ru_maxrss / 1024,
            "stdout": out.decode()[-2000:]}


def machine_line() -> str:
    """Date, CPU, cores, memory and load average: what the figures of a run depend on."""
    import datetime
    import platform

    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor() or "unknown CPU")
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    now = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    return f"{now} | {cpu}, {os.cpu_count()} cores, {mem_gib:.0f} GiB | load average {load}"


if __name__ == "__main__":
    args = sys.argv[1:]
    if args and args[0] == "--":
        args = args[1:]
    result = measure(args)
    print(json.dumps({k: v for k, v in result.items() if k != "stdout"}))
