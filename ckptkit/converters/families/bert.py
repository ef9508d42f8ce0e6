"""BERT as google-research/bert writes it (modeling.py, run_pretraining.py, run_classifier.py,
run_squad.py) and as transformers' Bert* classes name it.

Google's ``"gelu"`` is the tanh approximation (``0.5x(1+tanh(sqrt(2/pi)(x+0.044715x^3)))``),
which transformers calls ``"gelu_new"``; its ``"gelu"`` is the exact erf form. Copying the
string verbatim is a silent ~1e-3 error, so the activation goes through :data:`GOOGLE_TO_HF_ACT`.
"""

from __future__ import annotations

import re
from typing import Mapping

from ckptkit.converters.config_schema import (HF_ACTIVATIONS, ConfigSchema, Spec, count, divisible, names,
                                              one_of, positive_float, positive_int, probability, text)
from ckptkit.converters.families.base import Family, ModelClass, Rule
from ckptkit.converters.families.student import ABSOLUTE_POSITIONS, BERT_MLM_HEAD, StudentRules
from ckptkit.errors import ConfigError

__all__ = ["BERT", "BERT_TF_SCHEMA", "BERT_HF_SCHEMA", "SIZE_KEYS", "bert_like_keys", "hf_keys", "with_hf_types",
           "unmapped_act_hint", "BERT_RULES", "MLM_TRANSFORM_RULES", "NSP_RULES", "GOOGLE_TO_HF_ACT", "HF_TO_GOOGLE_ACT", "bert_config_to_hf", "hf_config_to_bert",
           "infer_bert_config", "check_config_against_shapes"]

_LAYER_TF = "bert/encoder/layer_{layer}/"
_LAYER_HF = "{base}encoder.layer.{layer}."


def layer_tail_rules(tf: str, hf: str) -> tuple[Rule, ...]:
    """What every BERT-like layer has after its attention projection: the attention LayerNorm and
    the feed-forward block (``tf``/``hf`` are the layer's name prefixes, with ``{layer}``)."""
    return (
        Rule(f"{tf}attention/output/LayerNorm/gamma", f"{hf}attention.output.LayerNorm.weight"),
        Rule(f"{tf}attention/output/LayerNorm/beta", f"{hf}attention.output.LayerNorm.bias"),
        Rule(f"{tf}intermediate/dense/kernel", f"{hf}intermediate.dense.weight", "transpose"),
        Rule(f"{tf}intermediate/dense/bias", f"{hf}intermediate.dense.bias"),
        Rule(f"{tf}output/dense/kernel", f"{hf}output.dense.weight", "transpose"),
        Rule(f"{tf}output/dense/bias", f"{hf}output.dense.bias"),
        Rule(f"{tf}output/LayerNorm/gamma", f"{hf}output.LayerNorm.weight"),
        Rule(f"{tf}output/LayerNorm/beta", f"{hf}output.LayerNorm.bias"),
    )

# run_pretraining.py's MLM transform (dense + LayerNorm before the tied decoder), shared with BigBird re-exports.
MLM_TRANSFORM_RULES: tuple[Rule, ...] = (
    Rule("cls/predictions/transform/dense/kernel", "cls.predictions.transform.dense.weight", "transpose", "mlm"),
    Rule("cls/predictions/transform/dense/bias", "cls.predictions.transform.dense.bias", group="mlm"),
    Rule("cls/predictions/transform/LayerNorm/gamma", "cls.predictions.transform.LayerNorm.weight", group="mlm"),
    Rule("cls/predictions/transform/LayerNorm/beta", "cls.predictions.transform.LayerNorm.bias", group="mlm"),
)
# NSP and fine-tuned heads store output_weights as [num_labels, hidden] (matmul transpose_b): HF layout.
NSP_RULES: tuple[Rule, ...] = (
    Rule("cls/seq_relationship/output_weights", "cls.seq_relationship.weight", group="nsp"),
    Rule("cls/seq_relationship/output_bias", "cls.seq_relationship.bias", group="nsp"),
)

