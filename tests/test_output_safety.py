"""Output folders never cost the user a file: what --overwrite may replace, the per-destination lock,
leftovers of killed runs, a full disk, a SIGKILL mid-write, and file permissions (issue 12)."""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import resource
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from ckptkit.cli import main

REPO = Path(__file__).resolve().parent.parent
TINY_BERT = REPO / "examples" / "tiny-bert"
PREFIX = "model.ckpt-20000"


@pytest.fixture
def src(tmp_path: Path) -> Path:
    """A private copy of the tiny TF BERT checkpoint (bert_config.json and vocab.txt beside it)."""
    return Path(shutil.copytree(TINY_BERT, tmp_path / "src"))


def run_cli(capsys, *args: str) -> tuple[int, str]:
    """Run ``ckptkit ARGS`` in this process; returns (exit status, stderr)."""
    capsys.readouterr()
    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    return code, capsys.readouterr().err


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (hidden ones too) -> sha256 of its bytes."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and not p.is_symlink()}


def leftovers(parent: Path, name: str) -> list[str]:
    """Temporary folders, ``.old`` folders and lock files of destination ``name`` in ``parent``."""
    return sorted(n for n in os.listdir(parent) if n.startswith(f".{name}.tmp-") or n == f".{name}.lock")


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ckptkit: error: "), err
    return lines[0]


