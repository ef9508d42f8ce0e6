"""Issue 12 item 14: ``verify`` (and ``convert --verify``) compare the tokenizers of both sides, so a
conversion that lost or changed the tokenizer fails; ELECTRA part folders joined into one TF checkpoint
keep their SentencePiece model."""

from __future__ import annotations

import doctest
import json
import shutil
from pathlib import Path

import pytest

from ckptkit.converters.tokenizer_check import TEXTS
from support.cli import run_cli

SPM = "tokenizer_78b3253a26.model"
KOBERT_IDS = [2, 4958, 6855, 2046, 7088, 1050, 7843, 54, 3]  # "한국어 모델을 공유합니다." (TEXTS[0])
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt", SPM)


def _cli(capsys, *args: str) -> tuple[int, str, str]:
    return run_cli(list(args), capsys)


def _bert_tf(folder: Path, *, vocab: list[str] | None, spm: Path | None = None) -> Path:
    from ckptkit.converters.formats.tf1 import write_tf_checkpoint
    from support.bert import bert_tf_config, bert_tf_variables, tiny_wordpiece_vocab

    shape = dict(vocab_size=len(vocab) if vocab else 64, hidden=16, layers=1, heads=2, intermediate=32,
                 max_positions=64)
    folder.mkdir(parents=True)
    write_tf_checkpoint(str(folder / "model.ckpt-1"), bert_tf_variables(**shape, seed=1))
    (folder / "bert_config.json").write_text(json.dumps(bert_tf_config(**shape)))
    if vocab is not None:
        (folder / "vocab.txt").write_text("\n".join(vocab or tiny_wordpiece_vocab(64)) + "\n", encoding="utf-8")
    if spm is not None:
        shutil.copyfile(spm, folder / "vocab.model")
    return folder


VERIFIED: dict[str, dict] = {}  # the --verify summaries of the kobert fixture's conversions


@pytest.fixture(scope="module")
def kobert(tmp_path_factory, kobert_dir) -> Path:
    """tf (KoBERT vocab.txt + vocab.model) -> hub -> tf1 (tf2) -> hub2, the last two with --verify."""
    from ckptkit.converters.convert import convert_checkpoint

    root = tmp_path_factory.mktemp("kobert")
    vocab = (kobert_dir / "vocab.txt").read_text(encoding="utf-8").splitlines()
    tf = _bert_tf(root / "tf", vocab=vocab, spm=kobert_dir / SPM)
    convert_checkpoint(str(tf), str(root / "hub"))
    assert (root / "hub" / SPM).is_file()
    for source, target, to in (("hub", "tf2", "tf1"), ("tf2", "hub2", None)):
        VERIFIED[target] = convert_checkpoint(str(root / source), str(root / target), to=to, verify=True).verification
    return root


def _json(capsys, *args: str) -> tuple[int, dict]:
    code, out, err = _cli(capsys, "verify", *args, "--json")
    assert code in (0, 1), err
    return code, json.loads(out)


def test_kobert_round_trip_verifies_with_identical_ids(kobert, capsys):
    assert [VERIFIED[t].get("tokenizer", {}).get("status") for t in ("tf2", "hub2")] == ["identical"] * 2
    for source, output in (("hub", "tf2"), ("hub", "hub2")):
        code, report = _json(capsys, str(kobert / source), str(kobert / output), "--no-forward")
        tokenizer = report["tokenizer"]
        assert code == 0 and report["passed"], report
        assert tokenizer["status"] == "identical" and tokenizer["texts"] == len(TEXTS) >= 12
        assert tokenizer["message"].startswith(f"identical ids on {len(TEXTS)} texts (")
    code, out, err = _cli(capsys, "verify", str(kobert / "tf2"), str(kobert / "hub2"))
    assert code == 0, out + err
    line = next(s for s in out.splitlines() if s.startswith("tokenizer: "))
    assert line == (f"tokenizer: identical ids on {len(TEXTS)} texts (kobert from vocab.txt + vocab.model vs "
                    "tokenizer.json (8002 tokens))")  # the NumPy engine's run: tokenizer.json through `tokenizers`
    code, out, err = _cli(capsys, "verify", str(kobert / "tf2"), str(kobert / "hub2"), "--no-forward",
                          "--engine", "transformers")
    assert code == 0, out + err
    assert f"identical ids on {len(TEXTS)} texts (kobert from vocab.txt + vocab.model vs PreTrainedTokenizerFast " \
           "(8002 tokens))" in out  # --engine transformers: what AutoTokenizer loads
    from transformers import AutoTokenizer

    assert AutoTokenizer.from_pretrained(kobert / "hub2")(TEXTS[0])["input_ids"] == KOBERT_IDS


