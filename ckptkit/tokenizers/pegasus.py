"""The BigBird-Pegasus fast tokenizer (``PegasusTokenizerFast``) over google-research/bigbird's ``pegasus.model``.

BigBird's Pegasus SentencePiece model already holds Pegasus's 103 reserved ids as pieces (``<pad>`` 0, ``</s>`` 1,
``<s>`` 2, ``<sep_0>`` ... ``<unused_103>``, then ``<unk>`` 105, ``<n>`` 106, ...): the official code uses the
SentencePiece ids as they are (``tft.SentencepieceTokenizer``), so the tokenizer written here has offset 0 and
the model's 96103 ids; these are the ids transformers' PegasusTokenizer gives with its own offset of 103 over the
original 96000-piece Pegasus model. User-defined pieces (``<n>``, ``[MASK]``, ...) are matched whole, as
SentencePiece does (they keep their score 0, above every normal piece). A sequence ends with ``</s>`` (run_summarization.py appends 1 to targets; its documents get
none: encode them with ``add_special_tokens=False`` to reproduce its inputs exactly).

The text pipeline is the one transformers' PegasusTokenizer imposes on load (:func:`_pegasus_pipeline`), so the
files written load to exactly this tokenizer. It gives SentencePiece's ids on ordinary text; it differs at the
text's edges (SentencePiece strips leading/trailing spaces, transformers' Pegasus pipeline keeps one) and next to
the special pieces (``[MASK]`` is split off before the SentencePiece model sees the text).

Example:
    >>> specials = pegasus_specials({"<pad>", "</s>", "<s>", "<unk>", "[MASK]"})
    >>> specials["eos_token"], specials["mask_token"], "bos_token" in specials
    ('</s>', '[MASK]', False)
"""

from __future__ import annotations

import os

from ckptkit.errors import ConfigError
from ckptkit.tokenizers.unigram import read_spm

__all__ = ["build_pegasus_tokenizer", "pegasus_specials", "PEGASUS_CONFIG"]

_USER_DEFINED, _UNKNOWN, _NORMAL = 4, 2, 1
# role -> the pieces that can play it, first found wins (BigBird's model has [MASK]; Pegasus's own <mask_2>)
_ROLES = {"pad_token": ("<pad>",), "eos_token": ("</s>",), "unk_token": ("<unk>",),
          "mask_token": ("[MASK]", "<mask_2>")}
# tokenizer_config.json keys that keep transformers' PegasusTokenizer from adding its own reserved tokens
PEGASUS_CONFIG = {"offset": 0, "mask_token_sent": None, "additional_special_tokens": []}


def pegasus_specials(pieces) -> dict[str, str]:
    """role -> piece for the roles ``pieces`` can fill; <pad>, </s> and <unk> are required."""
    specials = {role: next((c for c in candidates if c in pieces), None) for role, candidates in _ROLES.items()}
    missing = [_ROLES[role][0] for role in ("pad_token", "eos_token", "unk_token") if specials[role] is None]
    if missing:
        raise ConfigError(f"SentencePiece model lacks {', '.join(missing)}, which Pegasus uses (pad 0, eos 1)",
                          hint="pass the Pegasus SentencePiece model (bigbird/vocab/pegasus.model)")
    return {role: piece for role, piece in specials.items() if piece is not None}


def _pegasus_pipeline(tok, proto) -> None:
    """The normalizer and pre-tokenizer transformers' PegasusTokenizer gives itself when it loads a folder (it
    replaces those of tokenizer.json): the model's precompiled NFKC map and runs of spaces collapsed (without a
    map: newlines to spaces), then a Metaspace prepended to every piece of text."""
    from tokenizers import Regex, decoders, normalizers, pre_tokenizers

    charsmap = proto.normalizer_spec.precompiled_charsmap
    first = normalizers.Precompiled(charsmap) if charsmap else normalizers.Replace(Regex(r"\n"), " ")
    tok.normalizer = normalizers.Sequence([first, normalizers.Replace(Regex(r" {2,}"), " ")])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=True)


def build_pegasus_tokenizer(*, spm_file: str | os.PathLike):
    """Unigram over the SentencePiece ids, SentencePiece's normalizer, user-defined pieces matched whole,
    ``A </s>`` / ``A B </s>``; returns (tokenizer, specials).

    Example:
        >>> tok, specials = build_pegasus_tokenizer(spm_file="bigbird/vocab/pegasus.model")  # doctest: +SKIP
        >>> tok.encode("Hello world").ids[-1], tok.get_vocab_size()  # doctest: +SKIP
        (1, 96103)
    """
    from tokenizers import AddedToken, Tokenizer, processors
    from tokenizers.models import Unigram

    proto = read_spm(spm_file)
    try:
        specials = pegasus_specials({p.piece for p in proto.pieces})
    except ConfigError as e:
        raise ConfigError(e.message, path=spm_file, hint=e.hint) from None
    if [p.piece for p in proto.pieces[:2]] != ["<pad>", "</s>"]:
        raise ConfigError("SentencePiece model does not start <pad> </s> (Pegasus: pad 0, eos 1)", path=spm_file,
                          hint="pass the Pegasus SentencePiece model (bigbird/vocab/pegasus.model)")
    unk_id = next(i for i, p in enumerate(proto.pieces) if p.type == _UNKNOWN)
    floor = min((p.score for p in proto.pieces if p.type == _NORMAL), default=0.0) - 100.0
    # user-defined pieces keep their score 0 (above every normal piece), so Unigram takes them wherever they occur,
    # as SentencePiece does; control pieces (<pad>, </s>) are never produced from text
    vocab = [(p.piece, p.score if p.type in (_NORMAL, _USER_DEFINED) else (0.0 if p.type == _UNKNOWN else floor))
             for p in proto.pieces]
    tok = Tokenizer(Unigram(vocab, unk_id=unk_id, byte_fallback=False))
    _pegasus_pipeline(tok, proto)
    tok.add_special_tokens([AddedToken(piece, special=True, normalized=False) for piece in specials.values()])
    eos = specials["eos_token"]
    tok.post_processor = processors.TemplateProcessing(single=f"$A {eos}", pair=f"$A $B {eos}",
                                                       special_tokens=[(eos, tok.token_to_id(eos))])
    return tok, specials
