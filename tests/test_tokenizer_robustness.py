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
from support.cli import run_cli

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


# -- helpers -------------------------------------------------------------------------------------------
def _cli(capsys, *args: str) -> tuple[int, str, str]:
    return run_cli(list(args), capsys)


def _bert_tf(folder: Path, *, vocab_lines: list[str] | None, vocab_size: int = 64) -> Path:
    from ckptkit.converters.formats.tf1 import write_tf_checkpoint
    from support.bert import bert_tf_config, bert_tf_variables, tiny_wordpiece_vocab

    shape = dict(vocab_size=vocab_size, hidden=16, layers=1, heads=2, intermediate=32, max_positions=32)
    folder.mkdir(parents=True)
    write_tf_checkpoint(str(folder / "model.ckpt-1"), bert_tf_variables(**shape, seed=1))
    (folder / "bert_config.json").write_text(json.dumps(bert_tf_config(**shape)))
    if vocab_lines is not False:
        lines = vocab_lines or tiny_wordpiece_vocab(vocab_size)
        (folder / "vocab.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


TOKENIZER_FILES = {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt", "spiece.model",
                   SPM}


def _tokenizer_files(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()} & TOKENIZER_FILES


# -- item 14: KoBERT's SentencePiece model survives hub -> tf1 -> hub ----------------------------------
def test_kobert_hub_folder_round_trip_keeps_its_tokenizer(kobert_dir, tmp_path):
    from transformers import AutoTokenizer

    from ckptkit.converters.convert import convert_checkpoint
    from ckptkit.tokenizers import KoBertTokenizer, write_tokenizer_files

    vocab = (kobert_dir / "vocab.txt").read_text(encoding="utf-8").splitlines()
    tf = _bert_tf(tmp_path / "tf", vocab_lines=False, vocab_size=len(vocab))
    hub = tmp_path / "hub"  # a KoBERT hub folder: weights + SentencePiece tokenizer files
    convert_checkpoint(str(tf), str(hub))
    write_tokenizer_files(hub, kind="kobert", spm_file=kobert_dir / SPM, vocab_file=kobert_dir / "vocab.txt")
    assert {SPM, "vocab.txt"} <= _tokenizer_files(hub)

    convert_checkpoint(str(hub), str(tmp_path / "tf2"), to="tf1")
    assert (tmp_path / "tf2" / "vocab.model").read_bytes() == (kobert_dir / SPM).read_bytes()
    back = convert_checkpoint(str(tmp_path / "tf2"), str(tmp_path / "hub2"))
    assert back.tokenizer["kind"] == "kobert" and back.hf_config["pad_token_id"] == 1

    original, again = AutoTokenizer.from_pretrained(hub), AutoTokenizer.from_pretrained(tmp_path / "hub2")
    slow = KoBertTokenizer.from_pretrained(tmp_path / "hub2")
    for text in KOREAN:
        ids = original(text)["input_ids"]
        assert again(text)["input_ids"] == ids == slow(text)["input_ids"], text
    assert again(KOREAN[0])["input_ids"] == [2, 4958, 6855, 2046, 7088, 1050, 7843, 54, 3]  # no [UNK]


# -- item 13: a tokenizer problem never blocks the weights --------------------------------------------
BIGBIRD_DIMS = dict(vocab_size=90, hidden=32, layers=1, heads=4, intermediate=64, max_positions=64)


@pytest.fixture(scope="module")
def spm_models(tmp_path_factory) -> dict[str, Path]:
    """SentencePiece models unlike google-research/bigbird's: ``plain`` has <pad> </s> <s> <unk> but no
    [CLS]/[SEP]/[MASK]; ``bare`` has only <unk>; ``corrupt`` is not a model at all."""
    import sentencepiece as spm

    folder = tmp_path_factory.mktemp("spm")
    corpus = [f"the model {w} converts checkpoint number {i} quickly" for i, w in enumerate("abcdefghij" * 20)]
    for name, ids in (("plain", dict(pad_id=0, eos_id=1, bos_id=2, unk_id=3)),
                      ("bare", dict(unk_id=0, bos_id=-1, eos_id=-1, pad_id=-1))):
        spm.SentencePieceTrainer.train(sentence_iterator=iter(corpus), model_prefix=str(folder / name), vocab_size=40,
                                       hard_vocab_limit=False, minloglevel=2, num_threads=1, **ids)
    (folder / "corrupt.model").write_bytes(b"\x08\x96\x01 not a sentencepiece model \xff\xfe")
    return {name: folder / f"{name}.model" for name in ("plain", "bare", "corrupt")}


def _bigbird_tf(folder: Path, spm_file: Path | None, *, vocab_size_in_config: bool = True) -> Path:
    from ckptkit.converters.formats.tf1 import write_tf_checkpoint
    from support.families import bigbird_tf_config, bigbird_tf_variables

    folder.mkdir(parents=True)
    write_tf_checkpoint(str(folder / "model.ckpt-1"), bigbird_tf_variables(**BIGBIRD_DIMS))
    config = bigbird_tf_config(**BIGBIRD_DIMS)
    if not vocab_size_in_config:
        del config["vocab_size"]
    (folder / "pretrain.config").write_text(json.dumps(config))
    if spm_file is not None:
        (folder / "vocab.model").write_bytes(spm_file.read_bytes())
    return folder


def test_bigbird_vocab_without_cls_sep_uses_the_tokens_it_has(spm_models, tmp_path, capsys):
    from transformers import AutoTokenizer

    tf = _bigbird_tf(tmp_path / "tf", spm_models["plain"])
    code, out, err = _cli(capsys, "convert", str(tf), str(tmp_path / "hf"), "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["tokenizer"]["special_tokens"]["cls_token"] == "<s>"
    assert report["tokenizer"]["special_tokens"]["sep_token"] == "</s>"
    assert "vocab.model has no [CLS]: the tokenizer uses <s> as cls_token" in report["warnings"]
    assert "vocab.model has no [SEP]: the tokenizer uses </s> as sep_token" in report["warnings"]
    assert "vocab.model has no [MASK]: the tokenizer has no mask_token" in report["warnings"]
    tok = AutoTokenizer.from_pretrained(tmp_path / "hf")
    ids = tok("the model converts")["input_ids"]
    assert (ids[0], ids[-1], tok.pad_token_id) == (2, 1, 0)
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert (config["pad_token_id"], config["bos_token_id"], config["eos_token_id"], config["sep_token_id"]) == \
        (0, 2, 1, 1)
    code, out, err = _cli(capsys, "convert", str(tf), str(tmp_path / "hf-text"))
    assert code == 0 and "warning: vocab.model has no [CLS]: the tokenizer uses <s> as cls_token" in err


@pytest.mark.parametrize("case, why", [
    ("bare", "vocab.model: SentencePiece model has neither [CLS] nor [SEP] nor <s>/</s>"),
    ("corrupt", "vocab.model: not a SentencePiece model"),
    ("corrupt-no-vocab-size", "vocab.model: not a SentencePiece model"),
    ("bert-not-utf8", "vocab.txt: vocab file is not UTF-8"),
])
def test_tokenizer_failure_is_a_warning_and_the_weights_are_written(spm_models, tmp_path, capsys, case, why):
    if case.startswith("bert"):
        source = _bert_tf(tmp_path / "tf", vocab_lines=None)
        (source / "vocab.txt").write_bytes(b"[PAD]\n[UNK]\n\xff\xfe broken\n")
    else:
        source = _bigbird_tf(tmp_path / "tf", spm_models[case.split("-")[0]],
                             vocab_size_in_config=case != "corrupt-no-vocab-size")
    code, out, err = _cli(capsys, "convert", str(source), str(tmp_path / "hf"), "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["tokenizer"] is None and "model.safetensors" in report["files"]
    assert not _tokenizer_files(tmp_path / "hf")
    warning = next(w for w in report["warnings"] if w.startswith("no tokenizer written"))
    assert why in warning and "--no-tokenizer" in warning


def test_no_tokenizer_option_and_no_vocab(spm_models, tmp_path, capsys):
    tf = _bigbird_tf(tmp_path / "tf", spm_models["corrupt"])
    code, out, err = _cli(capsys, "convert", str(tf), str(tmp_path / "hf"), "--no-tokenizer", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["tokenizer"] is None and not any("tokenizer" in w for w in report["warnings"])
    assert not _tokenizer_files(tmp_path / "hf") and (tmp_path / "hf" / "model.safetensors").is_file()
    code, out, err = _cli(capsys, "convert", str(tmp_path / "hf"), str(tmp_path / "tf2"), "--to", "tf1",
                          "--no-tokenizer")
    assert code == 0, err
    bare = _bert_tf(tmp_path / "bare", vocab_lines=False)  # no vocab at all: nothing tokenizer-related
    code, out, err = _cli(capsys, "convert", str(bare), str(tmp_path / "bare-hf"))
    assert code == 0 and "warning: no vocab.txt / SentencePiece model found" in err
    assert not _tokenizer_files(tmp_path / "bare-hf")


# -- item 14: distill train keeps every tokenizer file of its student -------------------------------------
def test_distill_train_output_keeps_the_students_tokenizer_files(kobert_dir, tmp_path):
    import torch
    from transformers import BertConfig, BertForMaskedLM

    from ckptkit.distill.student import build_student
    from ckptkit.distill.train import train_student
    from ckptkit.errors import UsageError
    from ckptkit.tokenizers import KoBertTokenizer, write_tokenizer_files

    torch.manual_seed(0)
    config = BertConfig(vocab_size=8002, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=40, pad_token_id=1)
    teacher = tmp_path / "teacher"
    BertForMaskedLM(config).save_pretrained(teacher)
    write_tokenizer_files(teacher, kind="kobert", spm_file=kobert_dir / SPM, vocab_file=kobert_dir / "vocab.txt")
    student = tmp_path / "student"
    build_student(str(teacher), str(student), layers=[0], arch="same")
    had = {p.name: p.read_bytes() for p in student.iterdir() if p.name in TOKENIZER_FILES}
    assert {SPM, "vocab.txt", "tokenizer.json"} <= set(had)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(KOREAN * 8) + "\n", encoding="utf-8")
    args = {"max_steps": 1, "per_device_train_batch_size": 4, "use_cpu": True, "save_steps": 1000,
            "report_to": "none"}
    report = train_student(student=student, train_files=[corpus], output_dir=tmp_path / "out", max_seq_length=32,
                           quiet=True, print_lines=False, training_args=args)
    out = tmp_path / "out"
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.name in TOKENIZER_FILES} == had
    assert sorted(report.tokenizer_files) == sorted(had)
    tok = KoBertTokenizer.from_pretrained(out)
    assert tok(KOREAN[0])["input_ids"] == [2, 4958, 6855, 2046, 7088, 1050, 7843, 54, 3]

    bare = tmp_path / "bare-teacher"  # no vocab at all: refused before training, not an empty tokenizer
    BertForMaskedLM(config).save_pretrained(bare)
    with pytest.raises(UsageError, match="no tokenizer files"):
        train_student(student=student, teacher=bare, train_files=[corpus], output_dir=tmp_path / "out2",
                      quiet=True, print_lines=False, training_args=args)


# -- item 13: --dry-run runs every check of the real run and lists the other files ----------------------
def _is_weights(name: str) -> bool:
    return Path(name).name.startswith(("model.", "model-", "pytorch_model"))


@pytest.fixture(scope="module")
def sources(tmp_path_factory, spm_models, kobert_dir) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("sources")
    vocab = (kobert_dir / "vocab.txt").read_text(encoding="utf-8").splitlines()
    kobert = _bert_tf(root / "kobert", vocab_lines=vocab, vocab_size=len(vocab))
    (kobert / "vocab.model").write_bytes((kobert_dir / SPM).read_bytes())
    return {"bert": _bert_tf(root / "bert", vocab_lines=None), "kobert": kobert,
            "bigbird": _bigbird_tf(root / "bigbird", spm_models["plain"]),
            "bigbird-bad-spm": _bigbird_tf(root / "bigbird-bad", spm_models["corrupt"])}


@pytest.mark.parametrize("name, extra", [("bert", []), ("kobert", []), ("bigbird", []), ("bigbird-bad-spm", []),
                                         ("bert", ["--no-tokenizer"]), ("bert", ["--format", "pytorch"]),
                                         ("kobert", ["--to-tf1-and-back"])])
def test_dry_run_lists_the_files_the_run_writes(sources, tmp_path, capsys, name, extra):
    source = sources[name]
    if extra == ["--to-tf1-and-back"]:  # hub folder -> tf1: config, checkpoint state, vocab.txt and vocab.model
        code, _, err = _cli(capsys, "convert", str(source), str(tmp_path / "hub"))
        assert code == 0, err
        source, extra = tmp_path / "hub", ["--to", "tf1"]
    code, out, err = _cli(capsys, "convert", str(source), str(tmp_path / "dry"), "--dry-run", "--json", *extra)
    assert code == 0, err
    planned = json.loads(out)
    assert planned["dry_run"] is True and not (tmp_path / "dry").exists()
    code, out, err = _cli(capsys, "convert", str(source), str(tmp_path / "dry"), "--json", *extra)
    assert code == 0, err
    written = json.loads(out)
    assert planned["files"] == sorted(f for f in written["files"] if not _is_weights(f))
    assert planned["warnings"] == written["warnings"]


def _real_and_dry(capsys, *args: str) -> tuple[tuple[int, str], tuple[int, str]]:
    real = _cli(capsys, "convert", *args)
    dry = _cli(capsys, "convert", *args, "--dry-run")
    return (real[0], real[2].strip()), (dry[0], dry[2].strip())


def test_dry_run_fails_exactly_where_the_run_fails(sources, tmp_path, capsys):
    bert = sources["bert"]
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "notes.txt").write_text("not ckptkit's")
    bad_config = tmp_path / "bad_config.json"
    bad_config.write_text(json.dumps({**json.loads((bert / "bert_config.json").read_text()),
                                      "num_attention_heads": "abc"}))
    cases = {"exists": [str(bert), str(taken)],
             "not ckptkit's, --overwrite": [str(bert), str(taken), "--overwrite"],
             "is the source": [str(bert), str(bert)],
             "bad --max-shard-size": [str(bert), str(tmp_path / "o1"), "--max-shard-size", "2 lightyears"],
             "bad config": [str(bert), str(tmp_path / "o2"), "--config", str(bad_config)],
             "missing --spm": [str(bert), str(tmp_path / "o3"), "--spm", str(tmp_path / "nope.model")]}
    for case, args in cases.items():
        real, dry = _real_and_dry(capsys, *args)
        assert real[0] == 2 and real[1].startswith("ckptkit: error:"), (case, real)
        assert dry == real, case
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad_config.json", "taken"]


def test_no_tokenizer_between_pytorch_formats_and_a_bigbird_tf_teacher_with_two_vocabs(sources, tmp_path, capsys):
    from ckptkit.distill.student import build_student
    from ckptkit.tokenizers.files import tokenizer_files

    code, _, err = _cli(capsys, "convert", str(sources["bert"]), str(tmp_path / "hub"))
    assert code == 0, err
    code, out, err = _cli(capsys, "convert", str(tmp_path / "hub"), str(tmp_path / "pt"), "--to", "pytorch",
                          "--no-tokenizer", "--json")
    assert code == 0, err
    assert tokenizer_files(tmp_path / "pt") == [] and "pytorch_model.bin" in json.loads(out)["files"]
    teacher = tmp_path / "bigbird"  # a vocab.txt beside BigBird's vocab.model: the SentencePiece model wins
    teacher.mkdir()
    for path in sources["bigbird"].iterdir():
        (teacher / path.name).write_bytes(path.read_bytes())
    (teacher / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nthe\n")
    report = build_student(str(teacher), str(tmp_path / "student"), layers=[0], arch="same")
    assert report.tokenizer_files and (tmp_path / "student" / "spiece.model").is_file()