def _wordpiece_instead(folder: Path, vocab: Path) -> None:
    """What the way back used to build: KoBERT's vocab.txt read as WordPiece, no SentencePiece model."""
    from ckptkit.tokenizers import write_tokenizer_files

    for name in TOKENIZER_FILES:
        (folder / name).unlink(missing_ok=True)
    write_tokenizer_files(folder, kind="bert", vocab_file=vocab, do_lower_case=False)


def test_a_wordpiece_tokenizer_in_place_of_kobert_fails_verify(kobert, kobert_dir, tmp_path, capsys):
    broken = tmp_path / "broken"
    shutil.copytree(kobert / "hub2", broken)
    _wordpiece_instead(broken, kobert_dir / "vocab.txt")
    for source in ("tf2", "hub"):
        code, out, err = _cli(capsys, "verify", str(kobert / source), str(broken), "--no-forward")
        assert code == 1 and "verification FAILED" in out, out + err
        line = next(s for s in out.splitlines() if s.startswith("tokenizer: "))
        assert line.startswith("tokenizer: ids differ on text 1 '한국어 모델을 공유합니다.': at position 1 the "
                               "source has 4958 '▁한국' and the output 0 '[UNK]'"), line
    tf_broken = tmp_path / "tf-broken"  # the TF side lost its SentencePiece model: vocab.txt alone cannot work
    shutil.copytree(kobert / "tf2", tf_broken)
    (tf_broken / "vocab.model").unlink()
    code, report = _json(capsys, str(kobert / "hub"), str(tf_broken), "--no-forward")
    assert code == 1 and report["tokenizer"]["status"] == "broken" and not report["passed"]
    assert "no SentencePiece model was found" in report["tokenizer"]["message"]


def test_convert_verify_fails_on_a_changed_tokenizer(kobert, kobert_dir, tmp_path, capsys, monkeypatch):
    """convert --verify runs the same check: a way back that writes KoBERT's vocab as WordPiece (the bug of
    issue 12 item 14) ends as one line naming the tokenizer, and nothing is left behind."""
    import ckptkit.converters.convert.write as convert

    def wordpiece(step, folder, **_):
        _wordpiece_instead(Path(folder), kobert_dir / "vocab.txt")

    monkeypatch.setattr(convert, "write_planned_tokenizer", wordpiece)
    code, out, err = _cli(capsys, "convert", str(kobert / "tf2"), str(tmp_path / "out"), "--verify")
    assert code == 2 and err.count("\n") == 1 and not (tmp_path / "out").exists(), err
    assert err.startswith("ckptkit: error: ") and "verification failed: 1 mismatches, first: tokenizer: ids differ " \
                                                   "on text 1 '한국어 모델을 공유합니다.'" in err


def test_a_lost_tokenizer_fails_unless_the_output_was_made_without_one(kobert, tmp_path, capsys):
    lost = tmp_path / "lost"
    shutil.copytree(kobert / "hub2", lost)
    for name in TOKENIZER_FILES:
        (lost / name).unlink()
    code, out, _ = _cli(capsys, "verify", str(kobert / "tf2"), str(lost), "--no-forward")
    assert code == 1 and "tokenizer: lost: the source has one (kobert from vocab.txt + vocab.model) but the " \
                          "output has none" in out
    code, out, _ = _cli(capsys, "verify", str(kobert / "tf2"), str(lost), "--no-forward", "--no-tokenizer")
    assert code == 0 and "tokenizer: not compared: the output was made with --no-tokenizer" in out
    code, out, err = _cli(capsys, "convert", str(kobert / "tf2"), str(tmp_path / "bare"), "--no-tokenizer",
                          "--verify")
    assert code == 0 and "(PASS); tokenizer: not compared: the output was made with --no-tokenizer\n" in err, err
    code, report = _json(capsys, str(kobert / "tf2"), str(tmp_path / "bare"), "--no-forward")  # from ckptkit.json
    assert code == 0 and report["tokenizer"]["status"] == "not compared"


