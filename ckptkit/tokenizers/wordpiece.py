"""The BERT WordPiece fast tokenizer of a Google ``vocab.txt``.

Example:
    >>> import tempfile
    >>> vocab = Path(tempfile.mkdtemp()) / "vocab.txt"
    >>> _ = vocab.write_text("\\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "##s"]))
    >>> infer_lower_case(vocab)
    True
    >>> build_bert_tokenizer(vocab_file=vocab, do_lower_case=True).encode("Hellos").tokens
    ['[CLS]', 'hello', '##s', '[SEP]']
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ckptkit.tokenizers.resources import read_vocab_txt
from ckptkit.tokenizers.template import finish_tokenizer, require_specials

__all__ = ["BERT_SPECIALS", "build_bert_tokenizer", "infer_lower_case"]

BERT_SPECIALS = {"unk_token": "[UNK]", "pad_token": "[PAD]", "cls_token": "[CLS]", "sep_token": "[SEP]",
                 "mask_token": "[MASK]"}


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
    require_specials(ids, BERT_SPECIALS, Path(vocab_file), "a BERT vocab.txt has [UNK] [PAD] [CLS] [SEP] [MASK]")
    tok = Tokenizer(WordPiece(ids, unk_token=BERT_SPECIALS["unk_token"], max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=None,
                                                lowercase=do_lower_case)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece(prefix="##")
    finish_tokenizer(tok, BERT_SPECIALS)
    return tok


_BRACKETED = re.compile(r"^\[[^\]]+\]$|^<[^>]+>$")


def infer_lower_case(vocab_file: Path) -> bool:
    """Lower-case unless some word piece (not ``[unused0]``-like) has an upper-case letter."""
    return not any(t.removeprefix("##") != t.removeprefix("##").lower()
                   for t in read_vocab_txt(vocab_file) if not _BRACKETED.match(t))
