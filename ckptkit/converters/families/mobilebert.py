"""MobileBERT as google-research/google-research ``mobilebert/`` writes it (modeling.py, run_pretraining.py)
and as transformers' MobileBert* classes name it.

What differs from BERT (all under ``bert/``, so a checkpoint is told from BERT by these names):

- Embeddings: the word table is ``[vocab, embedding_size]``; with ``trigram_input`` the embeddings of the
  next, current and previous token are concatenated and ``embeddings/embedding_transformation`` maps them
  (or a narrower table alone) to ``hidden_size``.
- ``use_bottleneck``: ``layer_N/bottleneck/input`` (and ``bottleneck/attention`` with
  ``key_query_shared_bottleneck``) project to ``intra_bottleneck_size``; ``output/bottleneck`` projects back.
- ``num_feedforward_networks`` > 1: ``layer_N/ffn_layer_I/{intermediate,output}`` before the last FFN
  (transformers: ``ffn.I``).
- ``normalization_type: no_norm`` stores every norm as ``FakeLayerNorm`` (x*gamma+beta); the MLM head's
  transform LayerNorm is always a real one.
- The MLM decoder is the word table concatenated with ``cls/predictions/extra_output_weights``
  ``[vocab, hidden - embedding]`` (transformers: ``cls.predictions.dense.weight``, transposed).
- The pooler (``bert/pooler/dense``) exists only with ``classifier_activation``; without it the pooled
  output is the first token's hidden state and config.json must say ``classifier_activation: false``.
- Attention masking: the official code computes ``scores*mask - 6*(1-mask)``, transformers adds a large
  negative number; rows without padding agree exactly, rows with padding do not (verify compares the former).
- Google's ``gelu`` is the tanh form (``gelu_new``); the released configs use ``relu``.

Example:
    >>> table = MOBILEBERT.name_table(prefix="mobilebert.")
    >>> table.tf_to_hf("bert/encoder/layer_2/ffn_layer_1/output/FakeLayerNorm/gamma")[0]
    'mobilebert.encoder.layer.2.ffn.1.output.LayerNorm.weight'
    >>> table.tf_to_hf("cls/predictions/extra_output_weights")[0]
    'cls.predictions.dense.weight'
"""

from __future__ import annotations

import re
from typing import Callable, Mapping

from ckptkit.converters.config_schema import ConfigSchema, flag, one_of, positive_int
from ckptkit.converters.families import DETECTION
from ckptkit.converters.families.base import Family, LayerStack, LAYERS, ModelClass, Rule
from ckptkit.converters.families.bert_like import (MLM_TRANSFORM_RULES, NSP_RULES, bert_like_keys, count_layers,
                                                   google_act, hf_keys, with_hf_types)
from ckptkit.converters.families.student import BERT_MLM_HEAD, StudentRules
from ckptkit.errors import ConfigError

__all__ = ["MOBILEBERT", "FAMILY", "MOBILEBERT_RULES", "mobilebert_config_to_hf", "hf_config_to_mobilebert",
           "infer_mobilebert_config", "expected_tf_names", "MOBILEBERT_TF_SCHEMA", "MOBILEBERT_HF_SCHEMA"]

_L_TF, _L_HF = "bert/encoder/layer_{layer}/", "{base}encoder.layer.{layer}."
_NORMS = {"layer_norm": "LayerNorm", "no_norm": "FakeLayerNorm"}


def _dense(tf: str, hf: str, *, optional: bool = False, group: str = "base") -> tuple[Rule, ...]:
    return (Rule(f"{tf}/kernel", f"{hf}.weight", "transpose", group, optional),
            Rule(f"{tf}/bias", f"{hf}.bias", group=group, optional=optional))


def _norm(tf: str, hf: str, *, optional: bool = True) -> tuple[Rule, ...]:
    """Both TF spellings of one norm (LayerNorm first: the reverse lookup writes it; no_norm renames)."""
    return tuple(Rule(f"{tf}/{kind}/{p}", f"{hf}.LayerNorm.{w}", optional=optional)
                 for kind in _NORMS.values() for p, w in (("gamma", "weight"), ("beta", "bias")))