def test_plain_bert_passes_and_no_vocab_is_none_on_either_side(tmp_path, capsys):
    from ckptkit.converters.convert import convert_checkpoint

    bert = _bert_tf(tmp_path / "bert", vocab=[])
    result = convert_checkpoint(str(bert), str(tmp_path / "bert-hub"), verify=True)
    assert result.verification["tokenizer"]["status"] == "identical"
    code, report = _json(capsys, str(tmp_path / "bert-hub"), str(bert), "--no-forward")
    assert code == 0 and report["tokenizer"]["message"].startswith(f"identical ids on {len(TEXTS)} texts (")
    bare = _bert_tf(tmp_path / "bare", vocab=None)
    convert_checkpoint(str(bare), str(tmp_path / "bare-hub"))
    code, out, _ = _cli(capsys, "verify", str(bare), str(tmp_path / "bare-hub"), "--no-forward")
    assert code == 0 and "tokenizer: none on either side" in out.splitlines()
    # convert --verify checks against the vocab convert found, also one only its --config leads to
    elsewhere = tmp_path / "configs"
    elsewhere.mkdir()
    shutil.copyfile(bare / "bert_config.json", elsewhere / "bert_config.json")
    shutil.copyfile(bert / "vocab.txt", elsewhere / "vocab.txt")
    code, out, err = _cli(capsys, "convert", str(bare), str(tmp_path / "configured"), "--config",
                          str(elsewhere / "bert_config.json"), "--verify", "--json")
    assert code == 0 and json.loads(out)["verification"]["tokenizer"]["status"] == "identical", out + err


# -- ELECTRA part folders -> one TF checkpoint keeps the SentencePiece model ---------------------------------
def test_electra_parts_to_tf_keep_the_sentencepiece_model(kobert_dir, tmp_path, capsys):
    from ckptkit.converters.convert import convert_checkpoint
    from ckptkit.converters.formats.tf1 import write_tf_checkpoint
    from support.families import electra_hparams, electra_tf_variables

    vocab = (kobert_dir / "vocab.txt").read_text(encoding="utf-8").splitlines()
    dims = dict(vocab_size=len(vocab), embedding=8, hidden=16, layers=1, heads=2, intermediate=32, max_positions=32)
    tf = tmp_path / "tf"
    tf.mkdir()
    write_tf_checkpoint(str(tf / "model.ckpt-1"), electra_tf_variables(**dims, generator_hidden=8))
    (tf / "hparams.json").write_text(json.dumps(electra_hparams(**dims, generator_hidden=8)))
    (tf / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    shutil.copyfile(kobert_dir / SPM, tf / "vocab.model")
    convert_checkpoint(str(tf), str(tmp_path / "parts"))
    assert (tmp_path / "parts" / "generator" / SPM).is_file()
    code, out, err = _cli(capsys, "convert", str(tmp_path / "parts"), str(tmp_path / "dry"), "--dry-run", "--json")
    assert code == 0 and {"vocab.txt", "vocab.model"} <= set(json.loads(out)["files"]), err
    result = convert_checkpoint(str(tmp_path / "parts"), str(tmp_path / "back"), verify=True)
    assert (tmp_path / "back" / "vocab.model").read_bytes() == (kobert_dir / SPM).read_bytes()
    assert "vocab.model" in result.files and result.verification["tokenizer"]["ok"]
    code, report = _json(capsys, str(tmp_path / "parts"), str(tmp_path / "back"), "--no-forward")
    assert code == 0 and set(report["tokenizer"]["parts"]) == {"discriminator", "generator"}
    assert all(p["status"] == "identical" for p in report["tokenizer"]["parts"].values())


def test_docstring_examples_run():
    import ckptkit.converters.tokenizer_check as module

    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0
