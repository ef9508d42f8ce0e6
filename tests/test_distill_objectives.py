"""Objectives: layer maps of the MSE and cosine terms that agree, whole-word masking, layer-order warning."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from ckptkit.cli import main
from ckptkit.distill.data import MaskingCollator
from ckptkit.distill.train import resolve_weights, train_student
from ckptkit.distill.trainer import DistillOptions
from ckptkit.distill.whole_word import with_whole_words
from distill_helpers import TRAIN_ARGS, distill_world  # noqa: F401  (fixture)

pytestmark = pytest.mark.xdist_group("distill")
REPO_EXAMPLE = str(Path(__file__).resolve().parent.parent / "examples" / "tiny-bert")


def test_hidden_objective_targets_one_teacher_layer_for_the_students_last(distill_world, tmp_path):
    """The 1-layer student starts from teacher layer 0 of 3: MSE toward layer 0 and cosines toward layer 2 pulled
    its one output apart (loss_mse rose). By default both now target teacher layer 2, and the MSE falls."""
    result = train_student(student=distill_world["student"], train_files=[distill_world["train"]],
                           output_dir=tmp_path / "h", objective="hidden", max_seq_length=32, quiet=True,
                           training_args={**TRAIN_ARGS, "max_steps": 30, "logging_steps": 5})
    summary = result.summary
    assert summary["layer_map"] == [2] and summary["cos_layer_map"] == [[0, 2]]
    assert result.losses["mse"]["last"] < result.losses["mse"]["first"]
    assert result.losses["pooled_cos"]["last"] < result.losses["pooled_cos"]["first"]
    assert json.loads((tmp_path / "h" / "student.json").read_text())["layers"] == [0]  # where it started


def test_separate_maps_are_honoured(distill_world, tmp_path):
    result = train_student(student=distill_world["student"], train_files=[distill_world["train"]],
                           output_dir=tmp_path / "m", objective="hidden", max_seq_length=32, quiet=True,
                           layer_map="1", cos_layer_map="0:2", training_args={**TRAIN_ARGS, "max_steps": 2})
    assert result.summary["layer_map"] == [1] and result.summary["cos_layer_map"] == [[0, 2]]
    options = DistillOptions(weights=resolve_weights("hidden"), layer_map=(1,), cos_pairs=((0, 2),),
                             objective="hidden", teacher_layers=3)
    assert options.teacher_hidden_indices == [2, 3]  # hidden_states indices: layer j is j + 1


def test_cos_layer_map_out_of_range_is_one_line(distill_world, tmp_path, capsys):
    with pytest.raises(SystemExit) as refused:
        main(["distill", "train", "--student", str(distill_world["student"]), "--train-file",
              str(distill_world["train"]), "--output-dir", str(tmp_path / "x"), "--objective", "hidden",
              "--cos-layer-map", "0:7", "--use-cpu", "-q"])
    err = capsys.readouterr().err.strip()
    assert refused.value.code == 2 and err.count("\n") == 0 and "0:7" in err and "teacher 0..2" in err


# ----------------------------------------------------------------------------------- whole-word masking
def _assert_whole_words(collator, rows, tokenizer, continues) -> int:
    """Every word (a start piece and its continuations) is labelled entirely or not at all; returns words masked."""
    masked_words = 0
    batch = collator([{"input_ids": ids, "example_id": i} for i, ids in enumerate(rows)])
    for row, ids in enumerate(rows):
        labelled = (batch["labels"][row, :len(ids)] != -100).numpy()
        pieces = tokenizer.convert_ids_to_tokens(ids)
        words, current = [], []
        for k, piece in enumerate(pieces):
            if current and not continues(piece):
                words.append(current)
                current = []
            current.append(k)
        words.append(current)
        for word in words:
            flags = {bool(labelled[k]) for k in word}
            assert len(flags) == 1, [pieces[k] for k in word]
            masked_words += flags == {True} and len(word) > 1
        assert labelled.any()
    return masked_words


def _collator(tokenizer, probability=0.3):
    return MaskingCollator(pad_id=tokenizer.pad_token_id, mask_id=tokenizer.mask_token_id,
                           special_ids=sorted(set(tokenizer.all_special_ids)), vocab_size=len(tokenizer),
                           mlm_probability=probability, seed=3)


def test_whole_word_mask_wordpiece(tmp_path):
    from transformers import BertTokenizer

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "play", "##ing", "##ed", "##s", "un", "##believ",
             "##able", "cat", "dog", "the", "runs", "##ning"]
    (tmp_path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tokenizer = BertTokenizer(str(tmp_path / "vocab.txt"))
    text = "the cat playing unbelievable dog running plays the dog played"
    rows = [tokenizer(text)["input_ids"] for _ in range(20)]
    assert "##believ" in tokenizer.convert_ids_to_tokens(rows[0])
    wwm = with_whole_words(_collator(tokenizer), tokenizer)
    assert _assert_whole_words(wwm, rows, tokenizer, lambda p: p.startswith("##")) > 5
    # the plain collator splits words (what --whole-word-mask is for)
    with pytest.raises(AssertionError):
        _assert_whole_words(_collator(tokenizer), rows, tokenizer, lambda p: p.startswith("##"))


def test_whole_word_mask_kobert_sentencepiece(kobert_dir):
    from ckptkit.tokenizers import KoBertTokenizer

    spm = next(p for p in kobert_dir.iterdir() if p.suffix == ".model")
    tokenizer = KoBertTokenizer(vocab_file=kobert_dir / "vocab.txt", sp_model_file=spm)
    text = "한국어 자연어처리는 재미있습니다 오늘 날씨가 정말 좋습니다 그리고 우리는 공원에서 산책했습니다"
    rows = [tokenizer(text)["input_ids"] for _ in range(20)]
    pieces = tokenizer.convert_ids_to_tokens(rows[0])
    assert "▁한국" in pieces and "어" in pieces  # KoBERT splits words into a ▁ start and continuations
    starts = lambda p: p.startswith("▁") or p in tokenizer.all_special_tokens  # noqa: E731
    wwm = with_whole_words(_collator(tokenizer), tokenizer)
    assert _assert_whole_words(wwm, rows, tokenizer, lambda p: not starts(p)) > 5
    with pytest.raises(AssertionError):
        _assert_whole_words(_collator(tokenizer), rows, tokenizer, lambda p: not starts(p))


def test_whole_word_mask_trains_from_the_cli(distill_world, tmp_path, capsys):
    main(["distill", "train", "--student", str(distill_world["student"]), "--train-file", str(distill_world["train"]),
          "--output-dir", str(tmp_path / "w"), "--max-seq-length", "32", "--max-steps", "2", "--use-cpu",
          "--whole-word-mask", "-q", "--json"])
    assert json.loads(capsys.readouterr().out)["steps"] == 2


def test_non_increasing_layers_warn(tmp_path, capsys):
    main(["distill", "init", REPO_EXAMPLE, str(tmp_path / "r"), "--layers", "1,0"])
    err = capsys.readouterr().err
    assert re.search(r"warning: --layers 1,0 is not increasing.*e\.g\. 0,1", err)
    main(["distill", "init", REPO_EXAMPLE, str(tmp_path / "ok"), "--layers", "0,1"])
    assert "not increasing" not in capsys.readouterr().err
