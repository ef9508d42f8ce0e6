"""Tokenizers: the fixed KoBERT tokenizer and fast ``tokenizer.json`` export for BERT-family models.

Imports are lazy: ``import ckptkit.tokenizers`` pulls in neither transformers nor sentencepiece.
This package is ``ckptkit.tokenizers``; inside it ``import tokenizers`` is Hugging Face's library.

Example:
    >>> from ckptkit.tokenizers import write_tokenizer_files
    >>> info = write_tokenizer_files("out/kobert", kind="kobert")  # doctest: +SKIP
"""

from __future__ import annotations

import importlib

_LAZY = {
    "KoBertTokenizer": "ckptkit.tokenizers.kobert",
    "TokenizerInfo": "ckptkit.tokenizers.export",
    "write_tokenizer_files": "ckptkit.tokenizers.export",
    "detect_tokenizer_kind": "ckptkit.tokenizers.export",
    "build_kobert_tokenizer": "ckptkit.tokenizers.export",
    "build_bert_tokenizer": "ckptkit.tokenizers.export",
    "build_bigbird_tokenizer": "ckptkit.tokenizers.export",
    "TOKENIZER_KINDS": "ckptkit.tokenizers.export",
    "find_kobert_files": "ckptkit.tokenizers.resources",
    "kobert_config": "ckptkit.tokenizers.resources",
    "KobertFiles": "ckptkit.tokenizers.resources",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ckptkit.tokenizers' has no attribute {name!r}")
