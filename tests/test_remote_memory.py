"""Remote reads keep peak memory near a local run's: the bytes being received at once stay under
``IN_FLIGHT`` whatever the number of connections, and buffers freed are given back to the system
(``benchmarks/bench_remote.py`` compares the peak RSS of a remote and a local convert)."""

from __future__ import annotations

import threading

import numpy as np

from ckptkit.remote import configure
from ckptkit.remote.filesystem import RemoteFS
from ckptkit.remote.lazy_file import IN_FLIGHT, LazyFile, return_freed_buffers
from support.range_server import RangeServer

SIZE = 40 << 20  # more than IN_FLIGHT: 8 connections used to fetch it all at once (8 x 5 MiB)


def test_bytes_in_flight_stay_under_the_budget(tmp_path, monkeypatch):
    data = np.random.default_rng(0).integers(0, 256, SIZE, dtype=np.uint8)
    (tmp_path / "srv").mkdir()
    (tmp_path / "srv" / "w.data-00000-of-00001").write_bytes(data.tobytes())
    fs = RemoteFS("http")
    in_flight, peak, lock = [0], [0], threading.Lock()
    real_read = fs.read

    def counted(url, start, end):
        with lock:
            in_flight[0] += end - start
            peak[0] = max(peak[0], in_flight[0])
        try:
            return real_read(url, start, end)
        finally:
            with lock:
                in_flight[0] -= end - start

    monkeypatch.setattr(fs, "read", counted)
    monkeypatch.setattr(configure(), "connections", 8)
    with RangeServer(str(tmp_path / "srv")) as server:
        url = f"{server.url}/w.data-00000-of-00001"
        lazy = LazyFile(fs, url, str(tmp_path / "w"), str(tmp_path / "w.json"), SIZE)
        lazy.ensure_many([(0, SIZE)])
    assert (tmp_path / "w").read_bytes() == data.tobytes()
    assert server.bytes_served == SIZE
    assert 0 < peak[0] <= IN_FLIGHT, f"{peak[0] >> 20} MiB in flight"
    assert return_freed_buffers()  # glibc's fixed mmap threshold is set (Linux)
