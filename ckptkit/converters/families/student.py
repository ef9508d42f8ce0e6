"""What a distillation student needs from a family, declared by the family (``Family.student``).

``ckptkit distill init`` reads only this: which teacher tensors are per layer and how a kept
layer is renumbered, which tensors repeat another one (tied, not written), and how the family's
MLM head becomes DistilBERT's (``--arch distilbert``) with what DistilBERT cannot express.
The names are Hugging Face names (a TF teacher is seen through its conversion plan).

Example:
    >>> rules = StudentRules(mlm=BERT_MLM_HEAD)
    >>> m = rules.layer_pattern.match("bert.encoder.layer.5.output.dense.weight")
    >>> rules.layer_name.format(base=m["base"], layer=1, rest=m["rest"])
    'bert.encoder.layer.1.output.dense.weight'
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Mapping

__all__ = ["StudentRules", "StudentStack", "HF_ENCODER_LAYER", "BERT_MLM_HEAD", "BERT_TIED", "ABSOLUTE_POSITIONS",
           "SEQ2SEQ_STACKS", "SEQ2SEQ_TIED", "SEQ2SEQ_STUDENT"]

# a per-layer tensor of the HF encoder every BERT-family model shares: <base>encoder.layer.<N>.<rest>
HF_ENCODER_LAYER = re.compile(r"^(?P<base>(?:[A-Za-z_]+\.)?)encoder\.layer\.(?P<layer>\d+)\.(?P<rest>.+)\Z")

# DistilBERT MLM head name -> teacher names that hold it, the first present wins (BERT's head layout)
BERT_MLM_HEAD: Mapping[str, tuple[str, ...]] = {
    "vocab_transform.weight": ("cls.predictions.transform.dense.weight",),
    "vocab_transform.bias": ("cls.predictions.transform.dense.bias",),
    "vocab_layer_norm.weight": ("cls.predictions.transform.LayerNorm.weight",),
    "vocab_layer_norm.bias": ("cls.predictions.transform.LayerNorm.bias",),
    "vocab_projector.bias": ("cls.predictions.bias", "cls.predictions.decoder.bias"),
    "vocab_projector.weight": ("cls.predictions.decoder.weight",),
}
# BERT's tied aliases: (alias, tensor it repeats ({base} expands), config flag that ties them or None)
BERT_TIED: tuple[tuple[str, str, str | None], ...] = (
    ("cls.predictions.decoder.weight", "{base}embeddings.word_embeddings.weight", "tie_word_embeddings"),
    ("cls.predictions.decoder.bias", "cls.predictions.bias", None),
)
# (config key, value DistilBERT needs, default, why)
ABSOLUTE_POSITIONS = ("position_embedding_type", "absolute", "absolute", "DistilBERT has absolute positions only")


@dataclass(frozen=True)
class StudentStack:
    """One layer stack of an encoder-decoder teacher, chosen on its own (``--encoder-layers``/``--decoder-layers``).

    ``pattern`` matches its per-layer tensors (groups ``base``, ``layer``, ``rest``), ``layer_name`` renumbers
    them; ``config_keys`` count its layers in the HF config (all set to the student's count).
    """

    name: str
    pattern: re.Pattern
    layer_name: str
    config_keys: tuple[str, ...]

    @property
    def flag(self) -> str:
        """The ``distill init`` option choosing this stack's layers."""
        return f"--{self.name}-layers"


def _stack(name: str, keys: tuple[str, ...]) -> StudentStack:
    return StudentStack(name, re.compile(rf"^(?P<base>(?:model\.)?){name}\.layers\.(?P<layer>\d+)\.(?P<rest>.+)\Z"),
                        f"{{base}}{name}.layers.{{layer}}.{{rest}}", keys)


# transformers' BART-style encoder-decoders (BigBird-Pegasus, Pegasus, BART): <base>encoder.layers.N. and
# <base>decoder.layers.N.; num_hidden_layers repeats encoder_layers in their configs.
SEQ2SEQ_STACKS: tuple[StudentStack, ...] = (_stack("encoder", ("encoder_layers", "num_hidden_layers")),
                                            _stack("decoder", ("decoder_layers",)))
# their aliases of the one word-embedding table (transformers ties them to ``shared`` on load)
SEQ2SEQ_TIED: tuple[tuple[str, str, str | None], ...] = (
    *((f"{p}{stack}.embed_tokens.weight", "{base}shared.weight", None)
      for p in ("model.", "") for stack in ("encoder", "decoder")),
    ("lm_head.weight", "{base}shared.weight", "tie_word_embeddings"),
)


@dataclass(frozen=True)
class StudentRules:
    """A family's declaration for students made from its teachers.

    ``layer_pattern`` matches a per-layer tensor with groups ``base``, ``layer`` and ``rest``;
    ``layer_name`` renumbers it (``str.format`` with the same three). ``tied`` lists aliases that
    repeat another stored tensor (transformers re-ties them on load). ``mlm`` maps DistilBERT's
    head names to the family's, ``head_activation`` says what the family's MLM head applies, and
    ``requirements`` are (config key, value needed, default, why) for ``--arch distilbert``.

    Layers that share weights (ALBERT): ``layer_sets`` maps a config to the weight set each of its
    ``num_hidden_layers`` layers runs, and ``sets_key`` is the config key counting the sets; the pattern's
    ``layer`` group then numbers sets, a student keeps the sets its layers run, and its config gets fewer
    ``num_hidden_layers`` (and ``sets_key``). None: every layer has its own weights.

    Encoder-decoders: ``stacks`` lists their layer stacks, each chosen on its own (``layer_pattern`` is then
    unused), and ``word_embeddings`` names the word-embedding table after the base prefix.
    """

    mlm: Mapping[str, tuple[str, ...]]
    head_activation: Callable[[Mapping], str] = lambda config: config.get("hidden_act", "gelu")
    requirements: tuple[tuple[str, object, object, str], ...] = ()
    tied: tuple[tuple[str, str, str | None], ...] = BERT_TIED
    layer_pattern: re.Pattern = HF_ENCODER_LAYER
    layer_name: str = "{base}encoder.layer.{layer}.{rest}"
    layer_sets: Callable[[Mapping], list[int]] | None = None
    sets_key: str | None = None
    stacks: tuple[StudentStack, ...] = ()
    word_embeddings: str = "embeddings.word_embeddings.weight"


# an encoder-decoder with transformers' BART-style names: no DistilBERT head, its layers chosen per stack
SEQ2SEQ_STUDENT = StudentRules(mlm={}, tied=SEQ2SEQ_TIED, stacks=SEQ2SEQ_STACKS, word_embeddings="shared.weight")
