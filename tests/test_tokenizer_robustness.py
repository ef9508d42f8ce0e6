"""Issue 12 items 13, 14 and 18: tokenizer problems never block weights, SentencePiece survives round
trips, students keep their tokenizer files, and the KoBERT tokenizer is strict and offline-first."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ckptkit.tokenizers.resources import KOBERT_DIR_ENV

SPM = "tokenizer_78b3253a26.model"
KOREAN = ["한국어 모델을 공유합니다.", "오늘 날씨가 정말 좋네요! 산책하러 갈까요?", "서울특별시 강남구 테헤란로 123",
          "ㅋㅋㅋ 진짜 웃기다 ㅠㅠ", "KoBERT는 SKT에서 공개한 BERT 모델입니다."]
REPO = Path(__file__).resolve().parent.parent


# -- item 18: KoBertTokenizer keywords and offline loading ------------------------------------------
def test_kobert_rejects_unknown_keywords_but_loads_what_transformers_passes(kobert_dir, tmp_path):
    """Typos are refused; save_pretrained -> from_pretrained (added_tokens_decoder, name_or_path, is_local,
    backend, keys of other tools in tokenizer_config.json) still loads."""
    from ckptkit.errors import CkptkitError
    from ckptkit.tokenizers import KoBertTokenizer

    files = dict(vocab_file=kobert_dir / "vocab.txt", sp_model_file=kobert_dir / SPM)
    with pytest.raises(TypeError, match="unexpected keyword argument.*'do_lowercase'") as caught:
        KoBertTokenizer(**files, do_lowercase=True)
    assert isinstance(caught.value, CkptkitError)
    with pytest.raises(TypeError, match="'vocab'"):
        KoBertTokenizer.from_pretrained(kobert_dir, vocab=kobert_dir / "vocab.txt")
    tok = KoBertTokenizer(**files, model_max_length=128, padding_side="left", mask_token="[MASK]")
    assert tok.model_max_length == 128 and tok.padding_side == "left"
    tok.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "tokenizer_config.json").read_text())
    config["some_other_tools_key"] = 1  # tokenizer_config.json written by other tools may hold anything
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(config))
    again = KoBertTokenizer.from_pretrained(tmp_path, model_max_length=64, cache_dir=str(tmp_path / "c"))
    assert again(KOREAN[0])["input_ids"] == tok(KOREAN[0])["input_ids"] and again.model_max_length == 64


_NO_NETWORK = """
import json, socket, time
attempts = []
def refuse(*args, **kwargs):
    attempts.append(repr(args[:2]))
    raise OSError("network disabled by the test")
socket.getaddrinfo = socket.create_connection = refuse
socket.socket.connect = socket.socket.connect_ex = refuse
from ckptkit.tokenizers import KoBertTokenizer
started = time.perf_counter()
tok = KoBertTokenizer.from_pretrained("monologg/kobert")
print(json.dumps({"seconds": time.perf_counter() - started, "attempts": attempts,
                  "ids": tok("한국어 모델을 공유합니다.")["input_ids"]}))
"""


def test_kobert_env_folder_wins_without_network(kobert_dir, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env.update({KOBERT_DIR_ENV: str(kobert_dir), "HF_HOME": str(tmp_path / "hf-home"),
                "HF_HUB_ETAG_TIMEOUT": "1", "HF_HUB_DOWNLOAD_TIMEOUT": "1"})
    done = subprocess.run([sys.executable, "-c", _NO_NETWORK], capture_output=True, text=True, env=env,
                          timeout=60, cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["attempts"] == [] and report["seconds"] < 2
    assert report["ids"] == [2, 4958, 6855, 2046, 7088, 1050, 7843, 54, 3]