def dead_pid() -> int:
    """The id of a process that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


# ------------------------------------------------------------------ item 1: what --overwrite may replace


def test_overwrite_never_touches_the_source(src, tmp_path, capsys):
    before = snapshot(src)
    cases = [
        ((src, src), "is the source"),                         # convert X X
        ((src / PREFIX, src), "contains the source"),          # a prefix source, its own folder as output
        ((src, tmp_path), "contains the source"),              # the parent of the source
        ((src / PREFIX, tmp_path), "contains the source"),
    ]
    for (source, destination), why in cases:
        code, err = run_cli(capsys, "convert", source, destination, "--overwrite")
        line = one_error_line(err)
        assert code == 2 and why in line and str(destination) in line, (source, destination, err)
        assert snapshot(src) == before
    code, err = run_cli(capsys, "distill", "init", src, src, "--num-layers", "1", "--overwrite")  # a student too
    assert code == 2 and "is the source" in one_error_line(err) and snapshot(src) == before
    # a folder inside a source folder: a previous output there is part of the source's folder too
    code, _ = run_cli(capsys, "convert", src, src / "hf", "-q")
    assert code == 0
    code, err = run_cli(capsys, "convert", src, src / "hf", "--overwrite")
    assert code == 2 and "inside the source folder" in one_error_line(err)
    # a symlink to the source is the source
    link = tmp_path / "link"
    link.symlink_to(src, target_is_directory=True)
    code, err = run_cli(capsys, "convert", src, link, "--overwrite")
    assert code == 2 and "is the source" in one_error_line(err)
    assert link.is_symlink() and {k: v for k, v in snapshot(src).items() if not k.startswith("hf")} == before


def test_overwrite_replaces_only_ckptkits_own_outputs(src, tmp_path, capsys):
    foreign = tmp_path / "project"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    code, err = run_cli(capsys, "convert", src, foreign, "--overwrite")
    line = one_error_line(err)
    assert code == 2 and str(foreign) in line and "not written by ckptkit" in line
    assert (foreign / "notes.txt").read_text() == "mine" and leftovers(tmp_path, "project") == []

    # without --overwrite a non-empty folder is refused; an empty one is used
    hf, empty = tmp_path / "hf", tmp_path / "empty"
    empty.mkdir()
    assert run_cli(capsys, "convert", src, empty, "-q")[0] == 0 and (empty / "ckptkit.json").is_file()
    assert run_cli(capsys, "convert", src, hf, "-q")[0] == 0
    code, err = run_cli(capsys, "convert", src, hf)
    assert code == 2 and "pass --overwrite" in one_error_line(err)

    # ckptkit's own outputs are replaced whole: a hub folder (ckptkit.json) and a TF folder (the marker)
    (hf / "stale.txt").write_text("from an older run")
    assert run_cli(capsys, "convert", src, hf, "--overwrite", "-q")[0] == 0
    assert not (hf / "stale.txt").exists() and (hf / "model.safetensors").is_file()
    tf = tmp_path / "tf"
    assert run_cli(capsys, "convert", hf, tf, "--to", "tf1", "-q")[0] == 0
    assert (tf / ".ckptkit-output").is_file() and not (tf / "ckptkit.json").exists()
    assert run_cli(capsys, "convert", hf, tf, "--to", "tf1", "--overwrite", "-q")[0] == 0
    assert leftovers(tmp_path, "tf") == [] and leftovers(tmp_path, "hf") == []


# ------------------------------------------------------------------ item 6: files and symlinks


@pytest.mark.parametrize("exchange", ["renameat2", "two renames"])
def test_overwrite_onto_a_file_or_symlink(src, tmp_path, capsys, monkeypatch, exchange):
    if exchange == "two renames":  # file systems without RENAME_EXCHANGE
        from ckptkit.output import staging

        monkeypatch.setattr(staging, "_exchange", lambda a, b: False)
    target = tmp_path / "model.txt"
    target.write_text("a user's file")
    code, err = run_cli(capsys, "convert", src, target, "--overwrite")
    assert code == 2 and "not a folder" in one_error_line(err)
    assert target.read_text() == "a user's file" and leftovers(tmp_path, "model.txt") == []

    # a symlink to a foreign folder: refused, the folder it points to untouched
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "data.txt").write_text("keep")
    link = tmp_path / "out"
    link.symlink_to(foreign, target_is_directory=True)
    code, err = run_cli(capsys, "convert", src, link, "--overwrite")
    assert code == 2 and "symlink" in one_error_line(err) and (foreign / "data.txt").read_text() == "keep"

    # a symlink to ckptkit's own output: the link is replaced, never the folder it points to
    previous = tmp_path / "previous"
    assert run_cli(capsys, "convert", src, previous, "-q")[0] == 0
    kept = snapshot(previous)
    link.unlink()
    link.symlink_to(previous, target_is_directory=True)
    assert run_cli(capsys, "convert", src, link, "--overwrite", "-q")[0] == 0
    assert not link.is_symlink() and (link / "model.safetensors").is_file()
    assert snapshot(previous) == kept
    assert run_cli(capsys, "convert", src, previous, "--overwrite", "-q")[0] == 0  # and a real folder
    assert leftovers(tmp_path, "out") == [] and leftovers(tmp_path, "previous") == []


# ------------------------------------------------------------------ item 2: a full disk


def test_full_disk_when_reserving_the_weights(src, tmp_path, capsys, monkeypatch):
    calls = []

    def full(fd, offset, length):
        calls.append(length)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "posix_fallocate", full)
    out = tmp_path / "out"
    code, err = run_cli(capsys, "convert", src, out)
    line = one_error_line(err)
    assert code == 2 and calls and "no space left on the device" in line and str(out) in line
    assert "model.safetensors" in line and "nothing was written" in line
    assert not out.exists() and leftovers(tmp_path, "out") == []


LIMITED = textwrap.dedent("""
    import resource, signal, sys
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[1]), resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
    from ckptkit.cli import main
    main(sys.argv[2:])
