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

__all__ = ["TokenizerInfo", "BuiltTokenizer", "write_tokenizer_files", "detect_tokenizer_kind", "choose_tokenizer",
           "build_tokenizer", "write_built_tokenizer", "build_kobert_tokenizer", "build_bert_tokenizer",
           "build_bigbird_tokenizer", "bigbird_specials", "TOKENIZER_KINDS"]

SPIECE_UNDERLINE = "▁"
BERT_SPECIALS = {"unk_token": "[UNK]", "pad_token": "[PAD]", "cls_token": "[CLS]", "sep_token": "[SEP]",
                 "mask_token": "[MASK]"}
# BigBird (google-research/bigbird vocab.model): <pad>=0 </s>=1 <s>=2, [CLS]/[SEP]/[MASK] as pieces.
BIGBIRD_SPECIALS = {"pad_token": "<pad>", "eos_token": "</s>", "bos_token": "<s>", "unk_token": "<unk>",
                    "cls_token": "[CLS]", "sep_token": "[SEP]", "mask_token": "[MASK]"}
# What a SentencePiece model without some of those pieces uses instead, in order of preference
# (<s>/</s> frame sequences as RoBERTa does); a role with no candidate in the model is left out.
BIGBIRD_FALLBACKS = {"cls_token": ("[CLS]", "<s>"), "sep_token": ("[SEP]", "</s>"), "mask_token": ("[MASK]", "<mask>"),
                     "pad_token": ("<pad>",), "eos_token": ("</s>",), "bos_token": ("<s>",)}
_TEMPLATE_ROLES = ("cls_token", "sep_token")  # a tokenizer cannot be built without these
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
    pad_token_id: int | None
    cls_token_id: int
    sep_token_id: int
    mask_token_id: int | None
    unk_token_id: int
    do_lower_case: bool
    files: tuple[str, ...] = ()
    bos_token_id: int | None = None
    eos_token_id: int | None = None
    notes: tuple[str, ...] = ()  # special tokens substituted or left out, said in words

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class BuiltTokenizer:
    """A tokenizer built and checked in memory, ready to write: the backend, its config, the data files to
    copy beside it and notes on special tokens it had to substitute (see :func:`build_tokenizer`)."""

    tokenizer: Any  # tokenizers.Tokenizer
    tokenizer_class: str
    specials: dict[str, str]
    do_lower_case: bool
    model_input_names: list[str]
    copies: dict[str, Path] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    kind: str = ""

    @property
    def files(self) -> tuple[str, ...]:
        """The names :func:`write_built_tokenizer` writes."""
        return (*_DOCUMENTS, *self.copies)

    def token_id(self, role: str) -> int | None:
        content = self.specials.get(role)
        return None if content is None else self.tokenizer.token_to_id(content)


_Built = BuiltTokenizer
_DOCUMENTS = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


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
    specials, _ = bigbird_specials(proto, path=spm_file)
    unk_id = next(i for i, p in enumerate(proto.pieces) if p.type == 2)
    floor = min((p.score for p in proto.pieces if p.type == 1), default=0.0) - 100.0
    vocab = [(p.piece, p.score if p.type in (1, 4) else (0.0 if p.type == 2 else floor)) for p in proto.pieces]
    tok = Tokenizer(Unigram(vocab, unk_id=unk_id, byte_fallback=False))
    _spm_pipeline(tok, proto, lowercase=do_lower_case)
    _finish(tok, specials, lstrip=frozenset({"mask_token"}))
    return tok


def bigbird_specials(proto, *, path: str | os.PathLike) -> tuple[dict[str, str], list[str]]:
    """The special tokens of a BigBird SentencePiece model, and notes on those it had to substitute.

    google-research/bigbird's models have ``<pad> </s> <s> <unk> [CLS] [SEP] [MASK]``; a model without
    ``[CLS]``/``[SEP]`` gets ``<s>``/``</s>`` (:data:`BIGBIRD_FALLBACKS`), and roles with no candidate
    are left out. Raises ConfigError when there is no ``<unk>`` or nothing can frame a sequence.

    Example:
        >>> from sentencepiece import sentencepiece_model_pb2 as pb
        >>> proto = pb.ModelProto()
        >>> for text, kind in (("<unk>", 2), ("<s>", 3), ("</s>", 3), ("a", 1)):
        ...     piece = proto.pieces.add(); piece.piece, piece.type = text, kind
        >>> specials, notes = bigbird_specials(proto, path="vocab.model")
        >>> specials["cls_token"], specials["sep_token"], "mask_token" in specials
        ('<s>', '</s>', False)
    """
    pieces = {p.piece for p in proto.pieces}
    unk = next((p.piece for p in proto.pieces if p.type == 2), None)
    if unk is None:
        raise ConfigError("SentencePiece model has no <unk> piece", path=path, hint="retrain with unk_id set")
    specials = {"unk_token": unk}
    for role, candidates in BIGBIRD_FALLBACKS.items():
        found = next((c for c in candidates if c in pieces), None)
        if found is not None:
            specials[role] = found
    missing = [BIGBIRD_FALLBACKS[role][0] for role in _TEMPLATE_ROLES if role not in specials]
    if missing:
        raise ConfigError(f"SentencePiece model has neither {' nor '.join(missing)} nor <s>/</s> to frame a "
                          "sequence", path=path, hint="BigBird's vocab.model has [CLS] [SEP] [MASK] as pieces "
                          "(spm_train --user_defined_symbols=[CLS],[SEP],[MASK])")
    return specials, _substitution_notes(specials, Path(path).name)


