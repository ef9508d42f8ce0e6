"""The family registry: one row per family, the module that defines it as ``FAMILY``.

Everything keyed by family (name, HF ``model_type``s, detection signature, transforms, layer stacks,
options) lives on the :class:`~ckptkit.converters.families.base.Family` in its module; lookups here
derive from :data:`FAMILIES` alone. Modules are imported when first asked for.

Example:
    >>> detect_family(["bert/embeddings/word_embeddings", "bert/encoder/layer_0/output/dense/kernel"])
    'bert'
    >>> family_of_model_type("big_bird")
    'bigbird'
"""

from __future__ import annotations

import importlib
from typing import Iterable

from ckptkit.converters.families.base import Family
from ckptkit.converters.families.options import FamilyOption, merge_options
from ckptkit.errors import UsageError

__all__ = ["FAMILIES", "get_family", "all_families", "detect_family", "family_of_model_type", "declared_options"]

# family name -> module defining it as FAMILY. Detection ties go to the earlier row.
FAMILIES: dict[str, str] = {
    "bert": "ckptkit.converters.families.bert",
    "bigbird": "ckptkit.converters.families.bigbird",
    "electra": "ckptkit.converters.families.electra",
    "mobilebert": "ckptkit.converters.families.mobilebert",
    "albert": "ckptkit.converters.families.albert",
    "bigbird_pegasus": "ckptkit.converters.families.pegasus",
}


def get_family(name: str) -> Family:
    """The Family called ``name`` (``bert``, ...)."""
    if name not in FAMILIES:
        raise UsageError(f"unknown family {name!r}", hint="one of " + ", ".join(FAMILIES))
    return importlib.import_module(FAMILIES[name]).FAMILY


def all_families() -> tuple[Family, ...]:
    """Every registered family, in registry order."""
    return tuple(get_family(name) for name in FAMILIES)


def family_of_model_type(model_type: str | None) -> str | None:
    """The family whose HF ``model_type``s include ``model_type`` (None: no family has it)."""
    return next((f.name for f in all_families() if model_type in f.model_types), None)


def detect_family(names: Iterable[str], *, model_type: str | None = None) -> str | None:
    """The family whose signature matches most names (an HF ``model_type`` decides first)."""
    known = family_of_model_type(model_type) if model_type else None
    if known:
        return known
    names = list(names)
    scores = [(sum(1 for n in names if f.signature.search(n)), -i, f.name)
              for i, f in enumerate(all_families()) if f.signature is not None]
    best = max(scores, default=(0, 0, None))
    return best[2] if best[0] else None


def declared_options(command: str) -> dict[str, FamilyOption]:
    """name -> option, for every option a registered family declares for ``command`` (``convert``, ...)."""
    return merge_options(o for f in all_families() for o in f.options if command in o.commands)
