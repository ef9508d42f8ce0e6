"""`distill train --whole-word-mask --teacher-cache DIR` with a cache built by `distill cache --whole-word-mask`:
the cache is read (no teacher forward), and the cached loss equals the loss of the live teacher run on the very
batch (whole-word masks included) that training used, for WordPiece `##` and real KoBERT SentencePiece `▁`
vocabularies; a cache built with the other masking scheme or other settings is refused in one line."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch

import ckptkit.distill.models as models_mod
import ckptkit.distill.trainer as trainer_mod
from ckptkit.cli import main
from distill_helpers import make_student, tiny_config

pytestmark = pytest.mark.xdist_group("distill_whole_word_cache")

TOP_K, TEMPERATURE, SEQ = 16, 2.0, 32
STEMS = ["play", "walk", "jump", "talk", "cook", "paint", "clean", "visit"]
SUFFIXES = ["##ing", "##ed", "##s", "##er"]
WORDS = ["the", "a", "cat", "dog", "big", "small", "house", "park", "near", ".", "un", "##happy", "##believ",
         "##able"]
KOREAN = ["한국어", "자연어처리는", "재미있습니다", "오늘", "날씨가", "정말", "좋습니다", "우리는", "공원에서",
          "산책했습니다", "모델을", "공유합니다", "학생들이", "도서관에서", "공부합니다", "친구와", "함께", "점심을"]


def _wordpiece_teacher(folder: Path) -> tuple[Path, str]:
    from transformers import BertTokenizer

    folder.mkdir(parents=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *STEMS, *SUFFIXES, *WORDS]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    BertTokenizer(str(folder / "vocab.txt")).save_pretrained(folder)
    rng = random.Random(0)
    text = [" ".join(rng.choice(["the", "a"]) + " " + rng.choice(["cat", "dog", "big", "small"]) + " "
                     + rng.choice(STEMS) + rng.choice(["", "ing", "ed", "s", "er"]) + " "
                     + rng.choice(["near", "unhappy", "unbelievable", "park", "house"]) + " ."
                     for _ in range(rng.randint(1, 3))) for _ in range(160)]
    return folder, "\n".join(text) + "\n"


def _kobert_teacher(folder: Path, kobert_dir: Path) -> tuple[Path, str]:
    from ckptkit.tokenizers import write_tokenizer_files

    spm = next(p for p in kobert_dir.iterdir() if p.suffix == ".model")
    write_tokenizer_files(folder, kind="kobert", vocab_file=kobert_dir / "vocab.txt", spm_file=spm)
    rng = random.Random(1)
    text = [" ".join(rng.choice(KOREAN) for _ in range(rng.randint(4, 12))) for _ in range(120)]
    return folder, "\n".join(text) + "\n"


@pytest.fixture(scope="module", params=["wordpiece", "kobert"])
def world(request, tmp_path_factory) -> dict:
    """A random 2-layer teacher with a WordPiece (`##`) or the real KoBERT tokenizer, a 1-layer student, a corpus
    and a cache of it built by `distill cache --whole-word-mask` (float16, top-16, T=2, last hidden state)."""
    from transformers import AutoTokenizer, BertForMaskedLM

    root = tmp_path_factory.mktemp(f"wwm_{request.param}")
    if request.param == "wordpiece":
        teacher, text = _wordpiece_teacher(root / "teacher")
    else:
        teacher, text = _kobert_teacher(root / "teacher", request.getfixturevalue("kobert_dir"))
    tokenizer = AutoTokenizer.from_pretrained(teacher)
    torch.manual_seed(0)
    config = tiny_config(len(tokenizer), layers=2, hidden=32)
    config.pad_token_id, config.initializer_range = tokenizer.pad_token_id, 0.5   # sharp, far from uniform outputs
    BertForMaskedLM(config).eval().save_pretrained(teacher)
    (root / "corpus.txt").write_text(text, encoding="utf-8")
    world = {"root": root, "teacher": teacher, "train": root / "corpus.txt", "tokenizer": tokenizer,
             "student": make_student(teacher, root / "student", [0]), "scheme": request.param}
    world["cache"] = cache_cli(world, root / "wwm-cache", "--whole-word-mask")
    return world


def cache_cli(world, out: Path, *extra, piece_mb: str | None = "0.002", quiet: bool = True) -> Path:
    """`distill cache` in blocks of 16, as `distill train --per-device-train-batch-size 8` builds a cache."""
    main(["distill", "cache", str(world["teacher"]), str(world["train"]), "--out", str(out), "--max-seq-length",
          str(SEQ), "--top-k", str(TOP_K), "--seed", "0", "--device", "cpu", "--batch-size", "16",
          *(["-q"] if quiet else []), *(["--piece-mb", piece_mb] if piece_mb else []), *extra])
    return out


def train_cli(world, out: Path, cache: Path, *extra, steps: int = 2) -> None:
    main(["distill", "train", "--student", str(world["student"]), "--train-file", str(world["train"]),
          "--teacher-cache", str(cache), "--output-dir", str(out), "--max-seq-length", str(SEQ), "--max-steps",
          str(steps), "--per-device-train-batch-size", "8", "--logging-steps", "1", "--save-steps", "100",
          "--use-cpu", "--seed", "0", *extra])


def exit_code(call) -> int:
    with pytest.raises(SystemExit) as exited:
        call()
    return exited.value.code


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------------------------------ reference
def numpy_bucketed_kl(teacher_logits: np.ndarray, student_logits: np.ndarray, k: int, temperature: float) -> float:
    """KL(teacher || student) over the teacher's top-k tokens + one bucket for the rest, times T^2, mean over rows;
    float64, from softmaxes written out here (what a cache with top-k and a rest bucket defines)."""
    def softmax(x):
        x = x.astype(np.float64) / temperature
        e = np.exp(x - x.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)
    p, q = softmax(teacher_logits), softmax(student_logits)
    top = np.argsort(-p, axis=-1)[:, :k]
    pk, qk = np.take_along_axis(p, top, -1), np.take_along_axis(q, top, -1)
    pb = np.concatenate([pk, 1 - pk.sum(-1, keepdims=True)], -1)
    qb = np.concatenate([qk, 1 - qk.sum(-1, keepdims=True)], -1)
    return float(np.where(pb > 0, pb * np.log(np.where(pb > 0, pb, 1) / qb), 0).sum(-1).mean() * temperature**2)


def record_training(monkeypatch) -> tuple[list[dict], list[int]]:
    """Each training step's batch (as the trainer got it), student logits and ce term; teacher forwards counted."""
    steps, forwards = [], [0]
    real_load, real_loss, real_terms = models_mod.load_model, trainer_mod.DistillationTrainer.compute_loss, \
        trainer_mod.compute_terms

    def load(path, *, role, **kw):
        model = real_load(path, role=role, **kw)
        if role == "teacher":
            model.register_forward_pre_hook(lambda *a: forwards.__setitem__(0, forwards[0] + 1))
        return model

    def compute_loss(self, model, inputs, *args, **kwargs):
        steps.append({name: value.detach().clone() for name, value in inputs.items()})
        return real_loss(self, model, inputs, *args, **kwargs)

    def compute_terms(step):
        terms = real_terms(step)
        steps[-1].update(student_logits=step.student.logits.detach().float().clone(), ce=float(terms["ce"].detach()),
                         ce_mask=step.ce_mask.clone(), cached=step.teacher)
        return terms

    monkeypatch.setattr(models_mod, "load_model", load)
    monkeypatch.setattr(trainer_mod.DistillationTrainer, "compute_loss", compute_loss)
    monkeypatch.setattr(trainer_mod, "compute_terms", compute_terms)
    return steps, forwards


