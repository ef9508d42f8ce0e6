"""`ckptkit distill cache` and `distill train --teacher-cache`: text/JSON output, reuse, streaming resume, errors."""

from __future__ import annotations

import json
import re
import shutil

import pytest
import torch
from safetensors.torch import load_file

from ckptkit.cli import main
from distill_helpers import distill_world  # noqa: F401  (fixture)

pytestmark = pytest.mark.xdist_group("distill")


def cache_cli(world, out, *extra):
    main(["distill", "cache", str(world["teacher"]), str(world["train"]), "--out", str(out), "--max-seq-length", "32",
          "--piece-mb", "0.01", "--seed", "0", *extra])


def train_cli(world, out, cache, *extra, steps=8):
    main(["distill", "train", "--student", str(world["student"]), "--train-file", str(world["train"]),
          "--teacher-cache", str(cache), "--output-dir", str(out), "--max-seq-length", "32", "--max-steps",
          str(steps), "--per-device-train-batch-size", "8", "--learning-rate", "1e-3", "--logging-steps", "4",
          "--save-steps", "4", "--use-cpu", "--seed", "0", "-q", *extra])


def exit_code(call) -> int:
    with pytest.raises(SystemExit) as exited:
        call()
    return exited.value.code


@pytest.fixture(scope="module")
def built(distill_world, tmp_path_factory):
    """A cache of the distill world's corpus, built once by the command (its text output kept)."""
    out = tmp_path_factory.mktemp("cache") / "teacher-cache"
    import contextlib
    import io

    text = io.StringIO()
    with contextlib.redirect_stdout(text):
        cache_cli(distill_world, out)
    return out, text.getvalue()


def test_text_output_says_size_bytes_per_token_and_break_even(built):
    out, text = built
    lines = text.strip().splitlines()
    assert len(lines) == 3
    assert re.fullmatch(rf"teacher cache {re.escape(str(out))}: [\d,]+ blocks, [\d,]+ tokens in (\d+) pieces "
                        r"\(\1 built now, 0 reused\)", lines[0]), lines[0]
    # the distill world's teacher: hidden 64, vocabulary < 65536 -> top-64 (f16 + u16), f16 rest, f16 hidden
    per_token = 64 * (2 + 2) + 2 + 64 * 2
    match = re.fullmatch(r"stored per token: top-64 log-probs \+ rest \(T=2\), hidden states \[3\] in float16: "
                         r"([\d.]+) bytes/token, [\d.]+ MiB", lines[1])
    assert match and per_token <= float(match.group(1)) < per_token + 1, lines[1]
    assert re.fullmatch(r"build [\d.]+ s \(teacher forward [\d.]+ s\); reading an epoch [\d.]+ s: each epoch saves "
                        r"-?[\d.]+ s, (pays for itself after [\d.]+ epochs|does not pay .*)", lines[2]), lines[2]


def test_json_output_and_reuse(distill_world, built, capsys):
    out, _ = built
    cache_cli(distill_world, out, "--json")
    report = json.loads(capsys.readouterr().out)
    assert report["pieces_built"] == 0 and report["pieces_reused"] == report["pieces"] > 1
    assert report["complete"] and report["top_k"] == 64 and report["hidden_states"] == [3]
    assert report["tokens"] * report["bytes_per_token"] == pytest.approx(report["bytes"], rel=1e-3)
    assert report["build_s"] >= report["teacher_forward_s"] > 0
    saved = report["teacher_forward_s"] - report["read_s_per_epoch"]
    assert report["saved_s_per_epoch"] == pytest.approx(saved, abs=2e-3)
    if saved > 0:
        assert report["break_even_epochs"] == pytest.approx(report["build_s"] / saved, rel=1e-2)


def test_train_reads_the_cache_and_resumes_the_stream_exactly(distill_world, built, tmp_path, capsys):
    cache, _ = built
    out = tmp_path / "run"
    train_cli(distill_world, out, cache, "--json")
    report = json.loads(capsys.readouterr().out)
    summary = report["teacher_cache"]
    assert summary["built_now"] is False and summary["bytes_per_token"] > 300
    assert summary["teacher_forward_avoided_s"] > 0
    assert (out / "checkpoint-4" / "stream_position-rank0.json").is_file()
    finished = load_file(out / "model.safetensors")
    shutil.rmtree(out / "checkpoint-8")
    (out / "model.safetensors").unlink()
    train_cli(distill_world, out, cache, "--resume")
    resumed = load_file(out / "model.safetensors")
    for name, tensor in finished.items():
        torch.testing.assert_close(resumed[name], tensor, rtol=1e-5, atol=1e-6, msg=name)


