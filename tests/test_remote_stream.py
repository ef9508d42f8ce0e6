"""A remote convert streams: the kept ranges are fetched in the order the conversion reads them, at most a
window of bytes ahead of it, and the fetched bytes go straight to the tensor being converted. So the
first tensors are converted before the last ranges arrive, no tensor is read back from the cache file on
a cold run, the bytes fetched ahead stay under the window, and the output is the local conversion's."""

from __future__ import annotations

import json
import os
import threading

import pytest

import ckptkit.converters.memory as memory
import ckptkit.converters.plan as plan
from ckptkit.converters.formats.tf1.writer import write_tf_checkpoint
from ckptkit.remote import stream
from ckptkit.remote.filesystem import RemoteFS
from ckptkit.remote.lazy_file import LazyFile
from support.bert import bert_tf_config, bert_tf_variables, tiny_wordpiece_vocab, with_adam_slots
from support.cli import run_cli
from support.range_server import RangeServer

CFG = dict(vocab_size=500, hidden=64, layers=4, heads=2, intermediate=256, max_positions=64)
LARGEST = 500 * 64 * 4  # bytes of the largest tensor (the word embeddings) of the ~0.9 MB kept
WINDOW = 64 << 10  # far below the kept bytes: the fetch may not simply run ahead of them all


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("stream")
    (root / "bert").mkdir()
    write_tf_checkpoint(str(root / "bert" / "model.ckpt-1000"), with_adam_slots(bert_tf_variables(**CFG)))
    (root / "bert" / "bert_config.json").write_text(json.dumps(bert_tf_config(**CFG)))
    (root / "bert" / "vocab.txt").write_text("\n".join(tiny_wordpiece_vocab(CFG["vocab_size"])) + "\n")
    from ckptkit.cli import main

    local = root.parent / (root.name + "-local")
    try:
        main(["convert", str(root / "bert" / "model.ckpt-1000"), str(local), "--quiet"])
    except SystemExit as done:
        assert done.code in (0, None)
    return root, local


def _instrument(monkeypatch, events: list, cache_reads: list) -> None:
    """Record each range fetched (with the bytes fetched so far) and each tensor converted (with the bytes
    converted so far), in the order they happen; and every positioned read of a cached weight file."""
    lock, totals = threading.Lock(), {"fetched": 0, "converted": 0}
    real_read, real_view, real_materialize = RemoteFS.read, plan.planned_view, plan.materialize
    real_read_into = memory._read_into

    def read(self, url, start, end):
        data = real_read(self, url, start, end)
        if ".data-" in url:
            with lock:
                totals["fetched"] += len(data)
                events.append(("fetched", totals["fetched"], totals["converted"]))
        return data

    def converted(real):
        def wrapper(planned, arrays, *rest, **kw):
            with lock:
                totals["converted"] += sum(a.nbytes for a in arrays)
                events.append(("converted", totals["fetched"], totals["converted"]))
            return real(planned, arrays, *rest, **kw)
        return wrapper

    def read_into(fd, view, offset):
        path = os.readlink(f"/proc/self/fd/{fd}")
        if ".data-" in path:
            cache_reads.append((path, offset, len(view)))
        return real_read_into(fd, view, offset)

    monkeypatch.setattr(RemoteFS, "read", read)
    monkeypatch.setattr(plan, "planned_view", converted(real_view))
    monkeypatch.setattr(plan, "materialize", converted(real_materialize))
    monkeypatch.setattr(memory, "_read_into", read_into)
    monkeypatch.setattr(stream, "WINDOW", WINDOW)