def whole_words_masked(world, input_ids: torch.Tensor, labels: torch.Tensor) -> int:
    """Assert every word (a start piece and its continuations) is labelled whole or not at all; count the masked
    words of more than one piece. Word starts: WordPiece pieces without `##`, SentencePiece pieces with `▁`, and
    the piece after a special token (a packed block may start inside a word)."""
    tokenizer = world["tokenizer"]
    specials = set(tokenizer.all_special_tokens)
    continues = ((lambda p: p.startswith("##")) if world["scheme"] == "wordpiece"
                 else (lambda p: not p.startswith("\u2581") and p not in specials))
    multi = 0
    for ids, row_labels in zip(input_ids.tolist(), labels.tolist()):
        original = [label if label != -100 else i for i, label in zip(ids, row_labels)]
        pieces = tokenizer.convert_ids_to_tokens(original)
        words: list[list[int]] = []
        for k, piece in enumerate(pieces):
            if words and continues(piece) and pieces[k - 1] not in specials:   # a special token stands alone
                words[-1].append(k)
            else:
                words.append([k])
        for word in words:
            flags = {row_labels[k] != -100 for k in word}
            assert len(flags) == 1, [pieces[k] for k in word]
            multi += flags == {True} and len(word) > 1
    return multi


def live_ce(teacher, batch_ids: torch.Tensor, attention: torch.Tensor, step: dict) -> tuple[float, torch.Tensor]:
    """The soft-target term with the live teacher run on ``batch_ids``, on the positions training used, and the
    teacher's last hidden state (which the cosine term reads from the cache)."""
    with torch.no_grad():
        out = teacher(input_ids=batch_ids, attention_mask=attention, output_hidden_states=True)
    keep = step["ce_mask"].bool()
    kl = numpy_bucketed_kl(out.logits[keep].numpy(), step["student_logits"][keep].numpy(), TOP_K, TEMPERATURE)
    return kl, out.hidden_states[-1]


