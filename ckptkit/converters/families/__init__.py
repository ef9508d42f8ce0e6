"""The family registry: one row per family, the module that defines it as ``FAMILY``.

Everything keyed by family (name, HF ``model_type``s, detection signature, transforms, layer stacks,
options) lives on the :class:`~ckptkit.converters.families.base.Family` in its module; lookups here
derive from :data:`FAMILIES` alone. Modules are imported when first asked for; detecting a family from
names or a ``model_type`` (:data:`DETECTION`) imports none, so ``ckptkit inspect`` stays light.

Example:
    >>> detect_family(["bert/embeddings/word_embeddings", "bert/encoder/layer_0/output/dense/kernel"])
    'bert'
    >>> family_of_model_type("big_bird")
    'bigbird'
"""

from __future__ import annotations

import importlib
import re
from functools import lru_cache
from typing import TYPE_CHECKING, Iterable

from ckptkit.errors import UsageError

if TYPE_CHECKING:
    from ckptkit.converters.families.base import Family
    from ckptkit.converters.families.options import FamilyOption

__all__ = ["FAMILIES", "DETECTION", "get_family", "all_families", "detect_family", "family_of_model_type",
           "declared_options"]

# family name -> module defining it as FAMILY. Detection ties go to the earlier row.
FAMILIES: dict[str, str] = {
    "bert": "ckptkit.converters.families.bert",
    "bigbird": "ckptkit.converters.families.bigbird",
    "electra": "ckptkit.converters.families.electra",
    "mobilebert": "ckptkit.converters.families.mobilebert",
    "albert": "ckptkit.converters.families.albert",
    "bigbird_pegasus": "ckptkit.converters.families.pegasus",
}

# family name -> (its HF model_types, its detection signature's pattern), as its FAMILY says: what detection needs,
# without importing the family modules (a dozen modules of tables, ~15 ms). tests/test_inspect_light.py holds every
# row equal to its family's own FAMILY.model_types and FAMILY.signature.
_BERT_LAYERS = r"^bert/(embeddings|encoder/layer_\d+)/"
_BERT = (_BERT_LAYERS + r"(?!.*(FakeLayerNorm|bottleneck|ffn_layer_|embedding_transformation))"
         r"|^(bert\.)?(embeddings|encoder\.layer\.\d+)\.")
DETECTION: dict[str, tuple[tuple[str, ...], str | None]] = {
    "bert": (("bert",), _BERT),
    "bigbird": (("big_bird",), _BERT + r"|^bert/encoder/LayerNorm/|^transform/(kernel|bias|gamma|beta)$"),
    "electra": (("electra",), r"^(electra|generator)/(embeddings|embeddings_project|encoder/layer_\d+)/"
                              r"|^(discriminator|generator)_predictions/|^(electra\.)?embeddings_project\.|^electra\."),
    "mobilebert": (("mobilebert",), _BERT_LAYERS + r"|^(mobilebert\.)?(embeddings|encoder\.layer\.\d+)\."
                   r"|/(FakeLayerNorm|bottleneck|ffn_layer_\d+|embedding_transformation)/"
                   r"|^cls/predictions/extra_output"),
    "albert": (("albert",), r"^bert/(embeddings/|encoder/(embedding_hidden_mapping_in|transformer/group_\d+)/)"
                            r"|^(albert\.)?(embeddings|encoder\.(albert_layer_groups\.\d+"
                            r"|embedding_hidden_mapping_in))\."),
    "bigbird_pegasus": (("bigbird_pegasus",), r"^[^/]+/decoder/layer_\d+/|^[^/]+/encoder/layer_\d+/(attention/self"
                        r"|intermediate)/LayerNorm/|^[^/]+/decoder/LayerNorm/"
                        r"|^(model\.)?(encoder|decoder)\.layers\.\d+\.(self_attn|encoder_attn)"
                        r"|^(model\.)?(encoder|decoder)\.layernorm_embedding\."),
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
    return next((name for name in FAMILIES if model_type in DETECTION[name][0]), None)


@lru_cache(maxsize=None)
def _signatures() -> tuple[tuple[str, re.Pattern], ...]:
    return tuple((name, re.compile(DETECTION[name][1])) for name in FAMILIES if DETECTION[name][1] is not None)


def detect_family(names: Iterable[str], *, model_type: str | None = None) -> str | None:
    """The family whose signature matches most names (an HF ``model_type`` decides first)."""
    known = family_of_model_type(model_type) if model_type else None
    if known:
        return known
    names = list(names)
    scores = [(sum(1 for n in names if signature.search(n)), -i, name)
              for i, (name, signature) in enumerate(_signatures())]
    best = max(scores, default=(0, 0, None))
    return best[2] if best[0] else None


def declared_options(command: str) -> dict[str, FamilyOption]:
    """name -> option, for every option a registered family declares for ``command`` (``convert``, ...)."""
    from ckptkit.converters.families.options import merge_options

    return merge_options(o for f in all_families() for o in f.options if command in o.commands)