BERT_RULES: tuple[Rule, ...] = (
    Rule("bert/embeddings/word_embeddings", "{base}embeddings.word_embeddings.weight"),
    Rule("bert/embeddings/position_embeddings", "{base}embeddings.position_embeddings.weight"),
    Rule("bert/embeddings/token_type_embeddings", "{base}embeddings.token_type_embeddings.weight"),
    Rule("bert/embeddings/LayerNorm/gamma", "{base}embeddings.LayerNorm.weight"),
    Rule("bert/embeddings/LayerNorm/beta", "{base}embeddings.LayerNorm.bias"),
    *(Rule(f"{_LAYER_TF}attention/self/{p}/kernel", f"{_LAYER_HF}attention.self.{p}.weight", "transpose")
      for p in ("query", "key", "value")),
    *(Rule(f"{_LAYER_TF}attention/self/{p}/bias", f"{_LAYER_HF}attention.self.{p}.bias")
      for p in ("query", "key", "value")),
    Rule(f"{_LAYER_TF}attention/output/dense/kernel", f"{_LAYER_HF}attention.output.dense.weight", "transpose"),
    Rule(f"{_LAYER_TF}attention/output/dense/bias", f"{_LAYER_HF}attention.output.dense.bias"),
    *layer_tail_rules(_LAYER_TF, _LAYER_HF),
    Rule("bert/pooler/dense/kernel", "{base}pooler.dense.weight", "transpose", "pooler"),
    Rule("bert/pooler/dense/bias", "{base}pooler.dense.bias", group="pooler"),
    *MLM_TRANSFORM_RULES,
    Rule("cls/predictions/output_bias", "cls.predictions.bias", group="mlm"),
    *NSP_RULES,
    Rule("output_weights", "classifier.weight", group="classifier"),
    Rule("output_bias", "classifier.bias", group="classifier"),
    Rule("cls/squad/output_weights", "qa_outputs.weight", group="qa"),
    Rule("cls/squad/output_bias", "qa_outputs.bias", group="qa"),
)

_ALL = frozenset({"base", "pooler"})
BERT_CLASSES: tuple[ModelClass, ...] = (
    ModelClass("BertForPreTraining", _ALL | {"mlm", "nsp"}, "bert.", "AutoModelForPreTraining", "fill-mask"),
    ModelClass("BertForMaskedLM", frozenset({"base", "mlm"}), "bert.", "AutoModelForMaskedLM", "fill-mask"),
    ModelClass("BertForSequenceClassification", _ALL | {"classifier"}, "bert.",
               "AutoModelForSequenceClassification", "text-classification"),
    ModelClass("BertForQuestionAnswering", frozenset({"base", "qa"}), "bert.", "AutoModelForQuestionAnswering",
               "question-answering"),
    ModelClass("BertForNextSentencePrediction", _ALL | {"nsp"}, "bert.", "AutoModelForNextSentencePrediction",
               None),
    ModelClass("BertModel", _ALL, "", "AutoModel", "feature-extraction"),
)

GOOGLE_TO_HF_ACT = {"gelu": "gelu_new", "relu": "relu", "tanh": "tanh", "linear": "linear", "swish": "silu"}
HF_TO_GOOGLE_ACT = {"gelu_new": "gelu", "gelu_pytorch_tanh": "gelu", "relu": "relu", "tanh": "tanh",
                    "linear": "linear", "silu": "swish", "swish": "swish"}

# The sizes the tensors' shapes depend on: required in a bert_config.json (Google's code has no usable
# default for them) and in an HF config.json.
HF_FLOAT_KEYS = ("initializer_range", "layer_norm_eps")  # float, not int, in transformers' config classes
SIZE_KEYS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
             "max_position_embeddings", "type_vocab_size")
_HEADS_DIVIDE_HIDDEN = (divisible("hidden_size", "num_attention_heads"),)