# ------------------------------------------------------------------------------------------ the tests
def test_whole_word_training_reads_the_whole_word_cache_with_its_masks(world, tmp_path, monkeypatch, capsys):
    from transformers import BertForMaskedLM

    from ckptkit.distill.teacher_cache_run import masking_collator

    capsys.readouterr()
    steps, forwards = record_training(monkeypatch)
    train_cli(world, tmp_path / "run", world["cache"], "--whole-word-mask", "--ce-on", "masked", "-q", "--json")
    report = json.loads(capsys.readouterr().out)
    assert report["steps"] == 2 and report["teacher_cache"]["built_now"] is False
    assert forwards[0] == 0 and len(steps) == 2        # every batch came from the cache
    teacher = BertForMaskedLM.from_pretrained(world["teacher"]).eval()
    plain = masking_collator(world["tokenizer"], mlm_probability=0.15, mask_weights=None, seed=0)
    for step in steps:
        assert whole_words_masked(world, step["input_ids"], step["labels"]) > 0
        # the live teacher on the batch training saw: the same loss as from the cache (float16 storage: ~1e-5 here)
        live, hidden = live_ce(teacher, step["input_ids"], step["attention_mask"], step)
        tolerance = 5e-4 * live + 1e-5
        assert abs(step["ce"] - live) < tolerance, (step["ce"], live)
        valid = step["attention_mask"].bool()
        torch.testing.assert_close(step["cached"].hidden[2][valid], hidden[valid], rtol=2e-3, atol=2e-3)
        # ... and not with the same rows masked token by token (what the cache was refused for before): the
        # comparison sees the masks
        original = torch.where(step["labels"] != -100, step["labels"], step["input_ids"])
        rows = [{"input_ids": ids[:int(n)].tolist(), "example_id": int(i)} for ids, n, i in
                zip(original, step["attention_mask"].sum(1), step["example_id"])]
        token_level = plain(rows)["input_ids"]
        assert not torch.equal(token_level, step["input_ids"])
        other, other_hidden = live_ce(teacher, token_level, step["attention_mask"], step)
        assert abs(other - live) > 10 * tolerance, (other, live)
        assert (other_hidden[valid] - hidden[valid]).abs().max() > 0.1


