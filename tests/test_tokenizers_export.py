"""write_tokenizer_files for each kind, detect_tokenizer_kind, and the `ckptkit tokenizer` command."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ckptkit.errors import CheckpointNotFoundError, ConfigError, UsageError
from support.corpus import korean_corpus
from ckptkit.tokenizers.export import detect_tokenizer_kind, write_tokenizer_files

SPM = "tokenizer_78b3253a26.model"
BERT_WORDS = ["[PAD]", "[unused0]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "quick", "brown", "fox",
              "jump", "##s", "##ed", "over", "lazy", "dog", ".", ",", "!", "a", "##b", "한", "##국"]


@pytest.fixture()
def bert_vocab(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("\n".join(BERT_WORDS) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def bigbird_spm(tmp_path_factory):
    """A tiny unigram model with google-research/bigbird's ids: <pad>=0 </s>=1 <s>=2 <unk>=3."""
    import sentencepiece as spm

    folder = tmp_path_factory.mktemp("bigbird")
    lines = [line for line in korean_corpus(600, seed=3, long_every=0) if line.strip()][:400]
    lines += ["The quick brown fox jumps over the lazy dog.", "BigBird uses sparse attention!"] * 20
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_prefix=str(folder / "vocab"), vocab_size=400, model_type="unigram",
        pad_id=0, eos_id=1, bos_id=2, unk_id=3, user_defined_symbols=["[CLS]", "[SEP]", "[MASK]"],
        character_coverage=0.995, num_threads=1, minloglevel=2)
    return folder / "vocab.model"


def _auto(path):
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    tok = AutoTokenizer.from_pretrained(path)
    assert isinstance(tok, PreTrainedTokenizerFast)
    return tok