def bert_like_keys(activations, *, required: bool) -> dict[str, Spec]:
    """The schema rows BERT, BigBird and ELECTRA configs share (sizes, activation, dropouts)."""
    return {**{key: positive_int(required=required) for key in SIZE_KEYS}, "hidden_act": one_of(*activations),
            "hidden_dropout_prob": probability(), "attention_probs_dropout_prob": probability(),
            "initializer_range": positive_float()}


def hf_keys(*, required: bool = True) -> dict[str, Spec]:
    """The schema rows of a transformers BERT-like ``config.json`` (typed as transformers' config classes)."""
    return {**bert_like_keys(HF_ACTIVATIONS, required=required), "model_type": text(), "architectures": names(),
            **{key: positive_float(real=True) for key in HF_FLOAT_KEYS}, "pad_token_id": count(nullable=True)}


def with_hf_types(config: dict) -> dict:
    """``config`` with the keys transformers types as float written as floats (a TF config may say ``1``)."""
    return {**config, **{key: float(config[key]) for key in HF_FLOAT_KEYS if key in config}}


BERT_TF_SCHEMA = ConfigSchema(bert_like_keys(GOOGLE_TO_HF_ACT, required=True), _HEADS_DIVIDE_HIDDEN)
BERT_HF_SCHEMA = ConfigSchema(hf_keys(), _HEADS_DIVIDE_HIDDEN)

# TF config keys copied to HF config.json under the same name.
_SHARED_KEYS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                "hidden_dropout_prob", "attention_probs_dropout_prob", "max_position_embeddings",
                "type_vocab_size", "initializer_range")

# (config key, TF tensor, axis): the config value must equal that tensor dimension.
SHAPE_CHECKS: tuple[tuple[str, str, int], ...] = (
    ("vocab_size", "bert/embeddings/word_embeddings", 0),
    ("hidden_size", "bert/embeddings/word_embeddings", 1),
    ("max_position_embeddings", "bert/embeddings/position_embeddings", 0),
    ("type_vocab_size", "bert/embeddings/token_type_embeddings", 0),
    ("intermediate_size", "bert/encoder/layer_0/intermediate/dense/kernel", 1),
)

_LAYER_INDEX = re.compile(r"^bert/encoder/layer_(\d+)/")


def count_layers(names, pattern: re.Pattern = _LAYER_INDEX) -> int:
    """Number of encoder layers: one more than the highest layer index in ``names``."""
    indices = [int(m.group(1)) for m in map(pattern.match, names) if m]
    return max(indices) + 1 if indices else 0


def check_config_against_shapes(config: Mapping, shapes: Mapping[str, tuple[int, ...]], *,
                                checks=SHAPE_CHECKS, layer_pattern: re.Pattern = _LAYER_INDEX,
                                config_path: str | None = None) -> None:
    """Raise a ConfigError naming the key and the tensor when a config value contradicts a shape."""
    for key, tensor, axis in checks:
        if key in config and tensor in shapes and int(config[key]) != shapes[tensor][axis]:
            raise ConfigError(f"config says {key}={config[key]} but {tensor} has shape {list(shapes[tensor])}",
                              path=config_path, hint="fix the config or pass the matching one with --config")
    layers = count_layers(shapes, layer_pattern)
    if "num_hidden_layers" in config and layers and int(config["num_hidden_layers"]) != layers:
        raise ConfigError(f"config says num_hidden_layers={config['num_hidden_layers']} but the checkpoint has "
                          f"{layers} layers", path=config_path)
    if config.get("num_attention_heads") and int(config["hidden_size"]) % int(config["num_attention_heads"]):
        raise ConfigError(f"hidden_size={config['hidden_size']} is not divisible by "
                          f"num_attention_heads={config['num_attention_heads']}", path=config_path)