@pytest.mark.parametrize("world", ["wordpiece"], indirect=True)
def test_a_cache_of_the_other_masking_scheme_is_one_line_and_nothing_is_written(world, tmp_path, capsys):
    plain = cache_cli(world, tmp_path / "plain-cache")
    wwm = world["cache"]
    before = {plain: tree(plain), wwm: tree(wwm)}
    capsys.readouterr()
    # a token-level cache with --whole-word-mask
    assert exit_code(lambda: train_cli(world, tmp_path / "run1", plain, "--whole-word-mask")) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == (
        f"ckptkit: error: {plain}: teacher cache was built without whole-word masking and this run uses "
        "--whole-word-mask (drop --whole-word-mask to use this cache, or build one with `ckptkit distill cache "
        "--whole-word-mask` (same data, --seed and masking options) into another --out (--overwrite rebuilds this "
        "one))\n")
    # a whole-word cache without it
    assert exit_code(lambda: train_cli(world, tmp_path / "run2", wwm)) == 2
    assert capsys.readouterr().err == (
        f"ckptkit: error: {wwm}: teacher cache was built with whole-word masking (--whole-word-mask) and this run "
        "masks single tokens (pass --whole-word-mask to use this cache, or build one without it with `ckptkit "
        "distill cache` into another --out (--overwrite rebuilds this one))\n")
    # the same scheme with another masking setting names it; another scheme and setting names both
    assert exit_code(lambda: train_cli(world, tmp_path / "run3", wwm, "--whole-word-mask",
                                       "--mlm-probability", "0.2")) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"ckptkit: error: {wwm}: teacher cache was built for other settings (mlm_probability: "
                          "0.15 in the cache, 0.2 now) (build a cache for this run with `ckptkit distill cache`")
    assert err.count("\n") == 1
    assert exit_code(lambda: train_cli(world, tmp_path / "run4", plain, "--whole-word-mask", "--seed", "3")) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"ckptkit: error: {plain}: teacher cache was built without whole-word masking and this "
                          "run uses --whole-word-mask; other settings differ too: seed: 0 in the cache, 3 now (drop")
    assert err.count("\n") == 1
    # `distill cache --whole-word-mask` into the token-level cache's folder
    assert exit_code(lambda: cache_cli(world, plain, "--whole-word-mask")) == 2
    assert capsys.readouterr().err.startswith(f"ckptkit: error: {plain}: teacher cache was built without whole-word "
                                              "masking and this run uses --whole-word-mask (")
    assert not any((tmp_path / f"run{i}").exists() for i in range(1, 5))
    assert before == {plain: tree(plain), wwm: tree(wwm)}      # nothing written, nothing half-written
    # the cache command says which masking a cache holds (text and JSON)
    cache_cli(world, wwm, "--whole-word-mask", quiet=False)
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith(f"teacher cache {wwm}: ") and first.endswith(
        " reused); whole-word masks (distill train --whole-word-mask reads it)"), first
    cache_cli(world, plain, quiet=False)
    assert "whole-word" not in capsys.readouterr().out
    for cache, whole_words in ((wwm, True), (plain, False)):
        cache_cli(world, cache, *(["--whole-word-mask"] if whole_words else []), "--json", quiet=False)
        assert json.loads(capsys.readouterr().out)["whole_word_mask"] is whole_words


