"""Model families and their detection from tensor names.

Example:
    >>> detect_family(["bert/embeddings/word_embeddings", "bert/encoder/layer_0/output/dense/kernel"])
    'bert'
"""

from __future__ import annotations

import importlib
import re
from typing import Iterable

from ckptkit.converters.families.base import Family
from ckptkit.errors import UsageError

__all__ = ["FAMILIES", "get_family", "detect_family", "FAMILY_SIGNATURES", "HF_MODEL_TYPES"]

# family name -> "module:attribute" of its Family
FAMILIES: dict[str, str] = {
    "bert": "ckptkit.converters.families.bert:BERT",
    "bigbird": "ckptkit.converters.families.bigbird:BIGBIRD",
    "electra": "ckptkit.converters.families.electra:ELECTRA",
}

# (family, regex over TF or HF names); the family with most matching names wins, ties by order.
FAMILY_SIGNATURES: list[tuple[str, re.Pattern]] = [
    ("bert", re.compile(r"^bert/(embeddings|encoder/layer_\d+)/|^(bert\.)?(embeddings|encoder\.layer\.\d+)\.")),
    # BigBird: every BERT name plus the embedding LayerNorm under bert/encoder and the MLM transform at the
    # top level, so it outscores bert exactly when those are present (a tie goes to bert).
    ("bigbird", re.compile(r"^bert/(embeddings|encoder/layer_\d+)/|^(bert\.)?(embeddings|encoder\.layer\.\d+)\."
                           r"|^bert/encoder/LayerNorm/|^transform/(kernel|bias|gamma|beta)$")),
    ("electra", re.compile(r"^(electra|generator)/(embeddings|embeddings_project|encoder/layer_\d+)/"
                           r"|^(discriminator|generator)_predictions/|^(electra\.)?embeddings_project\.|^electra\.")),
]

# HF config model_type -> family
HF_MODEL_TYPES: dict[str, str] = {"bert": "bert", "big_bird": "bigbird", "electra": "electra"}


def get_family(name: str) -> Family:
    """The Family called ``name`` (``bert``, ...)."""
    if name not in FAMILIES:
        raise UsageError(f"unknown family {name!r}", hint="one of " + ", ".join(FAMILIES))
    module, _, attribute = FAMILIES[name].partition(":")
    return getattr(importlib.import_module(module), attribute)


def detect_family(names: Iterable[str], *, model_type: str | None = None) -> str | None:
    """The family whose signature matches most names (an HF ``model_type`` decides first)."""
    if model_type in HF_MODEL_TYPES:
        return HF_MODEL_TYPES[model_type]
    names = list(names)
    scores = [(sum(1 for n in names if pattern.search(n)), -i, family)
              for i, (family, pattern) in enumerate(FAMILY_SIGNATURES)]
    best = max(scores, default=(0, 0, None))
    return best[2] if best[0] else None