def infer_bert_config(shapes: Mapping[str, tuple[int, ...]], *, num_heads: int | None = None,
                      checks=SHAPE_CHECKS, layer_pattern: re.Pattern = _LAYER_INDEX) -> tuple[dict, list[str]]:
    """A Google-style config from tensor shapes alone, and the warnings it implies.

    Heads cannot be read from 2-D kernels: ``num_heads`` or hidden/64 (with a warning).
    """
    config = {key: shapes[tensor][axis] for key, tensor, axis in checks if tensor in shapes}
    config["num_hidden_layers"] = count_layers(shapes, layer_pattern)
    warnings = []
    if num_heads is None:
        num_heads = max(1, config.get("hidden_size", 64) // 64)
        warnings.append(f"num_attention_heads not in a config: assumed {num_heads} (head size 64); "
                        "pass --num-heads or --config if that is wrong")
    config.update(num_attention_heads=num_heads, hidden_act="gelu", hidden_dropout_prob=0.1,
                  attention_probs_dropout_prob=0.1, initializer_range=0.02)
    return config, warnings


def bert_config_to_hf(tf_config: Mapping, *, model_class: str, model_type: str = "bert",
                      act_table: Mapping[str, str] = GOOGLE_TO_HF_ACT) -> dict:
    """HF ``config.json`` content from a Google ``bert_config.json`` dict."""
    act = tf_config.get("hidden_act", "gelu")
    if act not in act_table:
        raise ConfigError(f"unknown hidden_act {act!r}", hint="one of " + ", ".join(act_table))
    config = {"architectures": [model_class], "model_type": model_type,
              **{k: tf_config[k] for k in _SHARED_KEYS if k in tf_config},
              "hidden_act": act_table[act], "layer_norm_eps": 1e-12, "pad_token_id": 0,
              "tie_word_embeddings": True}
    return with_hf_types(config)


def unmapped_act_hint(act: str, approximable: tuple[str, ...] = ("gelu",), *,
                      replacement: str = "Google's tanh gelu", trained_with: str = "gelu_new") -> str:
    """What to do about an HF activation the TF code lacks: --approximate-gelu for the other gelu form."""
    if act in approximable:
        return (f"pass --approximate-gelu to write {replacement} instead; the max logit difference it makes "
                "is measured and reported")
    return f"the TF model would compute something else; convert a model trained with {trained_with}"


def hf_config_to_bert(hf_config: Mapping, *, act_table: Mapping[str, str] = HF_TO_GOOGLE_ACT) -> dict:
    """Google ``bert_config.json`` content from an HF config; refuses activations Google BERT lacks."""
    act = hf_config.get("hidden_act", "gelu")  # transformers' BertConfig default: the erf form
    if act not in act_table:
        raise ConfigError(f"hidden_act {act!r} has no equivalent in Google's BERT code (its 'gelu' is the tanh "
                          "approximation, transformers' 'gelu_new')", hint=unmapped_act_hint(act))
    return {**{k: hf_config[k] for k in _SHARED_KEYS if k in hf_config}, "hidden_act": act_table[act]}


# distill init: BERT's MLM head becomes DistilBERT's as is; DistilBERT has absolute positions only
BERT_STUDENT = StudentRules(mlm=BERT_MLM_HEAD, head_activation=lambda c: c.get("hidden_act", "gelu"),
                            requirements=(ABSOLUTE_POSITIONS,))

BERT = Family(
    name="bert", model_type="bert", rules=BERT_RULES, classes=BERT_CLASSES,
    config_to_hf=bert_config_to_hf, config_to_tf=hf_config_to_bert, infer_tf_config=infer_bert_config,
    tied={"cls.predictions.decoder.weight": "bert.embeddings.word_embeddings.weight",
          "cls.predictions.decoder.bias": "cls.predictions.bias"},
    check_tf_config=check_config_against_shapes,
    tf_config_name="bert_config.json", tf_schema=BERT_TF_SCHEMA, hf_schema=BERT_HF_SCHEMA,
    approximate_acts={"gelu": "gelu_new"},
    reference="ckptkit.converters.reference:bert_reference_forward",
    student=BERT_STUDENT,
)
