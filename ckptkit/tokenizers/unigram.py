"""Unigram fast tokenizers over SentencePiece models: KoBERT's (ids from its ``vocab.txt``), BigBird's and ALBERT's.

The normalizer, pre-tokenizer and decoder reproduce SentencePiece's own (:func:`_spm_pipeline`).

Example:
    >>> BIGBIRD_SPECIALS["cls_token"], SPIECE_UNDERLINE
    ('[CLS]', '▁')
"""

from __future__ import annotations

import os
from pathlib import Path

from ckptkit.errors import CheckpointNotFoundError, ConfigError
from ckptkit.tokenizers.resources import kobert_config, read_vocab_txt
from ckptkit.tokenizers.template import finish_tokenizer

__all__ = ["SPIECE_UNDERLINE", "BIGBIRD_SPECIALS", "BIGBIRD_FALLBACKS", "ALBERT_SPECIALS", "read_spm",
           "build_kobert_tokenizer", "build_bigbird_tokenizer", "bigbird_specials", "build_albert_tokenizer",
           "is_albert_spm"]

SPIECE_UNDERLINE = "▁"
# BigBird (google-research/bigbird vocab.model): <pad>=0 </s>=1 <s>=2, [CLS]/[SEP]/[MASK] as pieces.
BIGBIRD_SPECIALS = {"pad_token": "<pad>", "eos_token": "</s>", "bos_token": "<s>", "unk_token": "<unk>",
                    "cls_token": "[CLS]", "sep_token": "[SEP]", "mask_token": "[MASK]"}
# What a SentencePiece model without some of those pieces uses instead, in order of preference
# (<s>/</s> frame sequences as RoBERTa does); a role with no candidate in the model is left out.
BIGBIRD_FALLBACKS = {"cls_token": ("[CLS]", "<s>"), "sep_token": ("[SEP]", "</s>"), "mask_token": ("[MASK]", "<mask>"),
                     "pad_token": ("<pad>",), "eos_token": ("</s>",), "bos_token": ("<s>",)}
_TEMPLATE_ROLES = ("cls_token", "sep_token")  # a tokenizer cannot be built without these
# ALBERT (google-research/albert 30k-clean.model): <pad>=0 <unk>=1 [CLS]=2 [SEP]=3 [MASK]=4; [CLS]/[SEP] also
# begin/end a sequence (transformers' AlbertTokenizer bos/eos).
ALBERT_SPECIALS = {"pad_token": "<pad>", "unk_token": "<unk>", "cls_token": "[CLS]", "sep_token": "[SEP]",
                   "mask_token": "[MASK]", "bos_token": "[CLS]", "eos_token": "[SEP]"}


def read_spm(path: str | os.PathLike):
    """The SentencePiece ``ModelProto`` of ``path`` (unigram only), with one-line errors."""
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


def _spm_pipeline(tok, proto, *, lowercase: bool, before: tuple = ()) -> None:
    """Give ``tok`` the normalizer, pre-tokenizer and decoder that reproduce SentencePiece (``before``:
    normalizers the model's own code applies to the text first)."""
    from tokenizers import Regex, decoders, normalizers, pre_tokenizers

    spec = proto.normalizer_spec
    steps = list(before)
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

    proto = read_spm(spm_file)
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
    finish_tokenizer(tok, specials)
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

    proto = read_spm(spm_file)
    specials, _ = bigbird_specials(proto, path=spm_file)
    unk_id = next(i for i, p in enumerate(proto.pieces) if p.type == 2)
    floor = min((p.score for p in proto.pieces if p.type == 1), default=0.0) - 100.0
    vocab = [(p.piece, p.score if p.type in (1, 4) else (0.0 if p.type == 2 else floor)) for p in proto.pieces]
    tok = Tokenizer(Unigram(vocab, unk_id=unk_id, byte_fallback=False))
    _spm_pipeline(tok, proto, lowercase=do_lower_case)
    finish_tokenizer(tok, specials, lstrip=frozenset({"mask_token"}))
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


def is_albert_spm(path: str | os.PathLike) -> bool:
    """Whether a SentencePiece model has ALBERT's layout: ``<pad> <unk> [CLS] [SEP] [MASK]`` as its first pieces
    (BigBird's starts ``<pad> </s> <s>``)."""
    pieces = [p.piece for p in read_spm(path).pieces[:5]]
    return pieces == [ALBERT_SPECIALS[r] for r in ("pad_token", "unk_token", "cls_token", "sep_token", "mask_token")]


def build_albert_tokenizer(*, spm_file: str | os.PathLike, do_lower_case: bool = True, keep_accents: bool = False):
    """ALBERT's fast tokenizer: Unigram over the SentencePiece ids, the text prepared as google-research/albert's
    ``tokenization.preprocess_text`` does (quotes, accents stripped unless ``keep_accents``, lower case).

    Example:
        >>> tok = build_albert_tokenizer(spm_file="albert_base/30k-clean.model")  # doctest: +SKIP
        >>> tok.encode("Hello world").tokens[0]  # doctest: +SKIP
        '[CLS]'
    """
    from tokenizers import Tokenizer, normalizers
    from tokenizers.models import Unigram

    proto = read_spm(spm_file)
    pieces = {p.piece for p in proto.pieces}
    missing = sorted({c for c in ALBERT_SPECIALS.values() if c not in pieces})
    if missing:
        raise ConfigError(f"SentencePiece model lacks ALBERT's special piece(s) {', '.join(missing)}", path=spm_file,
                          hint="ALBERT's 30k-clean.model has <pad> <unk> [CLS] [SEP] [MASK]")
    unk_id = next(i for i, p in enumerate(proto.pieces) if p.piece == ALBERT_SPECIALS["unk_token"])
    floor = min((p.score for p in proto.pieces if p.type == 1), default=0.0) - 100.0
    vocab = [(p.piece, p.score if p.type in (1, 4) else (0.0 if p.type == 2 else floor)) for p in proto.pieces]
    tok = Tokenizer(Unigram(vocab, unk_id=unk_id, byte_fallback=False))
    before = [normalizers.Replace("``", '"'), normalizers.Replace("''", '"')]
    if not keep_accents:
        before += [normalizers.NFKD(), normalizers.StripAccents()]
    if do_lower_case:
        before.append(normalizers.Lowercase())
    _spm_pipeline(tok, proto, lowercase=False, before=tuple(before))
    finish_tokenizer(tok, {k: v for k, v in ALBERT_SPECIALS.items() if k not in ("bos_token", "eos_token")},
                     lstrip=frozenset({"mask_token"}))
    return tok