def _block(tf: str, hf: str, *, optional: bool) -> tuple[Rule, ...]:
    """A dense followed by a norm (``tf``/``hf`` name the scope holding both)."""
    return (*_dense(f"{tf}/dense", f"{hf}.dense", optional=optional), *_norm(tf, hf))


def _layer_rules() -> tuple[Rule, ...]:
    ffn_tf, ffn_hf = _L_TF + "ffn_layer_{ffn}/", _L_HF + "ffn.{ffn}."
    return (
        *(r for p in ("query", "key", "value")
          for r in _dense(f"{_L_TF}attention/self/{p}", f"{_L_HF}attention.self.{p}")),
        *_block(f"{_L_TF}attention/output", f"{_L_HF}attention.output", optional=False),
        *_dense(f"{_L_TF}intermediate/dense", f"{_L_HF}intermediate.dense"),
        *_block(f"{_L_TF}output", f"{_L_HF}output", optional=False),
        *_block(f"{_L_TF}output/bottleneck", f"{_L_HF}output.bottleneck", optional=True),
        *_block(f"{_L_TF}bottleneck/input", f"{_L_HF}bottleneck.input", optional=True),
        *_block(f"{_L_TF}bottleneck/attention", f"{_L_HF}bottleneck.attention", optional=True),
        *_dense(f"{ffn_tf}intermediate/dense", f"{ffn_hf}intermediate.dense", optional=True),
        *_block(f"{ffn_tf}output", f"{ffn_hf}output", optional=True),
    )


MOBILEBERT_RULES: tuple[Rule, ...] = (
    Rule("bert/embeddings/word_embeddings", "{base}embeddings.word_embeddings.weight"),
    Rule("bert/embeddings/position_embeddings", "{base}embeddings.position_embeddings.weight"),
    Rule("bert/embeddings/token_type_embeddings", "{base}embeddings.token_type_embeddings.weight"),
    *_dense("bert/embeddings/embedding_transformation", "{base}embeddings.embedding_transformation", optional=True),
    *_norm("bert/embeddings", "{base}embeddings"),
    *_layer_rules(),
    *_dense("bert/pooler/dense", "{base}pooler.dense", optional=True, group="pooler"),
    *MLM_TRANSFORM_RULES,
    Rule("cls/predictions/output_bias", "cls.predictions.bias", group="mlm"),
    Rule("cls/predictions/extra_output_weights", "cls.predictions.dense.weight", "transpose", "mlm", True),
    *NSP_RULES,
    Rule("output_weights", "classifier.weight", group="classifier"),
    Rule("output_bias", "classifier.bias", group="classifier"),
    Rule("cls/squad/output_weights", "qa_outputs.weight", group="qa"),
    Rule("cls/squad/output_bias", "qa_outputs.bias", group="qa"),
)

_ALL = frozenset({"base", "pooler"})
_P = "mobilebert."
MOBILEBERT_CLASSES: tuple[ModelClass, ...] = (
    ModelClass("MobileBertForPreTraining", _ALL | {"mlm", "nsp"}, _P, "AutoModelForPreTraining", "fill-mask"),
    ModelClass("MobileBertForMaskedLM", frozenset({"base", "mlm"}), _P, "AutoModelForMaskedLM", "fill-mask"),
    ModelClass("MobileBertForSequenceClassification", _ALL | {"classifier"}, _P,
               "AutoModelForSequenceClassification", "text-classification"),
    ModelClass("MobileBertForQuestionAnswering", frozenset({"base", "qa"}), _P, "AutoModelForQuestionAnswering",
               "question-answering"),
    ModelClass("MobileBertForNextSentencePrediction", _ALL | {"nsp"}, _P, "AutoModelForNextSentencePrediction",
               None),
    ModelClass("MobileBertModel", _ALL, "", "AutoModel", "feature-extraction"),
)

