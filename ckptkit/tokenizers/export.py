"""Write fast-tokenizer folders (``tokenizer.json`` + configs) that ``AutoTokenizer`` loads as is.

Three kinds, one table (``_KINDS``): ``bert`` (WordPiece ``vocab.txt``), ``kobert`` (SentencePiece
model + KoBERT ``vocab.txt``) and ``bigbird`` (a google-research/bigbird SentencePiece ``vocab.model``).
Every ``tokenizer.json`` is built here with the ``tokenizers`` library; nothing needs
``trust_remote_code``.

Example:
    >>> info = write_tokenizer_files("out/kobert", kind="kobert",
    ...                              spm_file="../shared/kobert/tokenizer_78b3253a26.model",
    ...                              vocab_file="../shared/kobert/vocab.txt")  # doctest: +SKIP
    >>> info.tokenizer_class, info.pad_token_id  # doctest: +SKIP
    ('PreTrainedTokenizerFast', 1)
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from ckptkit.errors import CheckpointNotFoundError, ConfigError, UsageError
from ckptkit.tokenizers.resources import find_kobert_files, kobert_config, read_vocab_txt

__all__ = ["TokenizerInfo", "write_tokenizer_files", "detect_tokenizer_kind", "build_kobert_tokenizer",
           "build_bert_tokenizer", "build_bigbird_tokenizer", "TOKENIZER_KINDS"]

SPIECE_UNDERLINE = "▁"
BERT_SPECIALS = {"unk_token": "[UNK]", "pad_token": "[PAD]", "cls_token": "[CLS]", "sep_token": "[SEP]",
                 "mask_token": "[MASK]"}
# BigBird (google-research/bigbird vocab.model): <pad>=0 </s>=1 <s>=2, [CLS]/[SEP]/[MASK] as pieces.
BIGBIRD_SPECIALS = {"pad_token": "<pad>", "eos_token": "</s>", "bos_token": "<s>", "unk_token": "<unk>",
                    "cls_token": "[CLS]", "sep_token": "[SEP]", "mask_token": "[MASK]"}
_SINGLE, _PAIR = "{cls}:0 $A:0 {sep}:0", "{cls}:0 $A:0 {sep}:0 $B:1 {sep}:1"


@dataclass(frozen=True)
class TokenizerInfo:
    """What a written tokenizer folder holds; the ids go into the model's config.json.

    Example:
        >>> TokenizerInfo(kind="bert", tokenizer_class="BertTokenizerFast", vocab_size=30522,
        ...               pad_token_id=0, cls_token_id=101, sep_token_id=102, mask_token_id=103,
        ...               unk_token_id=100, do_lower_case=True).pad_token_id
        0
    """

    kind: str
    tokenizer_class: str
    vocab_size: int
    pad_token_id: int
    cls_token_id: int
    sep_token_id: int
    mask_token_id: int
    unk_token_id: int
    do_lower_case: bool
    files: tuple[str, ...] = ()
    bos_token_id: int | None = None
    eos_token_id: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Built:
    """A tokenizer ready to write: the backend, its config and the data files to copy beside it."""

    tokenizer: Any  # tokenizers.Tokenizer
    tokenizer_class: str
    specials: dict[str, str]
    do_lower_case: bool
    model_input_names: list[str]
    copies: dict[str, Path] = field(default_factory=dict)


# -- SentencePiece helpers -------------------------------------------------------------------------
def _read_spm(path: str | os.PathLike):
    from sentencepiece import sentencepiece_model_pb2

    proto = sentencepiece_model_pb2.ModelProto()
    try:
        proto.ParseFromString(Path(path).read_bytes())
    except FileNotFoundError as e:
        raise CheckpointNotFoundError("no such SentencePiece model", path=path) from e
    except Exception as e:  # protobuf raises DecodeError, a plain Exception subclass
        raise ConfigError(f"not a SentencePiece model ({e})", path=path,
                          hint="pass the .model file written by spm_train") from e
    if not proto.pieces:
        raise ConfigError("SentencePiece model has no pieces", path=path, hint="pass the .model file")
    if proto.trainer_spec.model_type not in (0, 1):  # UNIGRAM (default 0 in old protos) only
        raise ConfigError("only unigram SentencePiece models are supported", path=path,
                          hint="BPE/char/word models need a different fast tokenizer")
    return proto


def _spm_pipeline(tok, proto, *, lowercase: bool) -> None:
    """Give ``tok`` the normalizer, pre-tokenizer and decoder that reproduce SentencePiece."""
    from tokenizers import Regex, decoders, normalizers, pre_tokenizers

    spec = proto.normalizer_spec
    steps = []
    if spec.precompiled_charsmap:
        # Precompiled maps one grapheme at a time; SentencePiece matches longest prefixes across
        # graphemes, so it also composes sequences such as compatibility jamo "ㅋㅠ" -> "큐".
        # NFC after the per-grapheme NFKC map gives the same composed text.
        steps += [normalizers.Precompiled(spec.precompiled_charsmap), normalizers.NFC()]
    if lowercase:
        steps.append(normalizers.Lowercase())
    if spec.remove_extra_whitespaces or not spec.HasField("remove_extra_whitespaces"):
        steps += [normalizers.Strip(left=True, right=True), normalizers.Replace(Regex(" {2,}"), " ")]
    tok.normalizer = normalizers.Sequence(steps)
    prepend = "always" if (spec.add_dummy_prefix or not spec.HasField("add_dummy_prefix")) else "never"
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement=SPIECE_UNDERLINE, prepend_scheme=prepend, split=True)
    tok.decoder = decoders.Metaspace(replacement=SPIECE_UNDERLINE, prepend_scheme=prepend, split=True)


def _finish(tok, specials: dict[str, str], *, lstrip: frozenset[str] = frozenset()) -> None:
    """Register the special tokens as added tokens and add the [CLS]/[SEP] template."""
    from tokenizers import AddedToken, processors

    tok.add_special_tokens([AddedToken(content, special=True, normalized=False, lstrip=name in lstrip)
                            for name, content in specials.items()])
    cls, sep = specials["cls_token"], specials["sep_token"]
    tok.post_processor = processors.TemplateProcessing(
        single=_SINGLE.format(cls=cls, sep=sep), pair=_PAIR.format(cls=cls, sep=sep),
        special_tokens=[(cls, tok.token_to_id(cls)), (sep, tok.token_to_id(sep))])


def _require(tokens: dict[str, int], specials: dict[str, str], path: Path, hint: str) -> None:
    missing = [content for content in specials.values() if content not in tokens]
    if missing:
        raise ConfigError(f"vocabulary lacks special token(s) {', '.join(missing)}", path=path, hint=hint)


# -- builders --------------------------------------------------------------------------------------
def build_kobert_tokenizer(*, spm_file: str | os.PathLike, vocab_file: str | os.PathLike,
                           do_lower_case: bool = False):
    """The KoBERT fast tokenizer: Unigram over vocab.txt ids with the SentencePiece scores.

    Example:
        >>> tok = build_kobert_tokenizer(spm_file="../shared/kobert/tokenizer_78b3253a26.model",
        ...                              vocab_file="../shared/kobert/vocab.txt")  # doctest: +SKIP
        >>> tok.encode("[CLS] 한국어 [SEP]", add_special_tokens=False).ids  # doctest: +SKIP
        [2, 4958, 6855, 3]
    """
    from tokenizers import Tokenizer
    from tokenizers.models import Unigram

    proto = _read_spm(spm_file)
    tokens = read_vocab_txt(vocab_file)
    specials = {name: spec["content"] for name, spec in kobert_config()["special_tokens"].items()}
    for name, spec in kobert_config()["special_tokens"].items():
        if spec["id"] >= len(tokens) or tokens[spec["id"]] != spec["content"]:
            raise ConfigError(f"vocab id {spec['id']} should be {spec['content']} ({name})", path=vocab_file,
                              hint="a KoBERT vocab.txt starts [UNK] [PAD] [CLS] [SEP] [MASK]")
    scores = {p.piece: p.score for p in proto.pieces if p.type == 1}  # NORMAL pieces only
    absent = [t for t in tokens if t not in scores and t not in specials.values()]
    if len(absent) > len(tokens) // 10:
        raise ConfigError(f"{len(absent)} vocab.txt entries are not pieces of {Path(spm_file).name}",
                          path=vocab_file, hint="pass the vocab.txt made for this SentencePiece model")
    # Entries that are not pieces can only be reached through [UNK] in SentencePiece; a score far below
    # every piece keeps Unigram from choosing them.
    floor = min(scores.values(), default=0.0) - 100.0
    vocab = [(t, scores.get(t, 0.0 if t in specials.values() else floor)) for t in tokens]
    tok = Tokenizer(Unigram(vocab, unk_id=kobert_config()["special_tokens"]["unk_token"]["id"],
                            byte_fallback=False))
    _spm_pipeline(tok, proto, lowercase=do_lower_case)
    _finish(tok, specials)
    return tok


def build_bigbird_tokenizer(*, spm_file: str | os.PathLike, do_lower_case: bool = False):
    """The BigBird fast tokenizer: Unigram over the SentencePiece ids, [CLS] A [SEP] B [SEP].

    Example:
        >>> tok = build_bigbird_tokenizer(spm_file="bigbird/vocab.model")  # doctest: +SKIP
        >>> tok.token_to_id("<pad>"), tok.token_to_id("</s>"), tok.token_to_id("<s>")  # doctest: +SKIP
        (0, 1, 2)
    """
    from tokenizers import Tokenizer
    from tokenizers.models import Unigram

    proto = _read_spm(spm_file)
    pieces = {p.piece: i for i, p in enumerate(proto.pieces)}
    unk_id = next((i for i, p in enumerate(proto.pieces) if p.type == 2), None)
    if unk_id is None:
        raise ConfigError("SentencePiece model has no <unk> piece", path=spm_file, hint="retrain with unk_id set")
    specials = {**BIGBIRD_SPECIALS, "unk_token": proto.pieces[unk_id].piece}
    _require(pieces, specials, Path(spm_file),
             "BigBird's vocab.model has <pad> </s> <s> <unk> [CLS] [SEP] [MASK] as pieces "
             "(spm_train --pad_id=0 --eos_id=1 --bos_id=2 --user_defined_symbols=[CLS],[SEP],[MASK])")
    floor = min((p.score for p in proto.pieces if p.type == 1), default=0.0) - 100.0
    vocab = [(p.piece, p.score if p.type in (1, 4) else (0.0 if p.type == 2 else floor)) for p in proto.pieces]
    tok = Tokenizer(Unigram(vocab, unk_id=unk_id, byte_fallback=False))
    _spm_pipeline(tok, proto, lowercase=do_lower_case)
    _finish(tok, specials, lstrip=frozenset({"mask_token"}))
    return tok


def build_bert_tokenizer(*, vocab_file: str | os.PathLike, do_lower_case: bool):
    """The BERT WordPiece fast tokenizer of a Google ``vocab.txt``.

    Example:
        >>> tok = build_bert_tokenizer(vocab_file="uncased_L-2_H-128_A-2/vocab.txt",
        ...                            do_lower_case=True)  # doctest: +SKIP
        >>> tok.encode("Hello").tokens  # doctest: +SKIP
        ['[CLS]', 'hello', '[SEP]']
    """
    from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers
    from tokenizers.models import WordPiece

    tokens = read_vocab_txt(vocab_file)
    ids = {t: i for i, t in enumerate(tokens)}
    _require(ids, BERT_SPECIALS, Path(vocab_file), "a BERT vocab.txt has [UNK] [PAD] [CLS] [SEP] [MASK]")
    tok = Tokenizer(WordPiece(ids, unk_token=BERT_SPECIALS["unk_token"], max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=None,
                                                lowercase=do_lower_case)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece(prefix="##")
    _finish(tok, BERT_SPECIALS)
    return tok


_BRACKETED = re.compile(r"^\[[^\]]+\]$|^<[^>]+>$")


def _infer_lower_case(vocab_file: Path) -> bool:
    """Lower-case unless some word piece (not ``[unused0]``-like) has an upper-case letter."""
    return not any(t.removeprefix("##") != t.removeprefix("##").lower()
                   for t in read_vocab_txt(vocab_file) if not _BRACKETED.match(t))


def _need(path: str | os.PathLike | None, what: str, kind: str) -> Path:
    if path is None:
        raise UsageError(f"kind={kind!r} needs {what}", hint=f"pass {what}=PATH")
    found = Path(path)
    if not found.is_file():
        raise CheckpointNotFoundError(f"no such {what}", path=found, hint=f"pass an existing {what}")
    return found


def _bert(vocab_file, spm_file, do_lower_case) -> _Built:
    vocab = _need(vocab_file, "vocab_file", "bert")
    lower = _infer_lower_case(vocab) if do_lower_case is None else do_lower_case
    return _Built(build_bert_tokenizer(vocab_file=vocab, do_lower_case=lower), "BertTokenizerFast",
                  BERT_SPECIALS, lower, ["input_ids", "token_type_ids", "attention_mask"], {"vocab.txt": vocab})


def _kobert(vocab_file, spm_file, do_lower_case) -> _Built:
    files = find_kobert_files(spm_file=spm_file, vocab_file=vocab_file)
    config = kobert_config()
    lower = config["do_lower_case"] if do_lower_case is None else do_lower_case
    tok = build_kobert_tokenizer(spm_file=files.spm_file, vocab_file=files.vocab_file, do_lower_case=lower)
    specials = {name: spec["content"] for name, spec in config["special_tokens"].items()}
    return _Built(tok, "PreTrainedTokenizerFast", specials, lower, list(config["model_input_names"]),
                  {config["vocab_filename"]: files.vocab_file, config["sp_model_filename"]: files.spm_file})


def _bigbird(vocab_file, spm_file, do_lower_case) -> _Built:
    spm = _need(spm_file, "spm_file", "bigbird")
    lower = bool(do_lower_case)
    tok = build_bigbird_tokenizer(spm_file=spm, do_lower_case=lower)
    return _Built(tok, "PreTrainedTokenizerFast", dict(BIGBIRD_SPECIALS, unk_token=tok.id_to_token(
        next(i for i, p in enumerate(_read_spm(spm).pieces) if p.type == 2))), lower,
        ["input_ids", "attention_mask"], {"spiece.model": spm})


# kind -> builder(vocab_file, spm_file, do_lower_case)
_KINDS: dict[str, Callable[..., _Built]] = {"bert": _bert, "kobert": _kobert, "bigbird": _bigbird}
TOKENIZER_KINDS = tuple(_KINDS)


def _tokenizer_config(built: _Built, model_max_length: int) -> dict[str, Any]:
    tok = built.tokenizer
    added = {str(tok.token_to_id(content)): {"content": content, "lstrip": False, "normalized": False,
                                              "rstrip": False, "single_word": False, "special": True}
             for content in built.specials.values()}
    for entry in tok.get_added_tokens_decoder().values():
        if entry.content in built.specials.values():
            added[str(tok.token_to_id(entry.content))]["lstrip"] = entry.lstrip
    return {"tokenizer_class": built.tokenizer_class, "model_max_length": model_max_length,
            "do_lower_case": built.do_lower_case, "clean_up_tokenization_spaces": False,
            "model_input_names": built.model_input_names, **built.specials,
            "added_tokens_decoder": dict(sorted(added.items(), key=lambda kv: int(kv[0])))}


def _write_atomic(target: Path, data: bytes) -> None:
    """Write ``data`` atomically; the file follows the umask and a full disk is one clean error."""
    from ckptkit.converters.staging import atomic_write

    atomic_write(target, data)


def _json_bytes(document: Any) -> bytes:
    return (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def write_tokenizer_files(out_dir: str | os.PathLike, *, kind: str, vocab_file: str | os.PathLike | None = None,
                          spm_file: str | os.PathLike | None = None, do_lower_case: bool | None = None,
                          model_max_length: int = 512) -> TokenizerInfo:
    """Build a fast tokenizer of ``kind`` and write its folder (each file atomically).

    Args:
        out_dir: folder to write into (created if missing; other files there are left alone).
        kind: ``"bert"``, ``"kobert"`` or ``"bigbird"`` (see :func:`detect_tokenizer_kind`).
        vocab_file: ``vocab.txt`` (bert, kobert).
        spm_file: SentencePiece model (kobert, bigbird). For kobert, missing files are looked up
            like :func:`ckptkit.tokenizers.find_kobert_files` does.
        do_lower_case: None = inferred (bert: no upper-case word pieces => True) or the kind's default.
        model_max_length: written to tokenizer_config.json.

    Returns:
        A :class:`TokenizerInfo` with the special token ids and the file names written.

    Example:
        >>> info = write_tokenizer_files("out", kind="bert", vocab_file="vocab.txt")  # doctest: +SKIP
        >>> from transformers import AutoTokenizer  # doctest: +SKIP
        >>> AutoTokenizer.from_pretrained("out").is_fast  # doctest: +SKIP
        True
    """
    if kind not in _KINDS:
        raise UsageError(f"unknown tokenizer kind {kind!r}", hint=f"use one of {', '.join(_KINDS)}")
    built = _KINDS[kind](vocab_file, spm_file, do_lower_case)  # validates and builds before any write
    tok = built.tokenizer
    documents = {"tokenizer.json": tok.to_str(pretty=True).encode("utf-8"),
                 "tokenizer_config.json": _json_bytes(_tokenizer_config(built, model_max_length)),
                 "special_tokens_map.json": _json_bytes(built.specials)}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, data in documents.items():
        _write_atomic(out / name, data)
    for name, source in built.copies.items():
        target = out / name
        if not (target.exists() and os.path.samefile(source, target)):
            _write_atomic(target, Path(source).read_bytes())
    ids = {name: tok.token_to_id(content) for name, content in built.specials.items()}
    return TokenizerInfo(kind=kind, tokenizer_class=built.tokenizer_class, vocab_size=tok.get_vocab_size(),
                         pad_token_id=ids["pad_token"], cls_token_id=ids["cls_token"],
                         sep_token_id=ids["sep_token"], mask_token_id=ids["mask_token"],
                         unk_token_id=ids["unk_token"], do_lower_case=built.do_lower_case,
                         files=tuple([*documents, *built.copies]), bos_token_id=ids.get("bos_token"),
                         eos_token_id=ids.get("eos_token"))


def _looks_like_kobert_vocab(vocab_file: str | os.PathLike) -> bool:
    first = read_vocab_txt(vocab_file)[:5]
    return first == [spec["content"] for spec in kobert_config()["special_tokens"].values()]


def detect_tokenizer_kind(vocab_file: str | os.PathLike | None = None,
                          spm_file: str | os.PathLike | None = None) -> str:
    """Guess the tokenizer kind from the files a checkpoint ships.

    vocab.txt starting ``[UNK] [PAD] [CLS] [SEP] [MASK]`` + a SentencePiece model => ``kobert``;
    a SentencePiece model alone => ``bigbird``; a vocab.txt alone => ``bert``.

    Example:
        >>> detect_tokenizer_kind(vocab_file="uncased_L-2_H-128_A-2/vocab.txt")  # doctest: +SKIP
        'bert'
    """
    has_vocab, has_spm = vocab_file is not None, spm_file is not None
    if has_vocab and has_spm:
        if _looks_like_kobert_vocab(vocab_file):
            return "kobert"
        raise UsageError("a vocab.txt and a SentencePiece model, but the vocab does not start with "
                         "[UNK] [PAD] [CLS] [SEP] [MASK]", path=vocab_file,
                         hint="pass only the file the tokenizer really uses")
    if has_spm:
        return "bigbird"
    if has_vocab:
        return "bert"
    raise UsageError("no tokenizer files given", hint="pass vocab_file (vocab.txt) and/or spm_file (*.model)")