def _substitution_notes(specials: dict[str, str], name: str) -> list[str]:
    """Words for each BigBird role that is not the official piece (``[CLS]`` -> ``<s>``, no ``[MASK]``)."""
    notes = []
    for role, candidates in BIGBIRD_FALLBACKS.items():
        if role not in specials and role in ("mask_token", "pad_token"):
            notes.append(f"{name} has no {candidates[0]}: the tokenizer has no {role}")
        elif role in specials and specials[role] != candidates[0]:
            notes.append(f"{name} has no {candidates[0]}: the tokenizer uses {specials[role]} as {role}")
    return notes


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
    specials, notes = bigbird_specials(_read_spm(spm), path=spm)
    return _Built(tok, "PreTrainedTokenizerFast", specials, lower, ["input_ids", "attention_mask"],
                  {"spiece.model": spm}, notes=notes)


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


def build_tokenizer(kind: str, *, vocab_file: str | os.PathLike | None = None,
                    spm_file: str | os.PathLike | None = None, do_lower_case: bool | None = None) -> BuiltTokenizer:
    """Build and check a fast tokenizer of ``kind`` in memory; nothing is written.

    Every problem of the vocab files (missing, unreadable, not a SentencePiece model, special tokens
    missing) is raised here as a :class:`~ckptkit.errors.CkptkitError`, so a caller can decide before
    writing anything (``convert`` turns it into a warning and writes the weights).

    Example:
        >>> built = build_tokenizer("bert", vocab_file="vocab.txt")  # doctest: +SKIP
        >>> built.files  # doctest: +SKIP
        ('tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'vocab.txt')
    """
    if kind not in _KINDS:
        raise UsageError(f"unknown tokenizer kind {kind!r}", hint=f"use one of {', '.join(_KINDS)}")
    built = _KINDS[kind](vocab_file, spm_file, do_lower_case)
    built.kind = kind
    return built


def write_built_tokenizer(out_dir: str | os.PathLike, built: BuiltTokenizer, *,
                          model_max_length: int = 512) -> TokenizerInfo:
    """Write a :func:`build_tokenizer` result into ``out_dir`` (each file atomically).

    Example:
        >>> info = write_built_tokenizer("out", build_tokenizer("bert", vocab_file="vocab.txt"))  # doctest: +SKIP
        >>> info.files[0]  # doctest: +SKIP
        'tokenizer.json'
    """
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
    return TokenizerInfo(kind=built.kind, tokenizer_class=built.tokenizer_class, vocab_size=tok.get_vocab_size(),
                         pad_token_id=built.token_id("pad_token"), cls_token_id=built.token_id("cls_token"),
                         sep_token_id=built.token_id("sep_token"), mask_token_id=built.token_id("mask_token"),
                         unk_token_id=built.token_id("unk_token"), do_lower_case=built.do_lower_case,
                         files=built.files, bos_token_id=built.token_id("bos_token"),
                         eos_token_id=built.token_id("eos_token"), notes=tuple(built.notes))


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
    built = build_tokenizer(kind, vocab_file=vocab_file, spm_file=spm_file, do_lower_case=do_lower_case)
    return write_built_tokenizer(out_dir, built, model_max_length=model_max_length)


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


def _is_sentencepiece_vocab(vocab_file: str | os.PathLike) -> bool:
    """A vocab.txt whose entries are mostly SentencePiece pieces (KoBERT's), not WordPiece ones."""
    tokens = read_vocab_txt(vocab_file)
    return sum(t.startswith(SPIECE_UNDERLINE) for t in tokens) > len(tokens) // 10


def choose_tokenizer(vocab_file: str | os.PathLike | None, spm_file: str | os.PathLike | None, *,
                     prefer_spm: bool = False) -> tuple[str, str | None, str | None, list[str]]:
    """Which kind and files to build from what a checkpoint ships, never refusing a combination.

    Like :func:`detect_tokenizer_kind`, but a vocab.txt beside a SentencePiece model that is not KoBERT's
    keeps the one the family uses (``prefer_spm``: BigBird) and ignores the other, with a note.

    Returns:
        ``(kind, vocab_file, spm_file, notes)``; the file not used is None.

    Example:
        >>> choose_tokenizer("bert/vocab.txt", None)  # doctest: +SKIP
        ('bert', 'bert/vocab.txt', None, [])
    """
    if vocab_file is not None and spm_file is None and _is_sentencepiece_vocab(vocab_file):
        raise ConfigError("vocab.txt lists SentencePiece pieces (▁...) but no SentencePiece model was found; "
                          "as WordPiece it would turn most words into [UNK]", path=vocab_file,
                          hint="pass the .model file with --spm")
    if vocab_file is not None and spm_file is not None and not _looks_like_kobert_vocab(vocab_file):
        used, ignored = (spm_file, vocab_file) if prefer_spm else (vocab_file, spm_file)
        note = f"{Path(ignored).name} ignored: the tokenizer is built from {Path(used).name}"
        return (("bigbird", None, spm_file) if prefer_spm else ("bert", vocab_file, None)) + ([note],)
    return detect_tokenizer_kind(vocab_file=vocab_file, spm_file=spm_file), vocab_file, spm_file, []