# The official code's activation names (modeling.get_activation) <-> transformers'.
GOOGLE_TO_HF = {"gelu": "gelu_new", "relu": "relu", "relu6": "relu6", "tanh": "tanh", "linear": "linear"}
HF_TO_GOOGLE = {"gelu_new": "gelu", "gelu_pytorch_tanh": "gelu", "relu": "relu", "relu6": "relu6",
                "tanh": "tanh", "linear": "linear"}
# BertConfig.from_dict defaults (modeling.py) for the MobileBERT keys a bert_config.json may omit;
# embedding_size / intra_bottleneck_size default to hidden_size there.
TF_DEFAULTS: dict[str, object] = {
    "trigram_input": False, "use_bottleneck": False, "use_bottleneck_attention": False,
    "key_query_shared_bottleneck": False, "num_feedforward_networks": 1, "normalization_type": "layer_norm",
    "classifier_activation": True, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1, "initializer_range": 0.02, "type_vocab_size": 16,
}
_FLAGS = ("trigram_input", "use_bottleneck", "use_bottleneck_attention", "key_query_shared_bottleneck",
          "classifier_activation")
_EXTRA_KEYS = {**{k: flag() for k in _FLAGS}, "embedding_size": positive_int(),
               "intra_bottleneck_size": positive_int(), "num_feedforward_networks": positive_int(),
               "normalization_type": one_of(*_NORMS)}
# The official bert_config.json keys, one to one with MobileBertConfig's.
_SHARED = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
           "hidden_dropout_prob", "attention_probs_dropout_prob", "max_position_embeddings", "type_vocab_size",
           "initializer_range", *_EXTRA_KEYS)
_SIZE_REQUIRED = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                  "max_position_embeddings")

MOBILEBERT_TF_SCHEMA = ConfigSchema({**bert_like_keys(GOOGLE_TO_HF, required=False),
                                     **{k: positive_int(required=True) for k in _SIZE_REQUIRED}, **_EXTRA_KEYS})
# num_feedforward_networks required: it counts the ffn.I weight sets (a layer stack)
MOBILEBERT_HF_SCHEMA = ConfigSchema({**hf_keys(), **_EXTRA_KEYS,
                                     "num_feedforward_networks": positive_int(required=True)})


def _complete(config: Mapping) -> dict:
    """``config`` with the official code's defaults for what it omits."""
    full = {**TF_DEFAULTS, **config}
    full.setdefault("embedding_size", full.get("hidden_size"))
    full.setdefault("intra_bottleneck_size", full.get("hidden_size"))
    return full


def _true_hidden(config: Mapping) -> int:
    return int(config["intra_bottleneck_size"] if config["use_bottleneck"] else config["hidden_size"])


def _norm_names(scope: str, config: Mapping) -> list[str]:
    return [f"{scope}/{_NORMS[config['normalization_type']]}/{p}" for p in ("gamma", "beta")]


def _block_names(scope: str, config: Mapping) -> list[str]:
    return [f"{scope}/dense/kernel", f"{scope}/dense/bias", *_norm_names(scope, config)]


def _layer_names(i: int, c: Mapping) -> list[str]:
    p = f"bert/encoder/layer_{i}/"
    names = [f"{p}attention/self/{n}/{w}" for n in ("query", "key", "value") for w in ("kernel", "bias")]
    names += _block_names(p + "attention/output", c) + [f"{p}intermediate/dense/kernel", f"{p}intermediate/dense/bias"]
    names += _block_names(p + "output", c)
    if c["use_bottleneck"]:
        names += _block_names(p + "bottleneck/input", c) + _block_names(p + "output/bottleneck", c)
        if c["key_query_shared_bottleneck"] and not c["use_bottleneck_attention"]:
            names += _block_names(p + "bottleneck/attention", c)
    for f in range(int(c["num_feedforward_networks"]) - 1):
        names += [f"{p}ffn_layer_{f}/intermediate/dense/kernel", f"{p}ffn_layer_{f}/intermediate/dense/bias"]
        names += _block_names(f"{p}ffn_layer_{f}/output", c)
    return names


