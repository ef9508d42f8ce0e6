"""The fixed KoBERT slow tokenizer and how it finds its files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ckptkit.errors import CheckpointNotFoundError, ConfigError
from ckptkit.tokenizers.resources import KOBERT_DIR_ENV, find_kobert_files, kobert_config

SPM = "tokenizer_78b3253a26.model"
REFERENCE = "[CLS] 한국어 모델을 공유합니다. [SEP]"
REFERENCE_TOKENS = ["[CLS]", "▁한국", "어", "▁모델", "을", "▁공유", "합니다", ".", "[SEP]"]
REFERENCE_IDS = [2, 4958, 6855, 2046, 7088, 1050, 7843, 54, 3]


@pytest.fixture(scope="module")
def slow(kobert_dir):
    from ckptkit.tokenizers import KoBertTokenizer

    return KoBertTokenizer(vocab_file=kobert_dir / "vocab.txt", sp_model_file=kobert_dir / SPM)


def test_reference_example(slow):
    tokens = slow.tokenize(REFERENCE)
    assert tokens == REFERENCE_TOKENS
    assert slow.convert_tokens_to_ids(tokens) == REFERENCE_IDS
    assert slow(REFERENCE, add_special_tokens=False)["input_ids"] == REFERENCE_IDS


def test_vocab_and_config(slow):
    config = kobert_config()
    assert slow.vocab_size == len(slow) == config["vocab_size"] == 8002
    assert [slow.unk_token_id, slow.pad_token_id, slow.cls_token_id, slow.sep_token_id, slow.mask_token_id] == \
        [0, 1, 2, 3, 4]
    assert slow.model_max_length == 512 and slow.do_lower_case is False
    assert slow.convert_ids_to_tokens([0, 8001, 9999]) == ["[UNK]", slow.ids_to_tokens[8001], "[UNK]"]


def test_pair_token_types_and_masks(slow):
    enc = slow("한국어 모델", "공유[MASK]합니다", return_special_tokens_mask=True)
    ids = enc["input_ids"]
    assert ids[0] == 2 and ids.count(3) == 2 and ids[-1] == 3
    first_sep = ids.index(3)
    assert enc["token_type_ids"] == [0] * (first_sep + 1) + [1] * (len(ids) - first_sep - 1)
    # the template's [CLS]/[SEP] are marked; a [MASK] typed in the text is content (as in the fast tokenizer)
    assert enc["special_tokens_mask"] == [1] + [0] * (first_sep - 1) + [1] + [0] * (len(ids) - first_sep - 2) + [1]
    assert enc["attention_mask"] == [1] * len(ids)


def test_special_tokens_mask_marks_every_special_token(slow):
    ids = [2, 100, 0, 1, 4, 3, 200, 3]
    assert slow.get_special_tokens_mask(ids, already_has_special_tokens=True) == [1, 0, 1, 1, 1, 1, 0, 1]
    for token in ("[UNK]", "[PAD]", "[CLS]", "[SEP]", "[MASK]"):
        assert slow.tokenize(f"한국 {token} 모델") == ["▁한국", token, "▁모델"]


def test_convert_tokens_to_string(slow):
    assert slow.convert_tokens_to_string(["▁한국", "어", "▁모델", "을"]) == "한국어 모델을"
    assert slow.decode(REFERENCE_IDS) == "[CLS] 한국어 모델을 공유합니다.[SEP]"
    assert slow.decode(REFERENCE_IDS, skip_special_tokens=True) == "한국어 모델을 공유합니다."


def test_pair_truncation_follows_tokenizers_rule(slow):
    from ckptkit.tokenizers.kobert import _longest_first_lengths

    assert _longest_first_lengths(34, 166, 29) == (14, 15)
    assert _longest_first_lengths(166, 34, 29) == (15, 14)
    assert _longest_first_lengths(5, 40, 29) == (5, 24)
    assert _longest_first_lengths(10, 10, 29) == (10, 10)
    enc = slow("가 " * 40, "나 " * 40, truncation="longest_first", max_length=20)
    assert len(enc["input_ids"]) == 20
    with pytest.raises(ValueError, match="too short"):
        slow("가 " * 40, "나", truncation="only_second", max_length=20)


def test_save_and_reload(slow, tmp_path):
    from ckptkit.tokenizers import KoBertTokenizer

    slow.save_pretrained(tmp_path)
    assert {"vocab.txt", SPM, "tokenizer_config.json"} <= {p.name for p in tmp_path.iterdir()}
    again = KoBertTokenizer.from_pretrained(tmp_path)
    assert again.tokenize(REFERENCE) == REFERENCE_TOKENS
    assert Path(again.sp_model_file).parent == tmp_path


def test_lower_case_option(kobert_dir):
    from ckptkit.tokenizers import KoBertTokenizer

    lower = KoBertTokenizer(vocab_file=kobert_dir / "vocab.txt", sp_model_file=kobert_dir / SPM, do_lower_case=True)
    assert lower.tokenize("BERT [MASK]") == lower.tokenize("bert [MASK]")
    assert "[MASK]" in lower.tokenize("BERT [MASK]")


def test_bad_vocab_is_one_line_error(kobert_dir, tmp_path):
    from ckptkit.tokenizers import KoBertTokenizer

    bad = tmp_path / "vocab.txt"
    bad.write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n가\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"vocab\.txt: vocab id 0 is '\[PAD\]'"):
        KoBertTokenizer(vocab_file=bad, sp_model_file=kobert_dir / SPM)


# -- finding the files ---------------------------------------------------------------------------
def test_explicit_paths_win(kobert_dir, monkeypatch):
    monkeypatch.setenv(KOBERT_DIR_ENV, "/nonexistent")
    files = find_kobert_files(spm_file=kobert_dir / SPM, vocab_file=kobert_dir / "vocab.txt")
    assert files.spm_file == kobert_dir / SPM


def test_env_dir(kobert_dir, monkeypatch, tmp_path):
    monkeypatch.setenv(KOBERT_DIR_ENV, str(kobert_dir))
    assert find_kobert_files().vocab_file == kobert_dir / "vocab.txt"
    monkeypatch.setenv(KOBERT_DIR_ENV, str(tmp_path))
    with pytest.raises(CheckpointNotFoundError, match=KOBERT_DIR_ENV):
        find_kobert_files()


def test_missing_explicit_file(tmp_path):
    with pytest.raises(CheckpointNotFoundError, match="no such file"):
        find_kobert_files(spm_file=tmp_path / "nope.model", vocab_file=tmp_path / "vocab.txt")


def _fake_hf_cache(root: Path, files: dict[str, Path]) -> None:
    """The on-disk layout huggingface_hub uses: refs/main -> snapshots/<commit>/<file>."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = root / "models--monologg--kobert"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for name, source in files.items():
        (snapshot / name).write_bytes(source.read_bytes())


def _find_in_subprocess(cache: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != KOBERT_DIR_ENV}
    env.update(HF_HUB_CACHE=str(cache), HF_HUB_OFFLINE="1")
    code = ("import json; from ckptkit.tokenizers.resources import find_kobert_files\n"
            "f = find_kobert_files(); print(json.dumps([str(f.spm_file), str(f.vocab_file)]))")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)


def test_hf_cache_offline(kobert_dir, tmp_path):
    cache = tmp_path / "hub"
    _fake_hf_cache(cache, {SPM: kobert_dir / SPM, "vocab.txt": kobert_dir / "vocab.txt"})
    out = _find_in_subprocess(cache)
    assert out.returncode == 0, out.stderr
    spm_file, vocab_file = map(Path, json.loads(out.stdout))
    assert spm_file.name == SPM and cache in spm_file.parents
    assert vocab_file.read_bytes() == (kobert_dir / "vocab.txt").read_bytes()


def test_empty_hf_cache_offline_is_clear_error(tmp_path):
    out = _find_in_subprocess(tmp_path / "empty")
    assert out.returncode != 0
    assert "CheckpointNotFoundError" in out.stderr and "not in the Hugging Face cache" in out.stderr
