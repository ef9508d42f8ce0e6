"""Write fast-tokenizer folders (``tokenizer.json`` + configs) that ``AutoTokenizer`` loads as is.

Four kinds, one table (``_KINDS``): ``bert`` (WordPiece ``vocab.txt``), ``kobert`` (SentencePiece
model + KoBERT ``vocab.txt``), ``bigbird`` (a google-research/bigbird SentencePiece ``vocab.model``) and
``albert`` (a google-research/albert SentencePiece ``30k-clean.model``, written as ``spiece.model``).
Every ``tokenizer.json`` is built with the ``tokenizers`` library (WordPiece in
:mod:`ckptkit.tokenizers.wordpiece`, Unigram over SentencePiece in :mod:`ckptkit.tokenizers.unigram`);
this module chooses the kind and writes the folder. Nothing needs ``trust_remote_code``.

Example:
    >>> info = write_tokenizer_files("out/kobert", kind="kobert",
    ...                              spm_file="../shared/kobert/tokenizer_78b3253a26.model",
    ...                              vocab_file="../shared/kobert/vocab.txt")  # doctest: +SKIP
    >>> info.tokenizer_class, info.pad_token_id  # doctest: +SKIP
    ('PreTrainedTokenizerFast', 1)
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from ckptkit.errors import CheckpointNotFoundError, ConfigError, UsageError
from ckptkit.output.atomic import atomic_write, json_text
from ckptkit.tokenizers.resources import find_kobert_files, kobert_config, read_vocab_txt
from ckptkit.tokenizers.unigram import (ALBERT_SPECIALS, SPIECE_UNDERLINE, bigbird_specials, build_albert_tokenizer,
                                        build_bigbird_tokenizer, build_kobert_tokenizer, is_albert_spm, read_spm)
from ckptkit.tokenizers.wordpiece import BERT_SPECIALS, build_bert_tokenizer, infer_lower_case

__all__ = ["TokenizerInfo", "BuiltTokenizer", "write_tokenizer_files", "detect_tokenizer_kind", "choose_tokenizer",
           "build_tokenizer", "write_built_tokenizer", "build_kobert_tokenizer", "build_bert_tokenizer",
           "build_bigbird_tokenizer", "bigbird_specials", "TOKENIZER_KINDS"]

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
    config: dict[str, Any] = field(default_factory=dict)  # more tokenizer_config.json keys (ALBERT: keep_accents)

    @property
    def files(self) -> tuple[str, ...]:
        """The names :func:`write_built_tokenizer` writes."""
        return (*_DOCUMENTS, *self.copies)

    def token_id(self, role: str) -> int | None:
        content = self.specials.get(role)
        return None if content is None else self.tokenizer.token_to_id(content)


_Built = BuiltTokenizer
_DOCUMENTS = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def _need(path: str | os.PathLike | None, what: str, kind: str) -> Path:
    if path is None:
        raise UsageError(f"kind={kind!r} needs {what}", hint=f"pass {what}=PATH")
    found = Path(path)
    if not found.is_file():
        raise CheckpointNotFoundError(f"no such {what}", path=found, hint=f"pass an existing {what}")
    return found


def _bert(vocab_file, spm_file, do_lower_case, keep_accents=None) -> _Built:
    vocab = _need(vocab_file, "vocab_file", "bert")
    lower = infer_lower_case(vocab) if do_lower_case is None else do_lower_case
    return _Built(build_bert_tokenizer(vocab_file=vocab, do_lower_case=lower), "BertTokenizerFast",
                  BERT_SPECIALS, lower, ["input_ids", "token_type_ids", "attention_mask"], {"vocab.txt": vocab})


def _kobert(vocab_file, spm_file, do_lower_case, keep_accents=None) -> _Built:
    files = find_kobert_files(spm_file=spm_file, vocab_file=vocab_file)
    config = kobert_config()
    lower = config["do_lower_case"] if do_lower_case is None else do_lower_case
    tok = build_kobert_tokenizer(spm_file=files.spm_file, vocab_file=files.vocab_file, do_lower_case=lower)
    specials = {name: spec["content"] for name, spec in config["special_tokens"].items()}
    return _Built(tok, "PreTrainedTokenizerFast", specials, lower, list(config["model_input_names"]),
                  {config["vocab_filename"]: files.vocab_file, config["sp_model_filename"]: files.spm_file})


def _bigbird(vocab_file, spm_file, do_lower_case, keep_accents=None) -> _Built:
    spm = _need(spm_file, "spm_file", "bigbird")
    lower = bool(do_lower_case)
    tok = build_bigbird_tokenizer(spm_file=spm, do_lower_case=lower)
    specials, notes = bigbird_specials(read_spm(spm), path=spm)
    return _Built(tok, "PreTrainedTokenizerFast", specials, lower, ["input_ids", "attention_mask"],
                  {"spiece.model": spm}, notes=notes)


def _albert(vocab_file, spm_file, do_lower_case, keep_accents=None) -> _Built:
    spm = _need(spm_file, "spm_file", "albert")
    lower = True if do_lower_case is None else do_lower_case  # the released ALBERT models are uncased
    accents = bool(keep_accents)
    tok = build_albert_tokenizer(spm_file=spm, do_lower_case=lower, keep_accents=accents)
    return _Built(tok, "AlbertTokenizerFast", dict(ALBERT_SPECIALS), lower,
                  ["input_ids", "token_type_ids", "attention_mask"], {"spiece.model": spm},
                  config={"keep_accents": accents})


def _pegasus(vocab_file, spm_file, do_lower_case, keep_accents=None) -> _Built:
    from ckptkit.tokenizers.pegasus import PEGASUS_CONFIG, build_pegasus_tokenizer

    spm = _need(spm_file, "spm_file", "pegasus")
    tok, specials = build_pegasus_tokenizer(spm_file=spm)
    return _Built(tok, "PegasusTokenizerFast", specials, False, ["input_ids", "attention_mask"],
                  {"spiece.model": spm}, config=dict(PEGASUS_CONFIG))


# kind -> builder(vocab_file, spm_file, do_lower_case, keep_accents)
_KINDS: dict[str, Callable[..., _Built]] = {"bert": _bert, "kobert": _kobert, "bigbird": _bigbird,
                                            "albert": _albert, "pegasus": _pegasus}
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
            "model_input_names": built.model_input_names, **built.config, **built.specials,
            "added_tokens_decoder": dict(sorted(added.items(), key=lambda kv: int(kv[0])))}


def build_tokenizer(kind: str, *, vocab_file: str | os.PathLike | None = None,
                    spm_file: str | os.PathLike | None = None, do_lower_case: bool | None = None,
                    keep_accents: bool | None = None) -> BuiltTokenizer:
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
    built = _KINDS[kind](vocab_file, spm_file, do_lower_case, keep_accents)
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
                 "tokenizer_config.json": json_text(_tokenizer_config(built, model_max_length)),
                 "special_tokens_map.json": json_text(built.specials)}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, data in documents.items():
        atomic_write(out / name, data)
    for name, source in built.copies.items():
        target = out / name
        if not (target.exists() and os.path.samefile(source, target)):
            atomic_write(target, Path(source).read_bytes())
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
    a SentencePiece model alone => ``albert`` when it starts ``<pad> <unk> [CLS] [SEP] [MASK]``, else ``bigbird``;
    a vocab.txt alone => ``bert``.

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
        return "albert" if is_albert_spm(spm_file) else "bigbird"
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
        spm_kind = "albert" if prefer_spm and is_albert_spm(spm_file) else "bigbird"
        return ((spm_kind, None, spm_file) if prefer_spm else ("bert", vocab_file, None)) + ([note],)
    return detect_tokenizer_kind(vocab_file=vocab_file, spm_file=spm_file), vocab_file, spm_file, []