def expected_tf_names(config: Mapping) -> set[str]:
    """Every encoder variable (embeddings, layers, pooler) the official code creates for ``config``.

    Example:
        >>> c = {"hidden_size": 8, "num_hidden_layers": 1, "normalization_type": "no_norm", "use_bottleneck": True,
        ...      "classifier_activation": False}
        >>> sorted(n for n in expected_tf_names(c) if "embeddings/" in n or "bottleneck/input" in n)[:3]
        ['bert/embeddings/FakeLayerNorm/beta', 'bert/embeddings/FakeLayerNorm/gamma', 'bert/embeddings/position_embeddings']
    """
    c = _complete(config)
    e = "bert/embeddings/"
    names = {f"{e}word_embeddings", f"{e}position_embeddings", f"{e}token_type_embeddings",
             *_norm_names("bert/embeddings", c)}
    if c["trigram_input"] or c["embedding_size"] != c["hidden_size"]:
        names |= {f"{e}embedding_transformation/kernel", f"{e}embedding_transformation/bias"}
    if c["classifier_activation"]:
        names |= {"bert/pooler/dense/kernel", "bert/pooler/dense/bias"}
    for i in range(int(c["num_hidden_layers"])):
        names.update(_layer_names(i, c))
    return names


_LAYER_INDEX = re.compile(r"^bert/encoder/layer_(\d+)/")
_FFN_INDEX = re.compile(r"^bert/encoder/layer_0/ffn_layer_(\d+)/")
_WORDS, _TRANSFORM = "bert/embeddings/word_embeddings", "bert/embeddings/embedding_transformation/kernel"


def _expected_shapes(c: Mapping) -> dict[str, tuple[int, ...]]:
    """Shapes the official code gives the variables that carry each size and switch of config ``c``."""
    hidden, emb, true = int(c["hidden_size"]), int(c["embedding_size"]), _true_hidden(c)
    shared = c["use_bottleneck"] and (c["use_bottleneck_attention"] or c["key_query_shared_bottleneck"])
    e, p = "bert/embeddings/", "bert/encoder/layer_0/"
    return {f"{e}word_embeddings": (int(c["vocab_size"]), emb),
            f"{e}position_embeddings": (int(c["max_position_embeddings"]), hidden),
            f"{e}token_type_embeddings": (int(c["type_vocab_size"]), hidden),
            f"{e}embedding_transformation/kernel": (emb * (3 if c["trigram_input"] else 1), hidden),
            f"{p}attention/self/query/kernel": (true if shared else hidden, true),
            f"{p}attention/self/value/kernel": (true if c["use_bottleneck_attention"] else hidden, true),
            f"{p}intermediate/dense/kernel": (true, int(c["intermediate_size"])),
            f"{p}bottleneck/input/dense/kernel": (hidden, true)}


def _check_structure(c: Mapping, shapes: Mapping[str, tuple[int, ...]], config_path: str | None) -> None:
    """Layer and FFN counts first (they bound the names listed next), then shapes, then every name."""
    counts = (("num_hidden_layers", count_layers(shapes, _LAYER_INDEX), 0),
              ("num_feedforward_networks", count_layers(shapes, _FFN_INDEX), 1))
    for key, found, offset in counts:
        if int(c[key]) != found + offset:
            raise ConfigError(f"config says {key}={c[key]} but the checkpoint has {found + offset}",
                              path=config_path, hint="fix the config or pass the matching one with --config")
    for tensor, shape in _expected_shapes(c).items():
        if tensor in shapes and tuple(shapes[tensor]) != shape:
            raise ConfigError(f"the config gives {tensor} the shape {list(shape)} but the checkpoint has "
                              f"{list(shapes[tensor])}", path=config_path,
                              hint="check the sizes, trigram_input and the bottleneck settings")
    expected = expected_tf_names(c)
    missing = sorted(expected - set(shapes), key=_natural)
    extra = sorted((n for n in shapes if n.startswith(("bert/encoder/", "bert/embeddings/", "bert/pooler/"))
                    and n not in expected), key=_natural)
    if missing or extra:
        name = missing[0] if missing else extra[0]
        raise ConfigError(f"the MobileBERT config does not describe this checkpoint: with it the official code "
                          f"{'needs' if missing else 'creates no'} {name} ({len(missing)} missing, {len(extra)} "
                          "unexpected)", path=config_path, hint="check normalization_type, use_bottleneck, "
                          "key_query_shared_bottleneck and classifier_activation")