def test_bert_kind(bert_vocab, tmp_path):
    out = tmp_path / "out"
    info = write_tokenizer_files(out, kind="bert", vocab_file=bert_vocab)
    assert info.tokenizer_class == "BertTokenizerFast" and info.do_lower_case is True
    assert (info.pad_token_id, info.unk_token_id, info.cls_token_id, info.sep_token_id, info.mask_token_id) == \
        (0, 2, 3, 4, 5)
    assert info.vocab_size == len(BERT_WORDS)
    assert set(info.files) == {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"}
    tok = _auto(out)
    enc = tok("The quick fox jumped!", "a lazy dog")
    assert tok.convert_ids_to_tokens(enc["input_ids"]) == \
        ["[CLS]", "the", "quick", "fox", "jump", "##ed", "!", "[SEP]", "a", "lazy", "dog", "[SEP]"]
    assert enc["token_type_ids"] == [0] * 8 + [1] * 4
    assert tok.decode(enc["input_ids"], skip_special_tokens=True) == "the quick fox jumped! a lazy dog"
    assert json.loads((out / "tokenizer_config.json").read_text())["model_max_length"] == 512


def test_bert_case_inference(tmp_path):
    cased = tmp_path / "cased.txt"
    cased.write_text("\n".join(BERT_WORDS + ["Paris", "##X"]) + "\n", encoding="utf-8")
    info = write_tokenizer_files(tmp_path / "out", kind="bert", vocab_file=cased)
    assert info.do_lower_case is False
    assert _auto(tmp_path / "out").tokenize("Paris the") == ["Paris", "the"]
    forced = write_tokenizer_files(tmp_path / "forced", kind="bert", vocab_file=cased, do_lower_case=True)
    assert forced.do_lower_case is True


def test_bigbird_kind(bigbird_spm, tmp_path):
    import sentencepiece as spm

    info = write_tokenizer_files(tmp_path / "bb", kind="bigbird", spm_file=bigbird_spm)
    assert (info.pad_token_id, info.eos_token_id, info.bos_token_id, info.unk_token_id) == (0, 1, 2, 3)
    assert (info.cls_token_id, info.sep_token_id, info.mask_token_id) == (4, 5, 6)
    assert "spiece.model" in info.files and info.vocab_size == 400
    tok = _auto(tmp_path / "bb")
    sp = spm.SentencePieceProcessor(model_file=str(bigbird_spm))
    lines = [line for line in korean_corpus(500, seed=11) if "[" not in line]
    ids = tok(lines)["input_ids"]
    expected = [[4, *sp.encode(line), 5] for line in lines]
    assert sum(a != b for a, b in zip(ids, expected)) <= 2  # rare float32 ties, as for KoBERT
    assert "token_type_ids" not in tok("a", "b")
    # BigBird's [MASK] strips the space before it (lstrip), as transformers' BigBird tokenizer does
    ids = tok("the [MASK] dog", add_special_tokens=False)["input_ids"]
    assert ids == [*sp.encode("the"), 6, *sp.encode("dog")]


def test_kobert_kind_and_detection(kobert_dir, tmp_path, bert_vocab, bigbird_spm):
    info = write_tokenizer_files(tmp_path / "k", kind="kobert", spm_file=kobert_dir / SPM,
                                 vocab_file=kobert_dir / "vocab.txt")
    assert (info.kind, info.vocab_size, info.pad_token_id, info.do_lower_case) == ("kobert", 8002, 1, False)
    assert SPM in info.files and (tmp_path / "k" / SPM).read_bytes() == (kobert_dir / SPM).read_bytes()
    assert detect_tokenizer_kind(vocab_file=kobert_dir / "vocab.txt", spm_file=kobert_dir / SPM) == "kobert"
    assert detect_tokenizer_kind(vocab_file=bert_vocab) == "bert"
    assert detect_tokenizer_kind(spm_file=bigbird_spm) == "bigbird"
    with pytest.raises(UsageError):
        detect_tokenizer_kind()
    with pytest.raises(UsageError, match="does not start"):
        detect_tokenizer_kind(vocab_file=bert_vocab, spm_file=bigbird_spm)


def test_errors_name_the_file(tmp_path, bert_vocab, kobert_dir):
    with pytest.raises(UsageError, match="unknown tokenizer kind 'gpt2'"):
        write_tokenizer_files(tmp_path, kind="gpt2")
    with pytest.raises(CheckpointNotFoundError, match="nope.txt"):
        write_tokenizer_files(tmp_path, kind="bert", vocab_file=tmp_path / "nope.txt")
    no_mask = tmp_path / "v.txt"
    no_mask.write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\nword\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"v\.txt: vocabulary lacks special token\(s\) \[MASK\]"):
        write_tokenizer_files(tmp_path / "o", kind="bert", vocab_file=no_mask)
    with pytest.raises(ConfigError, match="not a SentencePiece model"):
        write_tokenizer_files(tmp_path / "o", kind="kobert", spm_file=bert_vocab, vocab_file=kobert_dir / "vocab.txt")
    assert not (tmp_path / "o").exists()  # nothing written when validation fails


def test_cli_kobert(kobert_dir, tmp_path):
    from click.testing import CliRunner

    from ckptkit.cli import cli

    out = tmp_path / "cli"
    result = CliRunner().invoke(cli, ["tokenizer", "kobert", str(out), "--spm", str(kobert_dir / SPM),
                                      "--vocab", str(kobert_dir / "vocab.txt"), "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["tokenizer_class"] == "PreTrainedTokenizerFast" and document["vocab_size"] == 8002
    assert (out / "tokenizer.json").is_file()
    help_text = CliRunner().invoke(cli, ["tokenizer", "kobert", "--help"]).output
    assert "Example" in help_text and "ckptkit tokenizer kobert out/kobert" in help_text


def test_cli_error_is_one_line_exit_2(tmp_path):
    result = subprocess.run([sys.executable, "-m", "ckptkit", "tokenizer", "kobert", str(tmp_path / "o"),
                             "--spm", str(tmp_path / "missing.model"), "--vocab", str(tmp_path / "v.txt")],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "missing.model: no such file" in result.stderr