def test_errors_are_one_line(distill_world, built, tmp_path, capsys):
    cache, _ = built
    assert exit_code(lambda: main(["distill", "cache", str(distill_world["teacher"]), str(tmp_path / "nope.txt"),
                                   "--out", str(tmp_path / "c1")])) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"ckptkit: error: {tmp_path / 'nope.txt'}: training data not found (check the path)"
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 not really parquet PAR1")
    assert exit_code(lambda: main(["distill", "cache", str(distill_world["teacher"]), str(tmp_path / "bad.parquet"),
                                   "--out", str(tmp_path / "c2")])) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"ckptkit: error: {tmp_path / 'bad.parquet'}: not a readable parquet file")
    assert "\n" not in err and not (tmp_path / "c1").exists() and not (tmp_path / "c2").exists()
    # the same --out with other settings is refused by the command and by training
    assert exit_code(lambda: cache_cli(distill_world, cache, "--max-seq-length", "24")) == 2
    err = capsys.readouterr().err.strip()
    assert re.fullmatch(r"ckptkit: error: \S+: teacher cache was built for other settings \(max_seq_length: 32 in "
                        r"the cache, 24 now\) \(.*--overwrite.*\)", err), err
    assert exit_code(lambda: train_cli(distill_world, tmp_path / "run", cache, "--seed", "1")) == 2
    err = capsys.readouterr().err.strip()
    assert "teacher cache was built for other settings (seed: 0 in the cache, 1 now)" in err and "\n" not in err


def test_streaming_training_reads_jsonl_and_parquet_folders(distill_world, tmp_path, capsys):
    import pyarrow as pa
    import pyarrow.parquet as pq

    lines = distill_world["train"].read_text().splitlines()[:400]
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.jsonl").write_text("".join(json.dumps({"body": line}) + "\n" for line in lines[:200]))
    pq.write_table(pa.table({"body": lines[200:]}), data / "b.parquet", row_group_size=50)
    base = ["distill", "train", "--student", str(distill_world["student"]), "--train-file", str(data),
            "--streaming", "--text-column", "body", "--max-seq-length", "32", "--per-device-train-batch-size", "8",
            "--use-cpu", "-q"]
    main([*base, "--output-dir", str(tmp_path / "run"), "--max-steps", "3", "--logging-steps", "1", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert report["steps"] == 3 and report["losses"]["ce"]["last"] > 0
    assert exit_code(lambda: main([*base, "--output-dir", str(tmp_path / "run2"), "--num-train-epochs", "1"])) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("ckptkit: error: streamed training data (--streaming, --teacher-cache, --cache-teacher) has no "
                   "length (pass --max-steps; the stream starts a new epoch whenever it ends)")


def test_progress_bar_on_a_terminal_and_none_with_quiet(distill_world, tmp_path, capsys, monkeypatch):
    import sys

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    cache_cli(distill_world, tmp_path / "c1")
    bar = capsys.readouterr().err
    assert "teacher cache:" in bar and "piece/s]" in bar
    cache_cli(distill_world, tmp_path / "c2", "--quiet")
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""


def test_whole_word_masking_is_part_of_the_key(distill_world, tmp_path):
    from ckptkit.distill.streaming import StreamingCorpus
    from ckptkit.distill.teacher_cache import TeacherCache
    from ckptkit.distill.teacher_cache_build import cache_key
    from ckptkit.distill.teacher_cache_run import masking_collator
    from ckptkit.errors import UsageError
    from distill_helpers import make_tokenizer

    cache = tmp_path / "wwm-cache"
    cache_cli(distill_world, cache, "--whole-word-mask", "-q")
    tok = make_tokenizer()
    corpus = StreamingCorpus([distill_world["train"]], tok, max_seq_length=32, piece_bytes=int(0.01 * (1 << 20)))

    def key(whole_words):
        collator = masking_collator(tok, mlm_probability=0.15, mask_weights=None, seed=0, whole_word_mask=whole_words)
        return cache_key(teacher_dir=distill_world["teacher"], corpus=corpus, collator=collator, top_k=64,
                         temperature=2.0)
    TeacherCache.open(cache, key=key(True))   # what train --whole-word-mask makes: accepted
    with pytest.raises(UsageError, match=r"built with whole-word masking \(--whole-word-mask\) and this run masks "
                                         r"single tokens \(pass --whole-word-mask to use this cache"):
        TeacherCache.open(cache, key=key(False))