@pytest.mark.parametrize("world", ["wordpiece"], indirect=True)
def test_an_unfinished_cache_of_the_other_scheme_is_refused_before_building(world, tmp_path, capsys):
    """Training finishes an interrupted cache first: one of the other scheme is refused before any piece is built."""
    import shutil

    cache = tmp_path / "cut"
    shutil.copytree(world["cache"], cache)
    meta = json.loads((cache / "cache.json").read_text())
    (cache / "cache.json").write_text(json.dumps({**meta, "complete": False}))
    removed = sorted((cache / "pieces").iterdir())[1]
    shutil.rmtree(removed)
    before = tree(cache)
    capsys.readouterr()
    assert exit_code(lambda: train_cli(world, tmp_path / "run", cache)) == 2
    assert capsys.readouterr().err.startswith(f"ckptkit: error: {cache}: teacher cache was built with whole-word "
                                              "masking (--whole-word-mask) and this run masks single tokens (pass")
    assert tree(cache) == before and not (tmp_path / "run").exists()
    # with --whole-word-mask the same command finishes it and trains from it
    train_cli(world, tmp_path / "run", cache, "--whole-word-mask", "-q", "--json")
    report = json.loads(capsys.readouterr().out)
    assert report["teacher_cache"]["built_now"] and report["steps"] == 2
    # the piece training built with its whole-word masks holds what `distill cache --whole-word-mask` stored
    rebuilt, original = tree(removed), tree(world["cache"] / "pieces" / removed.name)
    assert sorted(rebuilt) == sorted(original)
    for name, data in original.items():
        if name != "piece.json":
            assert rebuilt[name] == data, name


@pytest.mark.parametrize("world", ["kobert"], indirect=True)
def test_cache_teacher_with_whole_word_mask_builds_what_distill_cache_builds(world, tmp_path, monkeypatch, capsys):
    """`--cache-teacher --whole-word-mask` (refused before): the teacher runs only to build OUT/teacher-cache, whose
    pieces are byte for byte those of `distill cache --whole-word-mask` (same masks, same teacher outputs)."""
    reference = cache_cli(world, tmp_path / "reference", "--whole-word-mask", piece_mb=None)   # train's piece size
    steps, forwards = record_training(monkeypatch)
    capsys.readouterr()
    out = tmp_path / "run"
    main(["distill", "train", "--student", str(world["student"]), "--train-file", str(world["train"]),
          "--cache-teacher", "--cache-top-k", str(TOP_K), "--whole-word-mask", "--output-dir", str(out),
          "--max-seq-length", str(SEQ), "--max-steps", "2", "--per-device-train-batch-size", "8", "--use-cpu",
          "--seed", "0", "-q", "--json"])
    assert json.loads(capsys.readouterr().out)["teacher_cache"]["built_now"] and len(steps) == 2
    built = out / "teacher-cache"
    pieces = [json.loads(p.read_text())["rows"] for p in sorted(reference.glob("pieces/p*/piece.json"))]
    assert forwards[0] == sum(-(-rows // 16) for rows in pieces)      # the build's batches of 16, none in training
    assert json.loads((built / "cache.json").read_text())["key"] == json.loads((reference / "cache.json").read_text())[
        "key"]
    for name, data in tree(reference / "pieces").items():
        if not name.endswith("piece.json"):
            assert tree(built / "pieces")[name] == data, name


@pytest.mark.parametrize("world", ["wordpiece"], indirect=True)
def test_whole_word_cache_with_mlm_smoothing_is_read(world, tmp_path, monkeypatch, capsys):
    """Rare words masked more (--mlm-smoothing, a word weighs as its rarest piece): the same weights both sides."""
    cache = cache_cli(world, tmp_path / "smooth", "--whole-word-mask", "--mlm-smoothing", "0.7")
    steps, forwards = record_training(monkeypatch)
    capsys.readouterr()
    train_cli(world, tmp_path / "run", cache, "--whole-word-mask", "--mlm-smoothing", "0.7", "-q", "--json")
    assert json.loads(capsys.readouterr().out)["teacher_cache"]["built_now"] is False
    assert forwards[0] == 0 and len(steps) == 2
    assert all(whole_words_masked(world, step["input_ids"], step["labels"]) > 0 for step in steps)