def check_mobilebert_config(config: Mapping, shapes: Mapping[str, tuple[int, ...]], *,
                            config_path: str | None = None) -> None:
    """Raise a ConfigError when the config's sizes or structure (norms, bottleneck, FFNs, pooler) contradict
    the checkpoint's variables, or the official code could not build it."""
    c = _complete(config)
    if int(c["hidden_size"]) < int(c["embedding_size"]):
        raise ConfigError(f"embedding_size={c['embedding_size']} exceeds hidden_size={c['hidden_size']}",
                          path=config_path)
    if _true_hidden(c) % int(c["num_attention_heads"]):
        raise ConfigError(f"the attention width {_true_hidden(c)} is not divisible by num_attention_heads="
                          f"{c['num_attention_heads']}", path=config_path)
    if any(n.startswith("bert/encoder/") for n in shapes):  # not a head-only view (distill, partial plans)
        _check_structure(c, shapes, config_path)


def _natural(name: str) -> list:
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name)]


def infer_mobilebert_config(shapes: Mapping[str, tuple[int, ...]], *, num_heads: int | None = None
                            ) -> tuple[dict, list[str]]:
    """A MobileBERT config from the variables alone (structure from the names), and the warnings it implies."""
    names = set(shapes)
    config: dict = {"vocab_size": shapes[_WORDS][0], "embedding_size": shapes[_WORDS][1],
                    "hidden_size": shapes["bert/embeddings/position_embeddings"][1],
                    "max_position_embeddings": shapes["bert/embeddings/position_embeddings"][0],
                    "type_vocab_size": shapes["bert/embeddings/token_type_embeddings"][0],
                    "intermediate_size": shapes["bert/encoder/layer_0/intermediate/dense/kernel"][1],
                    "num_hidden_layers": count_layers(shapes, _LAYER_INDEX),
                    "normalization_type": "no_norm" if any("/FakeLayerNorm/" in n for n in names) else "layer_norm",
                    "classifier_activation": "bert/pooler/dense/kernel" in names,
                    "num_feedforward_networks": count_layers(shapes, _FFN_INDEX) + 1}
    bottleneck = "bert/encoder/layer_0/bottleneck/input/dense/kernel"
    if bottleneck in shapes:
        value_in = shapes["bert/encoder/layer_0/attention/self/value/kernel"][0]
        config.update(use_bottleneck=True, intra_bottleneck_size=shapes[bottleneck][1],
                      key_query_shared_bottleneck="bert/encoder/layer_0/bottleneck/attention/dense/kernel" in names,
                      use_bottleneck_attention=value_in == shapes[bottleneck][1] != config["hidden_size"])
    if _TRANSFORM in shapes:
        config["trigram_input"] = shapes[_TRANSFORM][0] == 3 * config["embedding_size"]
    warnings = []
    if num_heads is None:
        num_heads = 4
        warnings.append("num_attention_heads not in a config: assumed 4 (the released MobileBERT configs); "
                        "pass --num-heads or --config if that is wrong")
    config.update(num_attention_heads=num_heads, hidden_act="relu")
    return config, warnings