""")


@pytest.mark.parametrize("target", ["safetensors", "pytorch", "tf1"])
def test_full_disk_on_real_writes(src, tmp_path, capsys, target):
    """The kernel refuses writes past a file-size limit (EFBIG), as a full disk would (ENOSPC)."""
    source, extra = src, []
    if target == "tf1":
        source = tmp_path / "hf"
        assert run_cli(capsys, "convert", src, source, "-q")[0] == 0
        extra = ["--to", "tf1"]
    elif target == "pytorch":
        extra = ["--format", "pytorch"]
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-c", LIMITED, "40000", "convert", source, out, *extra],
                          capture_output=True, text=True, timeout=120)
    line = one_error_line(done.stderr)
    assert done.returncode == 2 and str(out) in line and "nothing was written" in line, done.stderr
    assert not out.exists() and leftovers(tmp_path, "out") == []


def test_full_disk_on_small_files_is_one_clean_error(tmp_path):
    """json and tokenizer files: an ordinary write() that fails is the same one-line error."""
    from ckptkit.output.atomic import OutOfSpaceError
    from ckptkit.output.record import write_record
    from ckptkit.output.staging import staged_folder
    from ckptkit.tokenizers.export import write_tokenizer_files

    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    record = {"kind": "conversion", "command": "ckptkit convert a b", "source": {"path": "a", "format": "tf",
              "family": "bert"}, "model": {"family": "bert", "model_class": "BertModel"}}
    writers = {"tokenizer": lambda folder: write_tokenizer_files(folder, kind="bert",
                                                                 vocab_file=TINY_BERT / "vocab.txt"),
               "record": lambda folder: write_record(folder, record)}
    try:
        for name, write in writers.items():
            out = tmp_path / name
            with pytest.raises(OutOfSpaceError) as caught:
                resource.setrlimit(resource.RLIMIT_FSIZE, (200, hard))
                try:
                    with staged_folder(out) as folder:
                        write(folder)
                finally:
                    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
            assert str(caught.value).startswith(f"{out}: file too large") and "nothing was written" in str(caught.value)
            assert not out.exists() and leftovers(tmp_path, name) == []
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)


# ------------------------------------------------------------------ items 4 and 5: leftovers and the lock


def test_leftovers_of_dead_runs_are_removed(src, tmp_path, capsys):
    dead = dead_pid()
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        names = {f".out.tmp-{dead}": False, f".out.tmp-{dead}.old": False, f".out.tmp-{alive.pid}": True,
                 f".other.tmp-{dead}": True}
        for name in names:
            (tmp_path / name).mkdir()
            (tmp_path / name / "model.safetensors").write_bytes(b"partial")
        assert run_cli(capsys, "convert", src, tmp_path / "out", "-q")[0] == 0
        for name, kept in names.items():
            assert (tmp_path / name).exists() == kept, name
    finally:
        alive.kill()
        alive.wait()


def test_second_writer_of_a_destination_fails_at_once(src, tmp_path, capsys):
    out = tmp_path / "out"
    with open(tmp_path / ".out.lock", "w") as held:  # another run holding the destination
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        started = time.perf_counter()
        code, err = run_cli(capsys, "convert", src, out)
        line = one_error_line(err)
        assert code == 2 and "another ckptkit run is writing" in line and str(out) in line
        assert time.perf_counter() - started < 10 and not out.exists()
    assert run_cli(capsys, "convert", src, out, "-q")[0] == 0
    assert leftovers(tmp_path, "out") == []  # the lock file goes with the run


def test_concurrent_converts_one_wins(src, tmp_path):
    """Two processes into one new destination: exactly one succeeds, the other says why."""
    out = tmp_path / "out"
    release = tmp_path / "release"
    # the first run holds the lock until the second has finished, however slowly the second starts
    paused = PAUSE_IN_WRITE.replace(
        "time.sleep(60)", f"deadline = time.monotonic() + 60\n"
                          f"        while not os.path.exists({str(release)!r}) and time.monotonic() < deadline:\n"
                          f"            time.sleep(0.02)")
    first = subprocess.Popen([sys.executable, "-c", paused, "convert", src, out, "-q"],
                             env={**os.environ, "READY": str(tmp_path / "ready")}, stderr=subprocess.PIPE, text=True)
    _wait_for(tmp_path / "ready", first)
    second = subprocess.run([sys.executable, "-m", "ckptkit", "convert", src, out, "-q"], capture_output=True,
                            text=True, timeout=60)
    release.touch()
    assert first.wait(timeout=60) == 0, first.stderr.read()
    assert second.returncode == 2 and "another ckptkit run is writing" in one_error_line(second.stderr)
    assert (out / "model.safetensors").is_file() and leftovers(tmp_path, "out") == []


# ------------------------------------------------------------------ crash test: SIGKILL mid-write

PAUSE_IN_WRITE = textwrap.dedent("""
    import os, sys, time
    from ckptkit.converters.formats import safetensors_io
    original = safetensors_io.SafetensorsWriter.write
    def write_then_pause(self, name, array):
        original(self, name, array)
        if not os.path.exists(os.environ["READY"]):
            open(os.environ["READY"], "w").close()
            time.sleep(60)
    safetensors_io.SafetensorsWriter.write = write_then_pause
    from ckptkit.cli import main
    main(sys.argv[1:])
