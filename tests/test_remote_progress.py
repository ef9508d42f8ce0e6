"""The byte progress bar of a remote convert, seen on a real terminal: the CLI runs with its output on a
pseudo-terminal (120 columns) while the range server sends ~4 MB at 8 MB/s. The bar names the file and
shows the bytes fetched of the total, the rate and the time left. The conversion runs while the bytes
stream in, under that bar; its own bar shows only for what is left once every byte arrived (never two
stacked bars), and both are cleared before the summary; ``--quiet`` shows no bar at all."""

from __future__ import annotations

import fcntl
import json
import os
import re
import select
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from ckptkit.converters.formats.tf1.writer import write_tf_checkpoint
from support.bert import bert_tf_config, bert_tf_variables, tiny_wordpiece_vocab, with_adam_slots
from support.range_server import RangeServer

REPO = Path(__file__).resolve().parent.parent
CFG = dict(vocab_size=8000, hidden=128, layers=1, heads=2, intermediate=256, max_positions=64)
DATA = "model.ckpt-1000.data-00000-of-00001"
# "fetching FILE:  40%|████      | 1.00M/3.95M [00:00<00:00, 7.61MB/s]" (sizes in bytes, 1024-based)
FRAME = re.compile(r"fetching (?P<file>\S+):\s+(?P<pct>\d+)%\|[^|]*\| (?P<n>[\d.]+)(?P<nu>[kMG]?)/(?P<total>[\d.]+)"
                   r"(?P<tu>[kMG]?) \[(?P<elapsed>\d\d:\d\d)<(?P<eta>\d\d:\d\d|\?), (?P<rate>[\d.]+[kMG]?B/s|\?B/s)\]")
UNITS = {"": 1, "k": 1024, "M": 1024 ** 2, "G": 1024 ** 3}


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("progress")
    (root / "bert").mkdir()
    write_tf_checkpoint(str(root / "bert" / "model.ckpt-1000"), with_adam_slots(bert_tf_variables(**CFG)))
    (root / "bert" / "bert_config.json").write_text(json.dumps(bert_tf_config(**CFG)))
    (root / "bert" / "vocab.txt").write_text("\n".join(tiny_wordpiece_vocab(CFG["vocab_size"])) + "\n")
    return root


def _on_a_terminal(argv: list[str]) -> tuple[int, str]:
    """(exit status, everything written to the terminal) of ``ckptkit ARGV`` with stdout and stderr on a pty."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))  # a real terminal has a size
    proc = subprocess.Popen([sys.executable, "-m", "ckptkit", *argv], stdin=slave, stdout=slave, stderr=slave,
                            cwd=REPO)
    os.close(slave)
    chunks = []
    while True:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                data = os.read(master, 1 << 16)
            except OSError:  # the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    os.close(master)
    return proc.wait(timeout=60), b"".join(chunks).decode("utf-8", "replace")


def test_byte_progress_bar_on_a_terminal(served, tmp_path):
    kept = os.path.getsize(served / "bert" / DATA) / 3  # the weights without their two Adam slots
    with RangeServer(str(served), rate=8e6) as server:
        url = f"{server.url}/bert/model.ckpt-1000"
        code, screen = _on_a_terminal(["convert", url, str(tmp_path / "out"), "--cache-dir", str(tmp_path / "c"),
                                       "--connections", "1"])
        assert code == 0, screen[-3000:]
        frames = [m.groupdict() for m in FRAME.finditer(screen)]
        assert frames, screen[:3000]
        assert {f["file"] for f in frames} == {DATA}
        total = float(frames[-1]["total"]) * UNITS[frames[-1]["tu"]]
        assert abs(total - kept) < 0.02 * kept  # the bar counts the kept tensors' bytes, not the file's
        moving = [f for f in frames if 0 < int(f["pct"]) < 100]
        assert moving and all(f["rate"] != "?B/s" and f["eta"] != "?" for f in moving), frames
        assert "\x1b[A" not in screen  # one bar at a time: none stacked
        last_fetching = screen.rindex("fetching")  # converting overlaps fetching: the byte bar is the one shown
        assert "converting" not in screen[:last_fetching] and last_fetching < screen.index("converted tf -> ")
        assert re.search(r"\r +\rconverted tf -> ", screen)  # the summary starts on a cleared line

        quiet_code, quiet = _on_a_terminal(["convert", url, str(tmp_path / "quiet"), "--quiet", "--cache-dir",
                                            str(tmp_path / "c2"), "--connections", "1"])
    assert quiet_code == 0 and quiet == "", quiet[-2000:]
    assert (tmp_path / "quiet" / "model.safetensors").read_bytes() == (tmp_path / "out" / "model.safetensors").read_bytes()