def mobilebert_config_to_hf(tf_config: Mapping, *, model_class: str) -> dict:
    """HF ``config.json`` (``model_type: mobilebert``) from the official ``bert_config.json``.

    Example:
        >>> c = mobilebert_config_to_hf({"vocab_size": 30, "hidden_size": 16, "num_hidden_layers": 1,
        ...     "num_attention_heads": 2, "intermediate_size": 8, "max_position_embeddings": 8,
        ...     "hidden_act": "relu", "classifier_activation": False}, model_class="MobileBertModel")
        >>> c["classifier_activation"], c["embedding_size"], c["normalization_type"], c["hidden_act"]
        (False, 16, 'layer_norm', 'relu')
    """
    c = _complete(tf_config)
    if c["hidden_act"] not in GOOGLE_TO_HF:
        raise ConfigError(f"unknown hidden_act {c['hidden_act']!r}", hint="one of " + ", ".join(GOOGLE_TO_HF))
    hf = {"architectures": [model_class], "model_type": "mobilebert", **{k: c[k] for k in _SHARED if k in c},
          "hidden_act": GOOGLE_TO_HF[c["hidden_act"]], "layer_norm_eps": 1e-12, "pad_token_id": 0,
          "tie_word_embeddings": True}
    # the official code creates bottleneck/attention only without use_bottleneck_attention; transformers
    # creates it whenever key_query_shared_bottleneck is set (and then does not use it): the same model
    hf["key_query_shared_bottleneck"] = bool(c["key_query_shared_bottleneck"] and not c["use_bottleneck_attention"])
    return with_hf_types(hf)


def hf_config_to_mobilebert(hf_config: Mapping) -> dict:
    """The official ``bert_config.json`` from an HF MobileBERT config (every MobileBERT key written)."""
    act = google_act(hf_config.get("hidden_act", "relu"),  # MobileBertConfig's default
                     HF_TO_GOOGLE, code="the official MobileBERT code")
    defaults = {**TF_DEFAULTS, "hidden_act": "relu", "embedding_size": 128, "intra_bottleneck_size": 128,
                "use_bottleneck": True, "key_query_shared_bottleneck": True, "num_feedforward_networks": 4,
                "normalization_type": "no_norm", "trigram_input": True, "type_vocab_size": 2}
    return {**{k: hf_config.get(k, defaults.get(k)) for k in _SHARED if k in hf_config or k in defaults},
            "hidden_act": act}


def _tf_names_for(hf_config: Mapping) -> Callable[[str], str] | None:
    """hf->tf: the norms' TF spelling for ``normalization_type`` (the MLM transform's LayerNorm stays real)."""
    if hf_config.get("normalization_type", "no_norm") != "no_norm":
        return None
    return lambda name: name if name.startswith("cls/") else name.replace("/LayerNorm/", "/FakeLayerNorm/")


# distill init: layers are selected (each has its own weights); the MLM head's extra_output_weights has no
# DistilBERT counterpart, so --arch distilbert needs embedding_size == hidden_size.
MOBILEBERT_STUDENT = StudentRules(
    mlm=BERT_MLM_HEAD, head_activation=lambda c: c.get("hidden_act", "relu"),
    requirements=(("use_bottleneck", False, True, "DistilBERT has no bottlenecks"),
                  ("num_feedforward_networks", 1, 4, "DistilBERT has one feed-forward network per layer"),
                  ("normalization_type", "layer_norm", "no_norm", "DistilBERT's norms are real LayerNorms"),
                  ("trigram_input", False, True, "DistilBERT has no trigram input")))

MOBILEBERT = Family(
    name="mobilebert", model_types=DETECTION["mobilebert"][0], rules=MOBILEBERT_RULES, classes=MOBILEBERT_CLASSES,
    config_to_hf=mobilebert_config_to_hf, config_to_tf=hf_config_to_mobilebert,
    infer_tf_config=infer_mobilebert_config,
    tied={"cls.predictions.decoder.weight": "mobilebert.embeddings.word_embeddings.weight",
          "cls.predictions.decoder.bias": "cls.predictions.bias"},
    check_tf_config=check_mobilebert_config, tf_config_name="bert_config.json",
    tf_schema=MOBILEBERT_TF_SCHEMA, hf_schema=MOBILEBERT_HF_SCHEMA, approximate_acts={"gelu": "gelu_new"},
    reference="ckptkit.converters.reference_mobilebert:mobilebert_reference_forward",
    student=MOBILEBERT_STUDENT, signature=re.compile(DETECTION["mobilebert"][1]),
    stacks=(LAYERS, LayerStack("ffn", "num_feedforward_networks")),
    tf_names=_tf_names_for, reference_rows="unpadded",
)
FAMILY = MOBILEBERT