def test_converting_overlaps_fetching_and_reads_nothing_back(served, tmp_path, capsys, monkeypatch):
    root, local = served
    events, cache_reads = [], []
    _instrument(monkeypatch, events, cache_reads)
    with RangeServer(str(root)) as server:
        url = f"{server.url}/bert/model.ckpt-1000"
        code, out, err = run_cli(["convert", url, tmp_path / "out", "--cache-dir", tmp_path / "cache", "--json",
                                  "--quiet", "--connections", "4"], capsys)
    assert code == 0, err
    assert (tmp_path / "out" / "model.safetensors").read_bytes() == (local / "model.safetensors").read_bytes()
    kinds = [kind for kind, _, _ in events]
    assert kinds.count("fetched") >= 2 and "converted" in kinds
    last_fetch = len(kinds) - 1 - kinds[::-1].index("fetched")
    assert kinds.index("converted") < last_fetch, "every range was fetched before the first tensor was converted"
    assert not cache_reads, f"{len(cache_reads)} reads of the cached weight file on a cold run"
    ahead = max(fetched - converted for _, fetched, converted in events)  # the window, the tensor being read
    assert ahead <= WINDOW + 2 * LARGEST, f"fetched {ahead} bytes ahead of the conversion"
    report = json.loads(out)["remote"]
    assert report["bytes_transferred"] < os.path.getsize(root / "bert" / "model.ckpt-1000.data-00000-of-00001") / 2


def test_a_warm_run_reads_the_cache_and_fetches_no_weight_bytes(served, tmp_path, capsys, monkeypatch):
    root, local = served
    with RangeServer(str(root)) as server:
        url = f"{server.url}/bert/model.ckpt-1000"
        argv = ["--cache-dir", tmp_path / "cache", "--json", "--quiet"]
        assert run_cli(["convert", url, tmp_path / "cold", *argv], capsys)[0] == 0
        events, cache_reads = [], []
        _instrument(monkeypatch, events, cache_reads)
        code, out, err = run_cli(["convert", url, tmp_path / "warm", *argv], capsys)
    assert code == 0, err
    assert not [e for e in events if e[0] == "fetched"] and cache_reads  # every tensor read from the cache
    assert (tmp_path / "warm" / "model.safetensors").read_bytes() == (local / "model.safetensors").read_bytes()


def test_a_tensor_bigger_than_the_window_and_reads_out_of_order(tmp_path, monkeypatch):
    """The window bounds the bytes held, not the tensor size: a 3 MiB tensor streams through a 256 KiB
    window chunk by chunk; a tensor read out of the planned order still gets its own bytes; a range the
    server refuses surfaces in the reader as the one-line error."""
    import numpy as np

    from ckptkit.errors import RemoteError
    from ckptkit.remote import configure, filesystem, lazy_file
    from ckptkit.remote.stream import FetchStream

    monkeypatch.setattr(lazy_file, "MIN_CHUNK", 64 << 10)
    monkeypatch.setattr(filesystem, "BACKOFF_S", 0.001)
    data = np.random.default_rng(1).integers(0, 256, 4 << 20, dtype=np.uint8)
    (tmp_path / "srv").mkdir()
    (tmp_path / "srv" / "w.safetensors").write_bytes(data.tobytes())
    extents = [(1 << 20, 3 << 20), (0, 300_000), (400_000, 5000), (300_000, 100_000)]  # reading order
    with RangeServer(str(tmp_path / "srv")) as server:
        url = f"{server.url}/w.safetensors"
        lazy = LazyFile(RemoteFS("http"), url, str(tmp_path / "w"), str(tmp_path / "w.json"), data.size)
        held, box = [], []  # bytes held or in flight, each time a range is asked for
        real_fetch = lazy.fetch
        monkeypatch.setattr(lazy, "fetch", lambda s, e: (held.append(box[0].outstanding if box else 0),
                                                         real_fetch(s, e))[1])
        fetching = FetchStream(lazy, extents, connections=4, window=256 << 10)
        box.append(fetching)
        try:
            for offset, nbytes in [extents[0], extents[2], extents[1], extents[3]]:  # the 3rd before the 2nd
                assert fetching.take(offset, nbytes).tobytes() == data[offset:offset + nbytes].tobytes()
        finally:
            fetching.close()
        assert max(held) <= 256 << 10 and fetching.read_back <= 300_000  # only the skipped-over tensor
        server.faults.status[r"\.safetensors"] = 403
        other = LazyFile(RemoteFS("http"), url, str(tmp_path / "v"), str(tmp_path / "v.json"), data.size)
        failing = FetchStream(other, [(0, 1000)], connections=configure().connections)
        try:
            with pytest.raises(RemoteError, match="403"):
                failing.take(0, 1000)
        finally:
            failing.close()