""")


def _wait_for(path: Path, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while not path.exists():
        assert process.poll() is None, process.stderr.read() if process.stderr else process.returncode
        assert time.monotonic() < deadline, "the writer never started"
        time.sleep(0.02)


def _kill_mid_write(src: Path, out: Path, *extra: str) -> None:
    ready = out.parent / f"{out.name}.ready"
    process = subprocess.Popen([sys.executable, "-c", PAUSE_IN_WRITE, "convert", src, out, *extra],
                               env={**os.environ, "READY": str(ready)}, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(ready, process)
        staging = out.parent / f".{out.name}.tmp-{process.pid}"
        assert any(n.startswith("model.safetensors.tmp-") for n in os.listdir(staging))  # mid-write
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
        process.stderr.close()
    ready.unlink()


def test_sigkill_mid_write_leaves_the_destination_untouched(src, tmp_path, capsys):
    new = tmp_path / "new"
    _kill_mid_write(src, new)
    assert not new.exists()

    previous = tmp_path / "previous"
    assert run_cli(capsys, "convert", src, previous, "-q")[0] == 0
    before = snapshot(previous)
    _kill_mid_write(src, previous, "--overwrite")
    assert snapshot(previous) == before

    for out, extra in ((new, ()), (previous, ("--overwrite",))):
        assert run_cli(capsys, "convert", src, out, "-q", *extra)[0] == 0
        assert leftovers(tmp_path, out.name) == []
        assert (out / "model.safetensors").is_file()


# ------------------------------------------------------------------ item 11: unexpected errors


def test_unexpected_error_removes_the_staged_output(src, tmp_path, monkeypatch):
    from ckptkit.converters import sinks
    from ckptkit.converters.convert import convert_checkpoint

    def broken(self, planned, array):
        raise RuntimeError("injected")

    monkeypatch.setattr(sinks.SafetensorsSink, "write", broken)
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="injected"):
        convert_checkpoint(str(src), str(out))
    assert not out.exists() and leftovers(tmp_path, "out") == []
    assert sorted(os.listdir(tmp_path)) == ["src"]


# ------------------------------------------------------------------ item 16: permissions


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_every_output_file_follows_the_umask(src, tmp_path, capsys, umask):
    old = os.umask(umask)
    try:
        hf, tf = tmp_path / "hf", tmp_path / "tf"
        assert run_cli(capsys, "convert", src, hf, "-q")[0] == 0
        assert run_cli(capsys, "convert", hf, tf, "--to", "tf1", "-q")[0] == 0
        assert run_cli(capsys, "card", hf, "--license", "mit")[0] == 0  # rewrites README.md and ckptkit.json
        assert run_cli(capsys, "distill", "init", src, tmp_path / "student", "--num-layers", "1", "-q")[0] == 0
    finally:
        os.umask(old)
    modes = {str(p.relative_to(tmp_path)): stat.S_IMODE(p.stat().st_mode)
             for folder in (hf, tf, tmp_path / "student") for p in folder.rglob("*")}
    assert {"hf/README.md", "hf/ckptkit.json", "hf/tokenizer.json", "tf/model.ckpt.index",
            "student/student.json", "student/README.md"} <= set(modes)
    assert {name: mode for name, mode in modes.items() if mode != 0o666 & ~umask} == {}
    assert stat.S_IMODE(hf.stat().st_mode) == 0o777 & ~umask
